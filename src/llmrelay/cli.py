"""The command line: `llmrelay serve`, `chat` and `models`."""

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
) -> None:
    """Start the node."""
    # Options become environment variables so that every worker process builds the same settings.
    for variable, value in (("LLMRELAY_HOST", host), ("LLMRELAY_PORT", port), ("LLMRELAY_CONFIG", config),
                            ("LLMRELAY_WORKERS", workers),
                            ("LLMRELAY_LOG_FORMAT", log_format.value if log_format else None)):
        if value is not None:
            os.environ[variable] = str(value)
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"llmrelay: {exc}", err=True)
        raise typer.Exit(2) from None

    from llmrelay.server import run

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
