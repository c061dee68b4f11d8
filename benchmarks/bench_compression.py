"""Compression benchmark: every variant of three models, measured through LiteRT.

    python benchmarks/bench_compression.py [--quick]

Prints one markdown table per model (sizes, gzip sizes, latency, metric, ratios against float32
TFLite and the Keras model) and a goals line per model with the measured value and PASS/MISS.
Models: (a) penguins MLP, (b) digits CNN (>100k params), (c) a >100k-param tabular MLP on
generated data. Everything is seeded; timings depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tasks.compression.common import CompressionData
from tasks.compression.gate import choose_variant, comparison_table, compression_gate, mark_shipped
from tasks.compression.settings import CompressionSettings
from tasks.compression.variants import build_and_measure
from tasks.model.builders import build_cnn, build_mlp
from tasks.model.tf_env import import_keras

ROOT = Path(__file__).resolve().parents[1]
SEED = 42


@dataclass(frozen=True)
class Case:
    name: str
    data: CompressionData
    n_classes: int
    builder: Callable[[float], Any]  # width_factor -> uncompiled model
    epochs: int
    batch_size: int


def split(x: np.ndarray, y: np.ndarray, seed: int = SEED) -> CompressionData:
    """60/20/20 train/validation/test, seeded, standardized on the training rows."""
    order = np.random.default_rng(seed).permutation(len(x))
    train, val, test = np.split(order, [int(0.6 * len(x)), int(0.8 * len(x))])
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
    x = ((x - mean) / std).astype(np.float32)
    return CompressionData(x[train], y[train], x[val], y[val], x[test], y[test])


def penguins_case(quick: bool) -> Case:
    frame = pd.read_csv(ROOT / "data" / "penguins.csv").dropna(subset=["species"])
    y = frame["species"].astype("category").cat.codes.to_numpy().astype(np.int64)
    numeric = frame[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]].astype(float)
    numeric = numeric.fillna(numeric.median())
    categorical = pd.get_dummies(frame[["island", "sex"]].astype(str), dtype=float)
    x = pd.concat([numeric, categorical], axis=1).to_numpy(np.float32)
    builder = lambda w: build_mlp(x.shape[1], 3, (max(4, int(64 * w)), max(4, int(32 * w))), 0.1, "classification")
    return Case("penguins MLP", split(x, y), 3, builder, 40 if quick else 80, 16)


def digits_case(quick: bool) -> Case:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    train, val, test = np.split(order, [int(0.6 * len(x)), int(0.8 * len(x))])
    data = CompressionData(x[train], y[train], x[val], y[val], x[test], y[test])  # pixels already in [0, 1]
    builder = lambda w: build_cnn(
        64, 10, (8, 8, 1), (max(4, int(32 * w)), max(4, int(64 * w))), (max(8, int(512 * w)),), 0.2, "classification"
    )
    return Case("digits CNN", data, 10, builder, 6 if quick else 15, 32)


def tabular_case(quick: bool) -> Case:
    rng = np.random.default_rng(SEED)
    rows = 6_000 if quick else 20_000
    x = rng.normal(size=(rows, 40)).astype(np.float32)
    w = rng.normal(size=(40, 4))
    signal = np.tanh(x @ w) + 0.3 * np.sin(x[:, :4] * 2) + rng.normal(scale=0.1, size=(rows, 4))
    y = signal.argmax(axis=1).astype(np.int64)
    builder = lambda f: build_mlp(40, 4, (max(8, int(512 * f)), max(8, int(256 * f))), 0.2, "classification")
    return Case("tabular MLP", split(x, y), 4, builder, 8 if quick else 20, 128)


def train_teacher(case: Case) -> Any:
    keras = import_keras()
    keras.utils.set_random_seed(SEED)
    model = case.builder(1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    stop = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    model.fit(
        case.data.x_train,
        case.data.y_train,
        validation_data=(case.data.x_val, case.data.y_val),
        epochs=case.epochs,
        batch_size=case.batch_size,
        verbose=0,
        callbacks=[stop],
    )
    return model


def scorer(y_test: np.ndarray, n_classes: int) -> Callable[[np.ndarray], dict[str, float]]:
    from sklearn.metrics import f1_score

    def score(probabilities: np.ndarray) -> dict[str, float]:
        predicted = probabilities.argmax(axis=1)
        return {
            "accuracy": float(np.mean(predicted == y_test)),
            "f1_macro": float(f1_score(y_test, predicted, average="macro", labels=range(n_classes))),
        }

    return score


def settings_for(case: Case, quick: bool) -> CompressionSettings:
    batch = 32 if len(case.data.x_train) < 5_000 else 128
    epochs = {"pruning": 4 if quick else 8, "qat": 2 if quick else 3, "distillation": 15 if quick else 40}
    return CompressionSettings(
        pruning={"epochs": epochs["pruning"], "batch_size": batch},
        qat={"epochs": epochs["qat"], "batch_size": batch},
        distillation={"epochs": epochs["distillation"], "batch_size": batch},
        latency={"warmup": 100, "repeats": 300 if quick else 1000},
    )


def markdown(table: pd.DataFrame) -> str:
    columns = [
        "variant",
        "bytes",
        "gzip_bytes",
        "size_ratio_vs_float32",
        "gzip_ratio_vs_float32",
        "latency_ms_p50",
        "latency_ms_p99",
        "latency_ratio_vs_float32",
        "latency_ratio_vs_keras",
        "accuracy",
        "delta_pp",
        "passed",
        "shipped",
    ]
    header = [
        "variant",
        "bytes",
        "gzip B",
        "size x",
        "gzip x",
        "p50 ms",
        "p99 ms",
        "speed x f32",
        "speed x keras",
        "accuracy",
        "Δ pp",
        "gate",
        "ship",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.assign(delta_pp=table["metric_delta"] * 100)[columns].iterrows():
        cells = []
        for key, value in row.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                cells.append("—")
            elif key in ("latency_ms_p50", "latency_ms_p99"):
                cells.append(f"{value:.4f}")
            elif isinstance(value, (bool, np.bool_)):
                cells.append("✔" if value else "✘")
            elif isinstance(value, float):
                cells.append(f"{value:+.2f}" if key == "delta_pp" else f"{value:.3f}" if key == "accuracy" else f"{value:.3g}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(reports: dict[str, Any], shipped: Any) -> str:
    f32, keras = reports["float32"], reports["keras"]
    acc = lambda name: reports[name].metrics.get("accuracy", float("nan"))
    checks = [
        ("int8 size", f32.bytes / reports["int8"].bytes, 3.5, "x"),
        (
            "pruned_int8 gzip",
            f32.gzip_bytes / reports["pruned_int8"].gzip_bytes if reports["pruned_int8"].ok else float("nan"),
            10.0,
            "x",
        ),
        ("int8 p50 vs float32", f32.latency_ms_p50 / reports["int8"].latency_ms_p50, 2.5, "x"),
        ("int8 p50 vs keras", keras.latency_ms_p50 / reports["int8"].latency_ms_p50, 100.0, "x"),
        ("shipped drop", -(shipped.metrics["accuracy"] - f32.metrics["accuracy"]) * 100, None, "pp"),
        ("distilled - scratch", (acc("distilled_int8") - acc("student_scratch_int8")) * 100, None, "pp"),
    ]
    parts = []
    for name, value, target, unit in checks:
        if name == "shipped drop":
            ok = value <= 1.0
            parts.append(f"{name} {value:.2f} pp (≤ 1) {'PASS' if ok else 'MISS'} [{shipped.variant}]")
        elif name == "distilled - scratch":
            parts.append(f"{name} {value:+.2f} pp (≥ 0) {'PASS' if value >= 0 else 'MISS'}")
        else:
            parts.append(f"{name} {value:.2f}{unit} (≥ {target:g}) {'PASS' if value >= target else 'MISS'}")
    return "goals: " + "; ".join(parts)


def run_case(case: Case, quick: bool, workdir: Path) -> None:
    started = time.perf_counter()
    teacher = train_teacher(case)
    settings = settings_for(case, quick)
    score = scorer(case.data.y_test, case.n_classes)
    reports = {}
    for variant in ("keras", *settings.variants):
        reports[variant] = build_and_measure(
            variant, teacher, case.data, "classification", score, settings, workdir / case.name.replace(" ", "_"), case.builder
        )
    gated = compression_gate(reports.values(), settings, "accuracy", higher_is_better=True)
    shipped = choose_variant(gated, settings.policy)
    final = mark_shipped(gated, shipped)
    by_name = {r.variant: r for r in final}
    print(
        f"\n### {case.name}: {teacher.count_params():,} params, {len(case.data.x_train)} train / {len(case.data.x_test)} test rows ({time.perf_counter() - started:.0f} s)\n"
    )
    print(markdown(comparison_table(final, "accuracy")))
    for r in final:
        if r.error:
            print(f"- {r.variant} failed: {r.error}")
        elif r.passed is False:
            print(f"- {r.variant} rejected: {'; '.join(x for x in r.reasons if '>' in x)}")
    extra = by_name["pruned_int8"].extra
    if extra:
        print(
            f"- pruned_int8 sparsity {extra.get('sparsity')} (target {extra.get('target_sparsity')}, end_step {extra.get('end_step')}, frequency {extra.get('frequency')})"
        )
    print(f"- shipped: {shipped.variant} — {shipped.reasons[-1]}")
    print(goals(by_name, shipped), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and epochs: a smoke run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pmf-bench-") as tmp:
        for make in (penguins_case, digits_case, tabular_case):
            run_case(make(args.quick), args.quick, Path(tmp))


if __name__ == "__main__":
    main()
