"""The command line: `llmrelay serve`, `chat`, `models`, `keys`, `usage` and `cluster`."""

import os
import sys
from enum import Enum
from pathlib import Path

import typer

from llmrelay.settings import SettingsError, load_settings

app = typer.Typer(help="llmrelay: one endpoint for any LLM.", no_args_is_help=True, add_completion=False)


class LogFormat(str, Enum):
    text = "text"
    json = "json"


@app.callback()
def main() -> None:
    """llmrelay: one endpoint for any LLM."""


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind  [default: 127.0.0.1, or LLMRELAY_HOST]"),
    port: int = typer.Option(None, help="Port to listen on  [default: 8080, or LLMRELAY_PORT]"),
    config: Path = typer.Option(None, help="YAML config file  [default: ./llmrelay.yaml if present]"),
    workers: int = typer.Option(None, help="Worker processes  [default: 1]"),
    log_format: LogFormat = typer.Option(None, help="Log lines as text or JSON  [default: text]"),
    allow_open: bool = typer.Option(None, "--allow-open", help="Serve a non-loopback address without API keys"),
) -> None:
    """Start the node."""
    # Options become environment variables so that every worker process builds the same settings.
    for variable, value in (("LLMRELAY_HOST", host), ("LLMRELAY_PORT", port), ("LLMRELAY_CONFIG", config),
                            ("LLMRELAY_WORKERS", workers),
                            ("LLMRELAY_LOG_FORMAT", log_format.value if log_format else None),
                            ("LLMRELAY_ALLOW_OPEN", "true" if allow_open else None)):
        if value is not None:
            os.environ[variable] = str(value)
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"llmrelay: {exc}", err=True)
        raise typer.Exit(2) from None

    from llmrelay.server import OpenToTheNetwork, check_exposure, run

    try:
        check_exposure(settings)
    except OpenToTheNetwork as exc:
        typer.echo(f"llmrelay: {exc}", err=True)
        raise typer.Exit(2) from None
    run(settings)


def _client(url: str, api_key: str | None):
    from llmrelay.client import NodeClient
    return NodeClient(url, api_key)


URL_OPTION = typer.Option("http://127.0.0.1:8080", "--url", envvar="LLMRELAY_URL", help="The node to ask")
KEY_OPTION = typer.Option(None, "--api-key", envvar="LLMRELAY_API_KEY", help="A key, if the node requires one")


@app.command()
def models(url: str = URL_OPTION, api_key: str = KEY_OPTION) -> None:
    """List the models a running node serves."""
    from llmrelay.client import NodeError
    try:
        listed = _client(url, api_key).models()
    except NodeError as exc:
        typer.echo(f"llmrelay: {exc}", err=True)
        raise typer.Exit(1) from None
    for model in listed:
        typer.echo(f"{model['id']}\t{model.get('owned_by', '')}")


