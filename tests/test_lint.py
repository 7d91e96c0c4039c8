"""The tree passes ruff's checks (pyflakes, pycodestyle, import order) and mypy's, as configured in
pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    command = shutil.which(tool, path=str(Path(sys.executable).parent)) or shutil.which(tool)
    assert command, f"{tool} is a test dependency: pip install -e '.[test]'"
    return subprocess.run([command, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
