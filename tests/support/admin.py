"""What tests of a node with keys share: its master key, a key made through the admin API, a question."""

import time

import httpx

MASTER = "master-key-for-tests-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}
QUESTION = [{"role": "user", "content": "why is the sky blue?"}]


def create_key(node, name: str = "test", **fields) -> dict:
    """A new key (POST /admin/keys): its record, and the key itself under "key"."""
    response = httpx.post(node.url + "/admin/keys", json={"name": name, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def eventually(check, seconds: float) -> bool:
    """True as soon as `check()` is, False if it never was within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
