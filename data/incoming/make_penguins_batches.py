"""Write the two demo batches of data/incoming/penguins/ from data/penguins.csv (seeded: the same files every run).

- clean.csv: 200 rows resampled from the penguins table with 1 % noise on the measurements: a fresh
  batch from the same distribution (`pmf monitor penguins --data` says no drift).
- drifted.csv: 200 rows drawn mostly from Biscoe (70 %, against ~49 %), every bird heavier (+500 g),
  longer-billed (+3.5 mm), deeper-billed (+1 mm) and longer-flippered (+7 mm), with the same 1 % noise:
  5 of the 7 features move, yet every value stays inside the ranges (with their tolerance) of the suite
  `pmf run` infers, so `pmf validate --name penguins` accepts it and only `pmf monitor` sees the change.

Run from the repository root: `.venv/bin/python data/incoming/make_penguins_batches.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1]
OUT = DATA / "incoming" / "penguins"
ROWS = 200
MEASURES = {"bill_length_mm": 1, "bill_depth_mm": 1, "flipper_length_mm": 0, "body_mass_g": 0}  # column: decimals
SHIFT = {"bill_length_mm": 3.5, "bill_depth_mm": 1.0, "flipper_length_mm": 7.0, "body_mass_g": 500.0}
DRIFTED_ISLANDS = {"Biscoe": 0.7, "Dream": 0.2, "Torgersen": 0.1}


def with_noise(frame: pd.DataFrame, rng: np.random.Generator, shift: dict[str, float]) -> pd.DataFrame:
    """Measurements times (1 + 1 % noise) plus `shift`, rounded as the CSV writes them; gaps stay gaps."""
    out = frame.copy()
    for column, decimals in MEASURES.items():
        noisy = out[column] * (1 + rng.normal(0, 0.01, len(out))) + shift.get(column, 0.0)
        out[column] = noisy.round(decimals).astype("Int64" if decimals == 0 else "Float64")
    return out


def clean_batch(table: pd.DataFrame, seed: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return with_noise(table.sample(ROWS, replace=True, random_state=seed).reset_index(drop=True), rng, {})


def drifted_batch(table: pd.DataFrame, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = table["island"].map(DRIFTED_ISLANDS) / table["island"].map(table["island"].value_counts())
    rows = table.sample(ROWS, replace=True, weights=weights, random_state=seed).reset_index(drop=True)
    return with_noise(rows, rng, SHIFT)


if __name__ == "__main__":
    table = pd.read_csv(DATA / "penguins.csv")
    OUT.mkdir(parents=True, exist_ok=True)
    clean_batch(table).to_csv(OUT / "clean.csv", index=False, na_rep="NA")
    drifted_batch(table).to_csv(OUT / "drifted.csv", index=False, na_rep="NA")
    print(f"wrote {OUT / 'clean.csv'} and {OUT / 'drifted.csv'} ({ROWS} rows each)")