@app.command()
def chat(
    question: str = typer.Argument(None, help="Ask this and print the answer; without it, an interactive chat"),
    model: str = typer.Option(None, help="Model to ask  [default: the node's first model]"),
    url: str = URL_OPTION,
    api_key: str = KEY_OPTION,
) -> None:
    """Chat with a running node; the answer streams to the terminal."""
    from llmrelay.client import NodeError
    client = _client(url, api_key)
    try:
        model = model or next(iter(client.models()), {}).get("id")
        if not model:
            raise NodeError("the node serves no model; configure one, or pass --model")
        history: list[dict] = []
        while True:
            text = question if question is not None else _prompt()
            if text is None:
                return
            history.append({"role": "user", "content": text})
            answer = []
            for piece in client.chat(model, history):
                answer.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            history.append({"role": "assistant", "content": "".join(answer)})
            if question is not None:
                return
    except NodeError as exc:
        typer.echo(f"llmrelay: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _prompt() -> str | None:
    """The next question, or None at end of input or "exit"."""
    while True:
        try:
            text = input("> ").strip()
        except EOFError:
            return None
        if text in ("exit", "quit"):
            return None
        if text:
            return text


keys_app = typer.Typer(help="Create, list and revoke API keys (needs the master key).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
MASTER_OPTION = typer.Option(None, "--master-key", envvar="LLMRELAY_MASTER_KEY",
                             help="The node's master key  [default: LLMRELAY_MASTER_KEY]")


def _admin(url: str, master_key: str | None, method: str, path: str, payload: dict | None = None):
    from llmrelay.client import NodeError
    if not master_key:
        typer.echo("llmrelay: the admin API needs the master key: set LLMRELAY_MASTER_KEY or pass --master-key",
                   err=True)
        raise typer.Exit(2)
    try:
        return _client(url, master_key).call(method, path, payload)
    except NodeError as exc:
        typer.echo(f"llmrelay: {exc}", err=True)
        raise typer.Exit(1) from None


def _table(columns: list[str], rows: list[list]) -> None:
    """A table on a terminal; tab-separated lines, whole and easy to script, anywhere else."""
    cells = [["-" if value is None else str(value) for value in row] for row in rows]
    if not sys.stdout.isatty():
        for line in [columns, *cells]:
            typer.echo("\t".join(line))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in cells:
        table.add_row(*row)
    Console().print(table)


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="Who or what the key is for"),
    models: str = typer.Option(None, help="Models it may use, comma-separated (a trailing * matches a prefix)"),
    rpm: int = typer.Option(None, help="Requests per minute", min=1),
    tpm: int = typer.Option(None, help="Tokens per minute", min=1),
    tokens_per_day: int = typer.Option(None, help="Tokens per day", min=1),
    expires: str = typer.Option(None, help="Lifetime, e.g. 30d, 12h"),
    url: str = URL_OPTION,
    master_key: str = MASTER_OPTION,
) -> None:
    """Create a key and print it: it is shown this once and never again."""
    payload = {"name": name, "rpm": rpm, "tpm": tpm, "tokens_per_day": tokens_per_day, "expires": expires,
               "models": [m.strip() for m in models.split(",") if m.strip()] if models else None}
    created = _admin(url, master_key, "POST", "/admin/keys", {k: v for k, v in payload.items() if v is not None})
    typer.echo(created["key"])
    typer.echo(f"created {created['id']} ({created['name']}); keep the key now: it cannot be shown again",
               err=True)


@keys_app.command("list")
def keys_list(url: str = URL_OPTION, master_key: str = MASTER_OPTION) -> None:
    """List the keys (never the keys themselves)."""
    keys = _admin(url, master_key, "GET", "/admin/keys")["data"]
    _table(["id", "name", "hint", "state", "models", "rpm", "tpm", "tokens/day", "expires"],
           [[k["id"], k["name"], k["hint"], k["state"], ",".join(k["models"] or []) or "all", k["rpm"], k["tpm"],
             k["tokens_per_day"], _when(k["expires_at"])] for k in keys])


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id, from `llmrelay keys list`"),
                url: str = URL_OPTION, master_key: str = MASTER_OPTION) -> None:
    """Revoke a key: requests with it are refused from now on, on every node sharing the database."""
    revoked = _admin(url, master_key, "DELETE", f"/admin/keys/{key_id}")
    typer.echo(f"revoked {revoked['id']} ({revoked['name']})")


class Grouping(str, Enum):
    key = "key"
    model = "model"
    day = "day"


@app.command()
def usage(
    by: Grouping = typer.Option(Grouping.model, help="Group by key, model or day"),
    since: str = typer.Option("7d", help="How far back, e.g. 24h, 7d"),
    url: str = URL_OPTION,
    master_key: str = MASTER_OPTION,
) -> None:
    """Requests, errors and tokens from the usage records."""
    from urllib.parse import urlencode
    rows = _admin(url, master_key, "GET", "/admin/usage?" + urlencode({"by": by.value, "since": since}))["data"]
    columns = [by.value] + (["name"] if by is Grouping.key else []) + [
        "requests", "errors", "prompt tokens", "completion tokens", "avg ms", "avg ttft ms"]
    _table(columns, [[row[by.value]] + ([row.get("key_name")] if by is Grouping.key else []) + [
        row["requests"], row["errors"], row["prompt_tokens"], row["completion_tokens"], row["avg_total_ms"],
        row["avg_ttft_ms"]] for row in rows])


def _when(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    import datetime
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@app.command()
def cluster(url: str = URL_OPTION, master_key: str = MASTER_OPTION) -> None:
    """The nodes of the cluster a node belongs to: their models and their load."""
    from llmrelay.client import NodeError
    try:
        report = _client(url, master_key).call("GET", "/admin/cluster")
    except NodeError as exc:
        typer.echo(f"llmrelay: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"redis: {report['redis']}", err=True)
    nodes = [report["node"], *report["nodes"]]
    _table(["node", "url", "in flight", "heartbeat", "models"],
           [[node["id"] + (" (this)" if node is report["node"] else ""), node["url"], node["in_flight"],
             f"{node['heartbeat_age_s']} s", ",".join(node["models"]) or "-"] for node in nodes])
