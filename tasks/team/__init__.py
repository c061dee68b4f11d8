"""Team mode as local processes (`pmf team up`): Prefect and MLflow servers on PostgreSQL, a Prefect
worker on pool `pmf`, a Dask scheduler and workers.

`databases` (the PostgreSQL URL, the three databases) · `state` (the state file, `read_team_state`) ·
`launch` (start and stop the team or one part) · `health` (what answers). Imports neither Prefect, MLflow
nor Dask at import time.
"""
