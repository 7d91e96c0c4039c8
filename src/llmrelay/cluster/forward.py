"""Node to node: a request for a model this node does not serve goes, as it is, to a live node that does.

The receiving node trusts the request because it carries the cluster secret (`LLMRELAY_CLUSTER_SECRET`):
the first node already checked the client's key and counted it against the limits, and it keeps the usage
record (the receiving one writes none, so nothing is counted twice). A forwarded request is never
forwarded again.
"""

import hmac

from llmrelay.asgi import Exchange
from llmrelay.cluster.registry import NodeInfo
from llmrelay.providers.http_client import UpstreamClient
from llmrelay.providers.upstream import Upstream
from llmrelay.relay.forwarding import forward
from llmrelay.relay.headers import PEER_PREFIX

CLUSTER_HEADER = "x-llmrelay-cluster"
_CLUSTER_HEADER = CLUSTER_HEADER.encode()


class Forwarder:
    def __init__(self, client: UpstreamClient, secret: str):
        self.client = client
        self.secret = secret
        self._secret = secret.encode()

    def from_peer(self, ex: Exchange) -> bool:
        presented = ex.header(_CLUSTER_HEADER)
        return presented is not None and hmac.compare_digest(presented, self._secret)

    async def forward(self, ex: Exchange, node: NodeInfo) -> None:
        url = node.url + ex.path
        upstream = Upstream(name=PEER_PREFIX + node.id, base_url=node.url, chat_url=url, probe_url=node.url + "/health",
                            setting=f"LLMRELAY_NODE_URL of node {node.id}",
                            auth_headers=((CLUSTER_HEADER, self.secret),))
        ex.upstream = upstream.name
        await forward(ex, self.client, upstream, ex.request_body, url)
