"""The usage writer on its own, with a real SQLite file: it writes on idle cores, and a writer at a working
priority takes over when those stay busy."""

import os
import sqlite3
import subprocess
import sys
import time

from llmrelay.observability.recorder import RequestRecord
from llmrelay.storage.database import open_database
from llmrelay.usage.writer import BATCH, CATCH_UP, UsageWriter


def record(number: int) -> RequestRecord:
    return RequestRecord(time.time(), "POST", "/api/v1/chat", "passthrough", "llama3", "ollama", "ollama",
                         "ollama http://127.0.0.1:11434", None, 200, 1.5, 1.0, 1.2, 400, "%032x" % number, None,
                         12, 10, False)


def test_rows_land_even_when_no_core_is_ever_idle(tmp_path):
    """Every core busy at the ordinary priority (as on a saturated node): a thread on idle cores alone would
    write these rows at some 0.3 % of a core, in tens of seconds; the writer that takes over, 10 nice levels
    below, in about a second."""
    database = open_database(None, tmp_path)
    database.migrate()
    writer = UsageWriter(database)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    total = CATCH_UP + 2 * BATCH
    try:
        time.sleep(0.5)  # the busy loops running
        writer([record(number) for number in range(total)], 0)
        deadline = time.monotonic() + 10
        while writer.written < total and time.monotonic() < deadline:
            time.sleep(0.1)
        assert writer.written == total, f"{writer.written} of {total} rows written in 10 s"
    finally:
        for process in busy:
            process.kill()
            process.wait()
    writer.close()
    database.close()
    connection = sqlite3.connect(tmp_path / "llmrelay.db")
    try:
        assert connection.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM usage").fetchone() == (total, total)
    finally:
        connection.close()
