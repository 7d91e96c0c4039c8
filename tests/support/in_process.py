"""An ASGI server run in a thread of the test process, for tests that drive the server protocol (or the app
under another server) directly."""

import contextlib
import threading
import time

import uvicorn


@contextlib.contextmanager
def serving(server: uvicorn.Server, **run_options):
    """Run `server` in a thread until the block ends; `run_options` go to `Server.run` (e.g. sockets)."""
    thread = threading.Thread(target=server.run, kwargs=run_options, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)
