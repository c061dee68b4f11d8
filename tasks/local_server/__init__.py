"""The local server `pmf server start` runs: a Prefect server, an MLflow server and the runner, on PMF_HOME.

`state` (the state file, `running_server()`) · `launch` (ports, processes, waiting for them) · `health`
(one HTTP check per part, the status report) · `stop`. Imports neither Prefect nor MLflow:
`running_server()` is asked by every pmf command.
"""

from tasks.local_server.state import WORK_POOL, ServerProcess, ServerState, running_server

__all__ = ["WORK_POOL", "ServerProcess", "ServerState", "running_server"]
