"""Small tables built in code, shared by the data tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mixed_table(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "amount": rng.normal(100, 20, rows),
            "count": rng.integers(0, 10, rows),
            "flag": rng.random(rows) > 0.5,
            "country": rng.choice(["fr", "de", "it"], rows),
            "signup": pd.date_range("2024-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M"),
            "comment": [f"free text number {i}" for i in range(rows)],
            "constant": "same",
            "empty": [None] * rows,
            "label": rng.choice(["yes", "no"], rows),
        }
    )
