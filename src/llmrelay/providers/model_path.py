"""A model's name as part of an upstream URL's path: validated, then percent-encoded segment by segment.

Every provider that puts a model name in a URL (Cloudflare Workers AI: `.../ai/run/@cf/meta/llama-3.1-8b`)
builds it here, so a client-chosen name can never reach another API path of the upstream (`../../user/
tokens/verify`), add a query or fragment, or break the request line. The `/` between segments stays, as
Cloudflare's names need it; `@` stays literal, as in Cloudflare's own examples.
"""

from urllib.parse import quote

from llmrelay.core.errors import BadRequest

MAX_MODEL_NAME = 512  # characters; real names are under 100, and the name is kept in caches keyed by it

# Never in a model's name, and each would change what a URL means: a query, a fragment, a separator some
# servers read as `/`, an escape the upstream (or a proxy before it) might decode into `..`.
_REFUSED = {"?": "'?'", "#": "'#'", "\\": "a backslash", "%": "'%' (send the name as it is, not encoded)"}


def model_name_problem(model: str) -> str | None:
    """What makes `model` unfit for a URL path, or None when it is fine."""
    if len(model) <= MAX_MODEL_NAME and model.isprintable():
        wrapped = f"/{model}/"
        if ("//" not in wrapped and "/./" not in wrapped and "/../" not in wrapped and "?" not in model
                and "#" not in model and "%" not in model and "\\" not in model):
            return None  # the usual name, in a few C-level scans (key patterns check every request's name)
    if not model:
        return "the model name is empty"
    if len(model) > MAX_MODEL_NAME:
        return f"the model name is {len(model)} characters long; model names are at most {MAX_MODEL_NAME}"
    for segment in model.split("/"):
        if not segment:
            return "the model name has an empty path segment (a leading, trailing or doubled '/')"
        if segment in (".", ".."):
            return f"the model name has a '{segment}' path segment"
    for char in model:
        if char < " " or char == "\x7f":
            return f"the model name contains a control character (U+{ord(char):04X})"
        if char in _REFUSED:
            return f"the model name contains {_REFUSED[char]}"
    return None


def model_path(model: str) -> str:
    """`model` as URL path segments (`@cf/meta/llama-3.1-8b-instruct` stays as it is); a name that could
    change the URL's meaning is a 400 that says why."""
    problem = model_name_problem(model)
    if problem is not None:
        raise BadRequest(f"{problem}: {model[:100]!r} cannot be sent to the upstream; use the model's name as "
                         "the provider lists it, for example \"@cf/meta/llama-3.1-8b-instruct\"")
    return "/".join(quote(segment, safe="@:") for segment in model.split("/"))
