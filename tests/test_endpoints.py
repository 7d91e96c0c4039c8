"""The endpoint table is the one list of endpoints: what is routed is documented, and what is documented is
routed."""

import httpx

from llmrelay.app import create_app
from llmrelay.endpoints import Access, Api, Endpoint, Endpoints


def concrete(path: str) -> str:
    return path.replace("{key_id}", "key-that-does-not-exist").replace("{name}", "chat.js")


def test_every_routed_endpoint_is_in_the_openapi_document(node):
    document = httpx.get(node.url + "/openapi.json").json()["paths"]
    app = create_app()
    routed = {(endpoint.path, endpoint.method.lower()) for endpoint in app.endpoints.all}
    documented = {(path, method) for path, item in document.items() for method in item}
    assert routed == documented
    for path in ("/admin/stats", "/admin/cluster", "/admin/usage/cluster"):  # missing before the table
        assert path in document


def test_every_documented_path_is_routed(node):
    document = httpx.get(node.url + "/openapi.json").json()["paths"]
    for path, item in document.items():
        for method in item:
            response = httpx.request(method.upper(), node.url + concrete(path), json={})
            unrouted = response.status_code in (404, 405) and "no endpoint at" in response.text
            assert not unrouted and response.status_code != 405, (method, path, response.status_code, response.text)


def test_unknown_paths_and_methods_are_refused_in_the_apis_shape(node):
    missing = httpx.get(node.url + "/v1/nothing-here")
    assert missing.status_code == 404 and "openapi.json" in missing.json()["error"]["message"]
    wrong = httpx.get(node.url + "/api/chat")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert isinstance(wrong.json()["error"], str)  # Ollama's shape: {"error": "..."}


def test_an_endpoint_declared_twice_is_refused_at_start():
    async def handler(ex):
        pass
    twice = [Endpoint("GET", "/x", handler, "x", Access.PUBLIC), Endpoint("GET", "/x", handler, "y", Access.KEY)]
    try:
        Endpoints(twice)
    except ValueError as error:
        assert "declared twice" in str(error)
    else:
        raise AssertionError("a second GET /x was accepted")


def test_a_parameter_segment_matches_one_segment_only():
    async def handler(ex):
        pass
    table = Endpoints([Endpoint("DELETE", "/admin/keys/{key_id}", handler, "", Access.MASTER),
                       Endpoint("POST", "/admin/keys/{key_id}/revoke", handler, "", Access.MASTER,
                                api=Api("x", lambda error: b""))])
    assert set(table.methods_at("/admin/keys/k1")) == {"DELETE"}
    assert set(table.methods_at("/admin/keys/k1/revoke")) == {"POST"}
    assert table.methods_at("/admin/keys/") is None
    assert table.methods_at("/admin/keys/a/b") is None
