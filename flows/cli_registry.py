"""Registry subcommands (`pmf models`, `pmf promote`, `pmf rollback`, `pmf serve`): added by the promotion work."""
from __future__ import annotations

import argparse
from typing import Callable


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    return {}
