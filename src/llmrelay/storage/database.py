"""Where the node keeps its API keys and usage records: a SQLite file (the default) or PostgreSQL.

Plain drivers (sqlite3, psycopg) behind one small class: the SQL is a handful of statements, and the two
dialects differ only in placeholders, the day of a timestamp and how a connection is opened. Every method
blocks: callers run it on a writer thread or through `asyncio.to_thread`, never on the event loop. Each
thread gets its own connection.
"""

import sqlite3
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from llmrelay.storage.records import KEY_COLUMNS, USAGE_COLUMNS

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        models TEXT,
        rpm INTEGER,
        tpm INTEGER,
        tokens_per_day INTEGER,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        revoked_at DOUBLE PRECISION,
        changed_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS usage (
        at DOUBLE PRECISION NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT,
        surface TEXT NOT NULL,
        model TEXT,
        provider TEXT,
        deployment TEXT,
        status INTEGER NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        tokens_estimated BOOLEAN NOT NULL,
        ttft_ms DOUBLE PRECISION,
        total_ms DOUBLE PRECISION NOT NULL,
        error_type TEXT)""",
    "CREATE INDEX IF NOT EXISTS usage_at ON usage (at)",
)

GROUPINGS = ("key", "model", "day")

# sqlite3 binds None and bool only after looking for an adaptation protocol on them, formatting, raising and
# swallowing an AttributeError per value (CPython 3.11); registered adapters take the direct path and bind the
# same values. A usage row has three such values: 354k -> 344k instructions per request (bench/instructions.py).
sqlite3.register_adapter(type(None), lambda value: None)
sqlite3.register_adapter(bool, int)


class Database:
    """One database, shared by the key store and the usage writer."""

    placeholder = "?"
    day_of_at = "date(at, 'unixepoch')"

    def __init__(self, display: str):
        self.display = display  # where it is, without credentials: safe for logs
        self._local = threading.local()
        self._connections: list = []
        self._lock = threading.Lock()

    # ---- connections ----

    def _connect(self):
        raise NotImplementedError

    def connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001 - closing is best effort; another thread may own it
                    pass
            self._connections.clear()
        self._local = threading.local()

    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _execute(self, statement: str, params=()) -> list[tuple]:
        connection = self.connection()
        cursor = connection.cursor()
        try:
            cursor.execute(self._sql(statement), params)
            rows = cursor.fetchall() if cursor.description else []
            connection.commit()
            return rows
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()

    def migrate(self) -> None:
        for statement in _SCHEMA:
            self._execute(statement)

    # ---- usage ----

    def insert_usage(self, rows: list[tuple]) -> None:
        """All rows in one transaction: a batch lands whole or not at all."""
        marks = ", ".join("?" for _ in USAGE_COLUMNS)
        statement = self._sql(f"INSERT INTO usage ({', '.join(USAGE_COLUMNS)}) VALUES ({marks})")
        connection = self.connection()
        cursor = connection.cursor()
        try:
            cursor.executemany(statement, rows)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()

    def usage_summary(self, by: str, since: float) -> list[dict]:
        group = {"key": "usage.key_id", "model": "usage.model", "day": self.day_of_at}[by]
        rows = self._execute(
            f"SELECT {group} AS grp, MAX(api_keys.name), COUNT(*),"
            " SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),"
            " COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), AVG(total_ms), AVG(ttft_ms)"
            " FROM usage LEFT JOIN api_keys ON api_keys.id = usage.key_id"
            f" WHERE at >= ? GROUP BY {group} ORDER BY {group}", (since,))
        summary = []
        for group_value, key_name, requests, errors, prompt, completion, total_ms, ttft_ms in rows:
            entry = {by: group_value, "requests": requests, "errors": int(errors), "prompt_tokens": int(prompt),
                     "completion_tokens": int(completion), "avg_total_ms": _rounded(total_ms),
                     "avg_ttft_ms": _rounded(ttft_ms)}
            if by == "key":
                entry["key_name"] = key_name
            summary.append(entry)
        return summary

    def usage_records(self, since: float, limit: int, errors_only: bool = False) -> list[dict]:
        where = "at >= ?" + (" AND status >= 400" if errors_only else "")
        rows = self._execute(f"SELECT {', '.join(USAGE_COLUMNS)} FROM usage WHERE {where} ORDER BY at DESC LIMIT ?",
                             (since, limit))
        return [dict(zip(USAGE_COLUMNS, row)) for row in rows]

    # ---- keys ----

    def insert_key(self, row: tuple) -> None:
        marks = ", ".join("?" for _ in KEY_COLUMNS)
        self._execute(f"INSERT INTO api_keys ({', '.join(KEY_COLUMNS)}) VALUES ({marks})", row)

    def revoke_key(self, key_id: str, at: float) -> bool:
        """Revoke one key; False when there is no such key (revoking twice is fine)."""
        self._execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?), changed_at = ? WHERE id = ?",
                      (at, at, key_id))
        return bool(self._execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)))

    def keys(self) -> list[tuple]:
        return self._execute(f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys ORDER BY created_at")

    def keys_version(self) -> tuple:
        """Changes whenever a key is added or changed, by this node or another sharing the database."""
        return tuple(self._execute("SELECT COUNT(*), MAX(changed_at) FROM api_keys")[0])


class SQLiteDatabase(Database):
    def __init__(self, path: Path):
        super().__init__(f"sqlite:///{path}")
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self):
        connection = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        # WAL: readers (the admin API) never block the usage writer, and workers can share the file.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection


class PostgresDatabase(Database):
    placeholder = "%s"
    day_of_at = "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def __init__(self, url: str):
        parts = urlsplit(url)
        super().__init__(f"postgresql://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"
                         f"{parts.path}")
        self.url = url

    def _connect(self):
        import psycopg  # only a node that uses PostgreSQL loads the driver

        return psycopg.connect(self.url, connect_timeout=10)


def open_database(url: str | None, data_dir: Path) -> Database:
    """The database `LLMRELAY_DATABASE_URL` names, else `llmrelay.db` in the node's data directory.

    SQLite URLs follow SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db.
    """
    if not url:
        return SQLiteDatabase(data_dir / "llmrelay.db")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return SQLiteDatabase(Path(unquote(parts.path[1:])))
    return PostgresDatabase(url)


def _rounded(value) -> float | None:
    return None if value is None else round(float(value), 3)


def describe_error(exc: Exception) -> str:
    """A database error's kind and first line, for logs: dropped when it could carry a connection string."""
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    if "://" in first_line or "password" in first_line.lower():
        return type(exc).__name__
    return f"{type(exc).__name__}: {first_line}"[:200]
