"""The command line: `llmrelay serve`."""

import os
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
