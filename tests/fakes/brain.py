"""What every fake upstream answers, decided the same way whatever its wire protocol.

- the last message is a tool result   -> text that quotes the result;
- tools were offered                  -> one call of get_weather with several arguments, or two parallel
                                         calls when the user says "two"; "mixed" adds text to the call;
- the last user message has images    -> text naming how many images and their media types;
- the user asks for "html"            -> markup that would run script if a page put it into HTML;
- otherwise                           -> "The sky is blue because of Rayleigh scattering."
"""

from dataclasses import dataclass, field

PROMPT_TOKENS = 12
HOSTILE_WORDS = ["<img src=x onerror=alert(1)>", " and ", "<script>alert(2)</script>", " **bold**"]
DEFAULT_WORDS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", "."]


@dataclass
class Asked:
    text: str = ""
    tool_result: str | None = None
    images: list[str] = field(default_factory=list)  # media types
    tools: list[str] = field(default_factory=list)


@dataclass
class Answer:
    words: list[str]
    calls: list[tuple[str, str, dict]]  # (id, name, arguments)

    @property
    def text(self) -> str:
        return "".join(self.words)

    @property
    def completion_tokens(self) -> int:
        return max(1, len(self.words)) + 3 * len(self.calls)


def answer(asked: Asked) -> Answer:
    if asked.tool_result is not None:
        return Answer(["Result", " received", ": ", asked.tool_result], [])
    if asked.tools:
        words = ["Let me check."] if "mixed" in asked.text else []
        if "two" in asked.text:
            return Answer(words, [("call_fake_0", asked.tools[0], {"city": "Paris", "unit": "celsius"}),
                                  ("call_fake_1", asked.tools[0], {"city": "Tokyo", "unit": "celsius"})])
        return Answer(words, [("call_fake_0", asked.tools[0], {"city": "Paris", "unit": "celsius", "days": 3})])
    if "html" in asked.text:
        return Answer(list(HOSTILE_WORDS), [])
    if asked.images:
        return Answer(["I see ", f"{len(asked.images)} image(s): ", ", ".join(asked.images)], [])
    return Answer(list(DEFAULT_WORDS), [])


def split_in_three(text: str) -> list[str]:
    """Tool arguments arrive in pieces in real streams; three uneven pieces catch a relay that reorders."""
    a, b = len(text) // 3, 2 * len(text) // 3
    return [piece for piece in (text[:a], text[a:b], text[b:]) if piece]


def sniff(data: str) -> str:
    return {"iVBORw0KGgo": "image/png", "/9j/": "image/jpeg"}.get(data[:11] if data.startswith("iVBOR") else data[:4],
                                                                  "unknown")
