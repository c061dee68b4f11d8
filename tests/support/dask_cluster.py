"""A real Dask cluster for tests and benchmarks: `dask scheduler` and `dask worker` as subprocesses.

Free ports, one thread per worker, every file (logs, worker scratch) under the given folder. Workers
run without a nanny, so the process started is the worker: SIGKILL on it is a worker dying, and no
nanny brings it back. `pmf team up` runs its own (with nannies); this is for tests that need to kill
one at a chosen moment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")


@dataclass
class DaskCluster:
    address: str
    folder: Path
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def worker_addresses(self) -> dict[str, int]:
        """Each worker's address -> its pid, as the scheduler knows them."""
        with self.client() as client:
            return client.run(os.getpid)

    def kill(self, pid: int) -> None:
        """SIGKILL one worker process started here (only ours: the pid must be one of `workers`)."""
        process = next(p for p in self.workers if p.pid == pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a worker needs: pmf importable, quiet TensorFlow; PREFECT_API_URL comes with each task's context."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *([extra["PYTHONPATH"]] if extra and extra.get("PYTHONPATH") else [])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["TF_USE_LEGACY_KERAS"] = "1"
    return env


def start_cluster(folder: Path, workers: int = 2, env: dict[str, str] | None = None, timeout_s: float = 120) -> DaskCluster:
    """A scheduler on a free port and `workers` one-thread workers; returns once all of them joined."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    environment = worker_env(env)
    scheduler = _spawn(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], folder, "scheduler", environment
    )
    cluster = DaskCluster(address, folder, scheduler)
    try:
        for index in range(workers):
            cluster.workers.append(start_worker(cluster, f"worker-{index + 1}", environment))
        with cluster.client() as client:
            client.wait_for_workers(workers, timeout=timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_worker(cluster: DaskCluster, name: str, env: dict[str, str]) -> subprocess.Popen:
    scratch = cluster.folder / name
    command = [str(DASK), "worker", cluster.address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
    return _spawn([*command, "--local-directory", str(scratch)], cluster.folder, name, env)


def _spawn(command: list[str], folder: Path, name: str, env: dict[str, str]) -> subprocess.Popen:
    with open(folder / f"{name}.log", "ab") as log:
        return subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def dask_cluster(folder: Path, workers: int = 2, env: dict[str, str] | None = None):
    cluster = start_cluster(folder, workers, env)
    try:
        yield cluster
    finally:
        cluster.stop()
