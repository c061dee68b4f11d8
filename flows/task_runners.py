"""Where the compress stage's variant builds run: threads in the flow's process (the default), or the
Dask cluster `PMF_DASK_ADDRESS` names (`pmf run` / `pmf retrain --dask-address ADDR` set it).

On Dask only the builds go there: the compress stage opens a `DaskTaskRunner` for them alone and
submits `compress-<variant>` task runs to it; every other task keeps the flow's own thread-pool
runner, and the variants are measured back in the flow's process one at a time. The flow calls
`check_dask_cluster` before training, so a wrong address costs a second, not a training:

- an address that is not `tcp://HOST:PORT`, or Dask without a Prefect server the workers can report
  to (the embedded one lives inside the command): ConfigError, exit 2 (usage);
- nothing answering there, something that is not a Dask scheduler, a cluster without workers, or a
  build the cluster lost: DaskUnavailable, the run fails with exit 1 (a server down, as for MLflow).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tasks.config import ConfigError

ADDRESS_VARIABLE = "PMF_DASK_ADDRESS"
NAMED_BY = "PMF_DASK_ADDRESS / --dask-address"
SCHEMES = ("tcp", "tls")
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 30.0  # a cluster whose workers are (re)starting gets this long to show one


class DaskUnavailable(RuntimeError):
    """The Dask cluster cannot take the builds (unreachable, not Dask, no workers) or lost one."""


@dataclass(frozen=True)
class DaskCluster:
    address: str
    workers: int

    def describe(self) -> str:
        return f"the Dask cluster at {self.address} ({self.workers} worker{'s' if self.workers != 1 else ''})"


def dask_address() -> str | None:
    """`PMF_DASK_ADDRESS`, or None when it is unset or empty (builds run in threads)."""
    value = os.environ.get(ADDRESS_VARIABLE, "").strip()
    return value or None


def parse_address(value: str) -> str:
    """`tcp://HOST:PORT` or `tls://HOST:PORT` (a bare `HOST:PORT` means tcp); ConfigError otherwise."""
    parts = urlsplit(value if "://" in value else f"tcp://{value}")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = None
    if parts.scheme not in SCHEMES or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(f"the Dask scheduler address {value!r} ({NAMED_BY}) is not tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    return f"{parts.scheme}://{parts.netloc}"


def check_dask_cluster(workers_timeout_s: float = WORKERS_TIMEOUT_S) -> DaskCluster | None:
    """None without `PMF_DASK_ADDRESS`; else the cluster, once its scheduler answered and has a worker.

    Raises ConfigError (bad address, no Prefect server) or DaskUnavailable, both naming the address."""
    value = dask_address()
    if value is None:
        return None
    address = parse_address(value)
    _require_prefect_server(address)
    _check_reachable(address)
    with dask_client(address) as client:
        try:
            client.wait_for_workers(1, timeout=workers_timeout_s)
        except TimeoutError:  # distributed's WorkerStartTimeoutError is one
            raise DaskUnavailable(
                f"the Dask scheduler at {address} ({NAMED_BY}) has no workers (waited {workers_timeout_s:.0f} s); "
                f"start one with `dask worker {address}`, or unset PMF_DASK_ADDRESS to build in this process"
            ) from None
        return DaskCluster(address, len(client.scheduler_info(n_workers=-1)["workers"]))


@contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A distributed.Client on `address` (never the process's default client), closed on exit."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except Exception as exc:  # noqa: BLE001  (a port that answers as something else fails in odd ways)
        raise DaskUnavailable(
            f"{address} ({NAMED_BY}) accepts connections but did not answer as a Dask scheduler within "
            f"{CONNECT_TIMEOUT_S:.0f} s ({type(exc).__name__})"
        ) from None
    try:
        yield client
    finally:
        client.close()


@contextmanager
def dask_task_runner(cluster: DaskCluster) -> Iterator[Any]:
    """A started prefect-dask `DaskTaskRunner` on the cluster. Submit to it directly
    (`runner.submit(task, parameters)`): only those task runs go to the cluster. On exit its client
    closes, and builds still queued there are cancelled."""
    from prefect_dask import DaskTaskRunner

    with DaskTaskRunner(address=cluster.address) as runner:
        yield runner


def lost_build(address: str, variant: str, error: BaseException) -> DaskUnavailable:
    """The error for a build the cluster did not bring back (its own failures come back as reports)."""
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, ImportError):
        reason += " (the Dask workers need pmf installed, the same version as this command)"
    return DaskUnavailable(f"the Dask cluster at {address} ({NAMED_BY}) did not return the {variant} build: {reason}")


def _require_prefect_server(address: str) -> None:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigError(
            f"building on the Dask cluster at {address} ({NAMED_BY}) needs a Prefect server its workers can "
            "report to, and this command runs Prefect's embedded one: set PREFECT_API_URL (`pmf team up` "
            "prints it) or run `pmf server start`, or unset PMF_DASK_ADDRESS to build in this process"
        )


def _check_reachable(address: str) -> None:
    """A plain TCP connect first: a refused or unresolvable address fails at once, with the OS's reason."""
    parts = urlsplit(address)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise DaskUnavailable(
            f"cannot reach the Dask scheduler at {address} ({NAMED_BY}): {reason}; is it running? "
            "(`pmf team up` starts one; unset PMF_DASK_ADDRESS to build in this process)"
        ) from None
