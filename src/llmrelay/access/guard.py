"""Who may send a request, to which model, and how much: the access step between a surface and routing.

`authenticate` runs before a handler reads the body; `admit` once the handler knows the model;
`settle` after the answer, to charge the tokens the upstream reported.
"""

import logging
import time

from llmrelay.access.keys import ApiKey, KeyStore
from llmrelay.access.limits import BYTES_PER_TOKEN, Budget, LocalLimits, RedisLimits
from llmrelay.core.errors import Forbidden, RelayError, Unauthenticated

log = logging.getLogger("llmrelay")

_BEARER = b"bearer "
STORE_WARNING_SECONDS = 10.0
# After the shared store fails, this node counts on its own this long before asking the store again: a Redis
# that stopped answering would otherwise cost every request its timeout.
STORE_RETRY_SECONDS = 1.0


def presented_key(headers) -> str | None:
    """The key a client sent: `Authorization: Bearer` (OpenAI and Ollama clients) or `x-api-key`
    (Anthropic's)."""
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == _BEARER:
            return value[7:].strip().decode("latin-1")
        if name == b"x-api-key":
            return value.strip().decode("latin-1")
    return None


class AccessGuard:
    def __init__(self, keys: KeyStore, limits: RedisLimits | LocalLimits, model_budgets: dict[str, Budget]):
        self.keys = keys
        self.limits = limits
        # While a shared store (Redis) is away, this node counts on its own rather than not at all.
        self.local_limits = LocalLimits()
        self.model_budgets = model_budgets
        self._key_budgets: dict[str, Budget] = {}
        self._warned_at = -STORE_WARNING_SECONDS
        self._store_down_until = 0.0  # monotonic time until which the store is not asked

    def authenticate(self, ex) -> None:
        if self.keys.required:
            ex.key = self.keys.authenticate(presented_key(ex.scope["headers"]))

    def require_master(self, ex) -> None:
        if not self.keys.admin_enabled:
            raise Forbidden("the admin API is off: start the node with LLMRELAY_MASTER_KEY set")
        presented = presented_key(ex.scope["headers"])
        if not self.keys.is_master(presented):
            raise Unauthenticated("the admin API needs the master key (LLMRELAY_MASTER_KEY) as "
                                  "`Authorization: Bearer <key>`")

    def checks(self, ex, model: str) -> bool:
        """Whether `admit` has anything to check: a key, or a budget for the model."""
        return ex.key is not None or model in self.model_budgets

    async def admit(self, ex, model: str) -> None:
        key: ApiKey | None = ex.key
        budgets = []
        if key is not None:
            self.keys.check_model(key, model)
            if (budget := self._key_budget(key)) is not None:
                budgets.append(budget)
        if (budget := self.model_budgets.get(model)) is not None:
            budgets.append(budget)
        if not budgets:
            return
        await self._count(self.limits.admit, self.local_limits.admit, budgets, ex.body_size // BYTES_PER_TOKEN,
                          "rate limits counted by this node alone")

    async def settle(self, ex) -> None:
        """Charge the tokens of a finished request to the budgets that count tokens.

        Awaited before the request's task ends, so that the client's next request sees the charge; only
        budgets with a token limit cost anything here.
        """
        tokens = (ex.prompt_tokens or 0) + (ex.completion_tokens or 0)
        if not tokens:
            return
        budgets = [self.model_budgets.get(ex.model)]
        if ex.key is not None:
            budgets.append(self._key_budget(ex.key))
        budgets = [budget for budget in budgets if budget is not None and budget.counts_tokens]
        if not budgets:
            return
        await self._count(self.limits.charge, self.local_limits.charge, budgets, tokens,
                          "tokens counted by this node alone")

    async def _count(self, shared, local, budgets: list[Budget], amount: int, what: str) -> None:
        """`shared(budgets, amount)` on the limits' store, or `local(...)` on this node's own counters while the
        store is away (a refusal, RateLimited, is no failure of the store)."""
        if time.monotonic() >= self._store_down_until:
            try:
                return await shared(budgets, amount)
            except RelayError:
                raise
            except Exception as exc:  # noqa: BLE001 - the counters' store is down: count here meanwhile
                self._store_failed(what, exc)
        await local(budgets, amount)

    def _store_failed(self, what: str, exc: Exception) -> None:
        """Leave the store alone for STORE_RETRY_SECONDS, and say so in the log, at most once every
        STORE_WARNING_SECONDS, however many requests see it."""
        now = time.monotonic()
        self._store_down_until = now + STORE_RETRY_SECONDS
        if now - self._warned_at >= STORE_WARNING_SECONDS:
            self._warned_at = now
            log.warning("%s: the rate-limit store failed (%s); each node counts on its own until it is back",
                        what, type(exc).__name__)

    def _key_budget(self, key: ApiKey) -> Budget | None:
        if not (key.rpm or key.tpm or key.tokens_per_day):
            return None
        budget = self._key_budgets.get(key.id)
        if budget is None or (budget.rpm, budget.tpm, budget.tokens_per_day) != (key.rpm, key.tpm,
                                                                                 key.tokens_per_day):
            budget = Budget("key", key.id, key.rpm, key.tpm, key.tokens_per_day)
            self._key_budgets[key.id] = budget
        return budget


def model_budgets(models) -> dict[str, Budget]:
    return {model.name: Budget("model", model.name, model.rpm, model.tpm)
            for model in models if model.rpm or model.tpm}
