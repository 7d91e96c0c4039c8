"""The node's endpoints, each declared once: path, method, handler, the API it belongs to and who may call it.

Dispatch, the access rule, the error shape, usage accounting and `/openapi.json` are all read from one
`Endpoints` table (built in app.py), so they cannot drift apart.
"""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from llmrelay.core.errors import RelayError

Handler = Callable[..., Awaitable[None]]


class Access(Enum):
    PUBLIC = "public"  # anyone: liveness, readiness, the API description, the pages and their files
    KEY = "key"  # an API key when keys are on
    MASTER = "master"  # always the master key (changing keys)
    ADMIN = "admin"  # the master key when keys are on; an open node's dashboard reads its own state
    METRICS = "metrics"  # the master key when keys are on, unless LLMRELAY_PUBLIC_METRICS


@dataclass(frozen=True, slots=True)
class Api:
    """An API the node speaks to clients: its name in usage records and its error shape."""
    name: str
    error_body: Callable[[RelayError], bytes]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # one "{name}" segment matches any one segment there (/admin/keys/{key_id})
    handler: Handler
    summary: str
    access: Access
    api: Api | None = None  # None: the node's own error shape
    asks_model: bool = False  # a model request: counts against capacity, gets a usage record
    body: dict | None = None  # the request body's JSON schema, for /openapi.json
    streams: str | None = None  # the content type of a streamed answer
    answers: str = "application/json"  # the content type of a whole answer

    @property
    def parameter(self) -> tuple[str, str, str] | None:
        """For a path with a {parameter} segment: what comes before it, its name, and what comes after."""
        if "{" not in self.path:
            return None
        before, _, rest = self.path.partition("{")
        name, _, after = rest.partition("}")
        return before, name, after


class Endpoints:
    def __init__(self, endpoints: Iterable[Endpoint]):
        self.all = list(endpoints)
        self.exact: dict[str, dict[str, Endpoint]] = {}
        self.patterns: dict[tuple[str, str], dict[str, Endpoint]] = {}  # (before, after) -> by method
        for endpoint in self.all:
            parameter = endpoint.parameter
            if parameter is None:
                methods = self.exact.setdefault(endpoint.path, {})
            else:
                methods = self.patterns.setdefault((parameter[0], parameter[2]), {})
            if endpoint.method in methods:
                raise ValueError(f"{endpoint.method} {endpoint.path} is declared twice")
            methods[endpoint.method] = endpoint

    def methods_at(self, path: str) -> dict[str, Endpoint] | None:
        """The endpoints at `path` by method, or None when nothing is served there."""
        methods = self.exact.get(path)
        if methods is not None:
            return methods
        for (before, after), methods in self.patterns.items():
            if path.startswith(before) and path.endswith(after) and len(path) > len(before) + len(after):
                if "/" not in path[len(before):len(path) - len(after)]:
                    return methods
        return None
