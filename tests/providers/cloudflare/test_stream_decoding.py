"""Workers AI's server-sent events, cut into pieces anywhere, through the real event splitter -> events out."""

import pytest

from llmrelay.core.chat import Finish, TextDelta, Usage
from llmrelay.core.errors import UpstreamUnavailable
from llmrelay.providers.cloudflare import cloudflare_upstream, decode_stream
from llmrelay.providers.wire import sse_events
from tests.support.recorded import CUTS, RecordedResponse, drain, load_bytes, run

UPSTREAM = cloudflare_upstream("cf-test", "https://api.cloudflare.com/client/v4/accounts/0123/ai/run")


def decode(body: bytes, cut) -> list:
    response = RecordedResponse(cut(body))
    return run(drain(decode_stream(UPSTREAM, sse_events(UPSTREAM, response))))


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_text_stream_with_usage_in_the_last_chunk(cut):
    # multi-byte characters cut between reads, the "p" padding field ignored, usage before [DONE]
    assert decode(load_bytes(__file__, "stream_text.sse"), cut) == [
        TextDelta("Pizza"), TextDelta(" is"), TextDelta(" so good 🍕"), Finish("stop", Usage(29, 4))]


def test_stream_ending_without_done_is_an_error():
    body = load_bytes(__file__, "stream_text.sse").split(b"data: [DONE]")[0]
    with pytest.raises(UpstreamUnavailable, match=r"without \[DONE\]"):
        decode(body, CUTS["mid-line"])
