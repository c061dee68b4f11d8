"""The console: lines reach the terminal even while another thread mutes native stderr."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

MUTED_WHILE_PRINTING = """
import threading
from flows.console import CONSOLE
from tasks.model.tf_env import native_stderr_silenced

converting, printed = threading.Event(), threading.Event()

def conversion():  # what a TFLite conversion in a compression thread does
    with native_stderr_silenced():
        converting.set()
        printed.wait(10)

worker = threading.Thread(target=conversion)
worker.start()
converting.wait(10)
CONSOLE.line("  ✓ pruned_int8 built in 9.9 s (5/8)")
printed.set()
worker.join()
"""


def test_a_progress_line_printed_while_another_thread_mutes_stderr_is_not_lost():
    done = subprocess.run([sys.executable, "-c", MUTED_WHILE_PRINTING], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["  ✓ pruned_int8 built in 9.9 s (5/8)"]
