"""`pmf --help`, `pmf COMMAND --help` and `pmf --version`: what a user reads before running anything."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
from importlib.metadata import version

import pytest

from flows.cli import build_parser
from tests.conftest import REPO

# What each command's help must name: the environment variables that change what it does, its exit codes.
EXPECTED = {
    "run": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PMF_DASK_ADDRESS"}, {0, 1, 2, 3}),
    "validate": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"}, {0, 1, 2, 3}),
    "models": ({"PMF_HOME", "MLFLOW_TRACKING_URI"}, {0, 1, 2}),
    "promote": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PMF_ACTOR"}, {0, 1, 2}),
    "rollback": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PMF_ACTOR"}, {0, 1, 2}),
    "serve": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PMF_SERVE_TOKEN"}, {0, 1, 2}),
    "server": ({"PMF_HOME"}, {0, 1, 2}),
    "schedule": ({"PMF_HOME", "PREFECT_API_URL", "MLFLOW_TRACKING_URI"}, {0, 1, 2}),
    "retrain": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PMF_DASK_ADDRESS"}, {0, 1, 2, 3}),
    "monitor": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"}, {0, 1, 2, 3}),
    "alerts": ({"PMF_HOME", "PREFECT_API_URL"}, {0, 1, 2}),
    "status": ({"PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"}, {0, 1, 2}),
    "team": ({"PMF_HOME"}, {0, 1, 2}),
}


def help_of(*command: str) -> str:
    parser, _ = build_parser()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        parser.parse_args([*command, "--help"])
    assert exit_.value.code == 0
    return out.getvalue()


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser, _ = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def section(text: str, title: str) -> list[str]:
    """The lines of a help section (`environment:`, `exit codes:`, `examples:`) up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(f"{title}:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_every_command_has_its_help_checked_here():
    assert set(subparsers()) == set(EXPECTED)


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_every_option_says_what_it_does_and_its_default(command):
    for action in subparsers()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"pmf {command}: {name} has no help"
        takes_value = action.nargs != 0
        if takes_value and not action.required and not (action.option_strings == [] and action.nargs is None):
            assert "default" in action.help, f"pmf {command}: {name} does not say its default: {action.help!r}"


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_help_lists_environment_exit_codes_and_examples_in_80_columns(command):
    text = help_of(command)
    environment, exit_codes = EXPECTED[command]
    assert subparsers()[command].description, f"pmf {command} --help has no description"
    assert {line.split()[0] for line in section(text, "environment") if not line.startswith("   ")} >= environment
    assert {int(line.split()[0]) for line in section(text, "exit codes") if not line.startswith("   ")} == exit_codes
    examples = section(text, "examples")
    assert any(f"pmf {command}" in line for line in examples), examples
    assert [line for line in text.splitlines() if len(line) > 80] == []


def test_top_level_help_lists_commands_environment_exit_codes_and_examples():
    text = help_of()
    assert all(command in text for command in EXPECTED)
    assert {int(line.split()[0]) for line in section(text, "exit codes") if not line.startswith("   ")} == {0, 1, 2, 3}
    assert "PMF_HOME" in text
    assert section(text, "examples")
    assert [line for line in text.splitlines() if len(line) > 80] == []


def test_version_is_the_installed_package_version():
    done = subprocess.run([sys.executable, "-m", "flows.cli", "--version"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"pmf {version('pmf')}\n"
