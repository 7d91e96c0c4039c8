"""The step a model request passes once it names its model: the key must allow the model, the rate limits
must admit the request, and in a cluster a model that only another node serves goes there."""

from llmrelay.access.guard import AccessGuard
from llmrelay.asgi import Exchange, ForwardTo


class ModelGate:
    def __init__(self, guard: AccessGuard, nodes=None):
        """`nodes`: the cluster's registry (`node_for(model)`), or None for a node on its own."""
        self.guard = guard
        self.nodes = nodes

    async def admit(self, ex: Exchange, model: str) -> None:
        ex.model = model
        if self.guard.checks(ex, model):
            await self.guard.admit(ex, model)
        if self.nodes is not None and not ex.forwarded:
            node = self.nodes.node_for(model)
            if node is not None:
                raise ForwardTo(node)

    def remote_models(self) -> list[tuple[str, str]]:
        """(name, "node <id>") for the models only other nodes of the cluster serve (requests go there)."""
        return self.nodes.models() if self.nodes is not None else []
