"""`pmf` as a user's shell runs it: a separate process, its own workspace, signals and all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO


def pmf_env(home: Path, **extra: str) -> dict[str, str]:
    """The test process's environment with PMF_HOME set and nothing that a user's shell would not have."""
    env = {**os.environ, "PMF_HOME": str(home), **extra}
    for key in ("PMF_ARTIFACT_ROOT", "PMF_NO_WARMUP", "PREFECT_HOME", "PREFECT_API_URL"):
        env.pop(key, None)
    if "MLFLOW_TRACKING_URI" not in extra:
        env.pop("MLFLOW_TRACKING_URI", None)  # the embedded default under PMF_HOME
    env["PYTHONPATH"] = str(REPO)  # `python -m flows.cli` from any folder, as the installed `pmf` runs
    return env


def pmf_process(home: Path, *args: str, cwd: Path = REPO, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=cwd,
        env=pmf_env(home, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout_s`. The pause between polls grows
    from 50 ms to 0.5 s: a quick condition is seen at once, a long wait (a flow run on a server) does not
    load the machine it waits on with thousands of API calls."""
    deadline = time.monotonic() + timeout_s
    pause = 0.05
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)


def read_stderr_until(process: subprocess.Popen, marker: str, timeout_s: float) -> str:
    """Read the process's stderr line by line until a line holds `marker`; returns what was read."""
    seen = []
    deadline = time.monotonic() + timeout_s
    for line in process.stderr:
        seen.append(line)
        if marker in line:
            return "".join(seen)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {marker!r} on stderr within {timeout_s:.0f}s:\n{''.join(seen)[-3000:]}")


def children_of(pid: int) -> list[int]:
    """The direct child processes of `pid` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(p) for p in text.split()]
    return found


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
