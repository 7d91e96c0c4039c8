"""One error hierarchy for the whole node; each error knows its HTTP status.

Surfaces render these in their own API's error shape. Messages are written for a person: they say what
went wrong and what to do about it, and never contain a secret.
"""


class RelayError(Exception):
    status = 500
    type = "internal_error"
    retryable = False  # another attempt (another deployment, or later) may succeed
    context_window = False  # the prompt is too long for this model; a larger one may take it
    # The upstream failed because of this request's content (see `blames_request`): worth another attempt
    # elsewhere, but no sign that the deployment is unwell, so it never counts towards a cooldown.
    request_fault = False

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(RelayError):
    status = 400
    type = "invalid_request_error"


class Unauthenticated(RelayError):
    status = 401
    type = "authentication_error"


class Forbidden(RelayError):
    status = 403
    type = "permission_error"


class NotFound(RelayError):
    status = 404
    type = "not_found_error"


class MethodNotAllowed(RelayError):
    status = 405
    type = "method_not_allowed"


class RequestTimeout(RelayError):
    status = 408
    type = "request_timeout"


class PayloadTooLarge(RelayError):
    status = 413
    type = "request_too_large"


class RateLimited(RelayError):
    status = 429
    type = "rate_limit_error"


class UpstreamUnavailable(RelayError):
    status = 502
    type = "upstream_unavailable"
    retryable = True


class NoUpstream(RelayError):
    """Nothing is configured that could answer: the message names the setting to add."""
    status = 503
    type = "no_upstream_configured"


class AtCapacity(RelayError):
    """The node (or a deployment) is at its limit of requests in flight and its queue is full."""
    status = 503
    type = "overloaded"


class CoolingDown(RelayError):
    """Every deployment of the model failed repeatedly and is out of rotation for a while."""
    status = 503
    type = "upstreams_cooling_down"


class SharedStoreUnavailable(RelayError):
    """The cluster's shared store (Redis) does not answer."""
    status = 503
    type = "shared_store_unavailable"


class UpstreamTimeout(RelayError):
    status = 504
    type = "upstream_timeout"
    retryable = True


_CONTEXT_WINDOW_WORDS = ("context length", "context window", "maximum context", "too many tokens",
                         "prompt is too long", "exceeds the context", "input is too long", "context_length_exceeded")


# The statuses of a host (or a gateway in front of it) that is down, overloaded, too slow or refusing the
# node's credentials: whatever the body says, these count towards a cooldown.
_HOST_STATUSES = frozenset({401, 403, 408, 502, 503, 504, 529})
# A 429 is the host's (or the account's) limit, unless it says this one request is over it by itself
# (OpenAI: "Request too large for gpt-4o ... on tokens per min").
_TOO_LARGE_WORDS = ("request too large", "too long") + _CONTEXT_WINDOW_WORDS
# Words of a 5xx error's message that blame the request, not the host (servers that answer 500 where they
# mean 400 or 404: a missing model, a prompt too long, a field they cannot take).
_REQUEST_FAULT_WORDS = ("not found", "does not exist", "no such model", "unknown model", "invalid",
                        "unsupported", "not supported", "validation", "malformed", "bad request", "too long",
                        "too large", "must be", "not allowed") + _CONTEXT_WINDOW_WORDS


def blames_request(status: int, detail: str) -> bool:
    """Whether an upstream's error answer was caused by the request's own content rather than by the host.

    The rule: 502, 503, 504, 529 (and 401, 403, 408) always blame the host, as do connection failures and
    timeouts (which never get here); so does 429, unless it says the request alone is too large for the
    limit. Any other 4xx blames the request. Any other 5xx (500 above all)
    blames the request when its error message says the model does not exist, the context length is
    exceeded, or the request is invalid (`_REQUEST_FAULT_WORDS`); otherwise the host. A failure that blames
    the request is still tried elsewhere, but never counts towards the deployment's cooldown: one client's
    odd request must not take a model away from everyone.
    """
    if status in _HOST_STATUSES:
        return False
    if status == 429:
        return any(words in detail.lower() for words in _TOO_LARGE_WORDS)
    if status < 500:
        return True
    text = detail.lower()
    return any(words in text for words in _REQUEST_FAULT_WORDS)


def from_upstream_status(upstream: str, status: int, detail: str, retry_after: str | None = None) -> RelayError:
    """The node's error for an upstream's HTTP error, when the answer must be translated to another API.

    The client's own mistakes (400, 404, 413, 429) keep their status; the upstream refusing the node's
    credentials or failing is the node's problem (502), not the client's.
    """
    message = f"the {upstream} upstream answered {status}: {detail}"
    error: RelayError
    if status in (400, 413, 422):
        error = PayloadTooLarge(message) if status == 413 else BadRequest(message)
        error.context_window = any(words in detail.lower() for words in _CONTEXT_WINDOW_WORDS)
        return error
    if status == 404:
        return NotFound(message)
    if status == 429:
        error = RateLimited(message, headers={"Retry-After": retry_after} if retry_after else None)
        error.retryable = True
        error.request_fault = blames_request(status, detail)
        return error
    if status in (401, 403):
        return UpstreamUnavailable(f"the {upstream} upstream refused the node's credentials ({status}: {detail}); "
                                   "the node's operator must fix its API key")
    error = UpstreamUnavailable(message)
    if blames_request(status, detail):
        error.request_fault = True
        error.context_window = any(words in detail.lower() for words in _CONTEXT_WINDOW_WORDS)
    return error
