"""pmf's Prefect flows and command line: wiring only; the stage logic lives in `tasks`."""
