"""Generated benchmark data: a seeded tabular classification table of any size (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def tabular_frame(rows: int, seed: int = 0, numeric: int = 8) -> pd.DataFrame:
    """`numeric` Gaussian features, two categoricals, a few gaps, and a 3-class target that depends on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, numeric)).astype(np.float64)
    region = rng.choice(np.array(["north", "south", "east", "west"]), rows)
    plan = rng.choice(np.array(["free", "pro", "team"]), rows, p=[0.6, 0.3, 0.1])
    weights = rng.normal(size=(numeric, 3))
    logits = (
        x @ weights + (region == "north")[:, None] * np.array([0.8, 0, -0.8]) + (plan == "pro")[:, None] * np.array([0, 1.0, 0])
    )
    target = np.argmax(logits + rng.gumbel(size=logits.shape) * 0.5, axis=1)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(numeric)])
    frame["region"], frame["plan"] = region, plan
    frame.loc[rng.random(rows) < 0.01, "f0"] = np.nan
    frame["label"] = np.array(["churn", "stay", "upgrade"])[target]
    return frame


def write_tabular(rows: int, folder: Path, seed: int = 0) -> Path:
    path = folder / f"tabular_{rows}.csv"
    if not path.exists():
        tabular_frame(rows, seed).to_csv(path, index=False)
    return path
