"""A workspace that cannot take writes (read-only, full) ends a command within seconds in one line
naming the folder, exit 1; an unexpected error ends in one line that names the log with its traceback.

Read-only and full disks are real: small tmpfs mounts (the tests run as root, whom chmod does not stop).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.support.pmf_process import pmf_process

pytestmark = pytest.mark.slow

PENGUINS = str(DATA / "penguins.csv")


@pytest.fixture
def mount(tmp_path) -> Iterator:
    """mount(size, read_only) -> a fresh tmpfs folder; unmounted after the test."""
    mounted: list[Path] = []

    def make(size: str, read_only: bool = False) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): a real read-only or full disk is needed")
        mounted.append(folder)
        return folder

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=True)


def run_pmf(home: Path, *args: str, cwd: Path, **env: str) -> tuple[int, str, float]:
    started = time.monotonic()
    process = pmf_process(home, *args, cwd=cwd, **env)
    _, err = process.communicate(timeout=300)
    return process.returncode, err, time.monotonic() - started


def error_lines(command: str, err: str) -> list[str]:
    """stderr without the header `pmf run · NAME · DATA` that run and validate print first."""
    lines = err.strip().splitlines()
    if command in ("run", "validate"):
        assert lines[0].startswith(f"pmf {command} · "), err
        return lines[1:]
    return lines


@pytest.mark.parametrize("command", [["validate", "--data", PENGUINS, "--target", "species"], ["run"], ["models"]])
def test_a_read_only_workspace_fails_at_once_in_one_line(mount, tmp_path, command):
    home = mount("1m", read_only=True)

    code, err, seconds = run_pmf(home, *command, cwd=tmp_path)

    assert code == 1
    assert error_lines(command[0], err) == [
        f"pmf: failed: workspace {home} is on a read-only file system: set PMF_HOME to a writable folder"
    ]
    assert seconds < 20  # no Prefect server is waited for (it used to take 99 s)


def test_a_workspace_that_cannot_be_created_fails_in_one_line(mount, tmp_path):
    home = mount("1m", read_only=True) / "pmf-home"

    code, err, _ = run_pmf(home, "run", cwd=tmp_path)

    assert code == 1
    assert error_lines("run", err) == [
        f"pmf: failed: workspace {home} is on a read-only file system: set PMF_HOME to a writable folder"
    ]


def test_a_full_workspace_disk_fails_at_once_naming_the_free_space(mount, tmp_path):
    home = mount("2m")
    (home / "ballast").write_bytes(b"\0" * 1536 * 1024)

    code, err, seconds = run_pmf(home, "run", cwd=tmp_path)

    assert code == 1
    lines = error_lines("run", err)
    assert len(lines) == 1, err
    assert re.fullmatch(
        rf"pmf: failed: no room in workspace {home}: \d+\.\d KB free, pmf needs at least 64\.0 MB: "
        r"free some space or set PMF_HOME to another disk",
        lines[0],
    )
    assert seconds < 20


def test_a_store_on_a_disk_that_fills_up_fails_in_one_line_naming_it(mount, tmp_path):
    full = mount("128k")
    home = tmp_path / "home"

    code, err, _ = run_pmf(
        home,
        "validate",
        "--data",
        PENGUINS,
        "--target",
        "species",
        cwd=tmp_path,
        MLFLOW_TRACKING_URI=f"sqlite:///{full / 'mlflow.db'}",
    )

    assert code == 1
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert re.fullmatch(
        rf"pmf: failed: no space left on the disk of {full}/mlflow\.db \(\d+\.\d KB free\): "
        r"free some space or set PMF_HOME to another disk",
        lines[-1],
    ), err
    assert [line for line in lines if line.startswith("pmf:")] == [lines[-1]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unexpected_error_is_one_line_naming_the_log_with_the_traceback(tmp_path):
    home = tmp_path / "home"
    down = f"http://127.0.0.1:{free_port()}"  # a tracking server that is not there

    code, err, _ = run_pmf(
        home,
        "validate",
        "--data",
        PENGUINS,
        "--target",
        "species",
        cwd=tmp_path,
        MLFLOW_TRACKING_URI=down,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )

    assert code == 1
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    # A tracking server that does not answer is named in words (tasks.registry.tracking), the traceback logged.
    match = re.fullmatch(r"pmf: failed: the MLflow tracking server at (\S+) did not answer .+ \(details: (.+\.log)\)", line)
    assert match, err
    assert match.group(1) == down
    log = Path(match.group(2))
    assert log.parent == home / "logs"
    assert "Traceback (most recent call last)" in log.read_text(encoding="utf-8")
    assert list(home.glob("tmp/*")) == []
