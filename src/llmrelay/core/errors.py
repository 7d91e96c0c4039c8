"""One error hierarchy for the whole node; each error knows its HTTP status.

Surfaces render these in their own API's error shape. Messages are written for a person: they say what
went wrong and what to do about it, and never contain a secret.
"""


class RelayError(Exception):
    status = 500
    type = "internal_error"
    retryable = False  # another attempt (another deployment, or later) may succeed
    context_window = False  # the prompt is too long for this model; a larger one may take it

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
    status = 503
    type = "no_upstream_configured"


class UpstreamTimeout(RelayError):
    status = 504
    type = "upstream_timeout"
    retryable = True


_CONTEXT_WINDOW_WORDS = ("context length", "context window", "maximum context", "too many tokens",
                         "prompt is too long", "exceeds the context", "input is too long", "context_length_exceeded")


def from_upstream_status(upstream: str, status: int, detail: str, retry_after: str | None = None) -> RelayError:
    """The node's error for an upstream's HTTP error, when the answer must be translated to another API.

    The client's own mistakes (400, 404, 413, 429) keep their status; the upstream refusing the node's
    credentials or failing is the node's problem (502), not the client's.
    """
    message = f"the {upstream} upstream answered {status}: {detail}"
    if status in (400, 413, 422):
        error = PayloadTooLarge(message) if status == 413 else BadRequest(message)
        error.context_window = any(words in detail.lower() for words in _CONTEXT_WINDOW_WORDS)
        return error
    if status == 404:
        return NotFound(message)
    if status == 429:
        error = RateLimited(message, headers={"Retry-After": retry_after} if retry_after else None)
        error.retryable = True
        return error
    if status in (401, 403):
        return UpstreamUnavailable(f"the {upstream} upstream refused the node's credentials ({status}: {detail}); "
                                   "the node's operator must fix its API key")
    return UpstreamUnavailable(message)
