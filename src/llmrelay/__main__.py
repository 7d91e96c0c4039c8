from llmrelay.cli import app

app()
