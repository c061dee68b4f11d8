"""What `pmf status` reports, as plain functions: runs, schedules, models and drift summarised from plain
records (`runs`, `schedules`, `models`, `drift`). flows/status.py reads Prefect and the registry; flows/cli/status.py renders."""
