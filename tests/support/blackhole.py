"""A loopback address whose connections never complete: a listening socket with a full accept queue.

Linux drops further SYNs while the queue is full, so a client's connect() waits until its own timeout —
what a firewalled or overloaded upstream looks like.
"""

import socket
import time


class Blackhole:
    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        for _ in range(4):  # enough to fill a backlog of 0 (the kernel admits one more than the backlog)
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in self.fillers:
            sock.close()
        self.listener.close()
