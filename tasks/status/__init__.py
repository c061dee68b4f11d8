"""What `pmf status` reports, as plain functions: runs (trigger, outcome, duration trends), models (what each
alias points to) and drift (the last check). flows/status.py reads Prefect and the registry; flows/cli/status.py renders."""
