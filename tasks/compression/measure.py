"""Measure any model the same way: metrics through `score`, bytes, gzipped bytes, latency, throughput.

Every .tflite file is run through its own `ai_edge_litert` Interpreter (an interpreter is not
thread-safe, so none is ever shared). int8 inputs are quantized with the input tensor's
scale/zero-point and int8 outputs dequantized, so `score` always sees float probabilities or
predictions. The float Keras model gets a baseline row (`variant="keras"`) measured with
`model(x, training=False)`. Nothing heavy is imported at module import.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.compression.settings import CONTROL_VARIANTS, KERAS_BASELINE, LatencySettings, Severity

Score = Callable[[np.ndarray], dict[str, float]]
REPORT_KEYS = ("variant", "metrics", "bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p99", "passed", "reasons", "shipped")
Verdict = Literal["pass", "warn", "fail", "baseline", "not gated"]


class GateCheck(BaseModel):
    """One gate rule applied to one variant: `reason` states the value and the threshold.

    A failed `warn` check is reported but never blocks: the variant still passes and may ship."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    passed: bool
    severity: Severity = "fail"
    reason: str

    @property
    def mark(self) -> str:
        """✓ passed, ! failed a warn-only rule, ✗ failed a hard rule."""
        return "✓" if self.passed else ("!" if self.severity == "warn" else "✗")


class VariantReport(BaseModel):
    """One row of the compression table. `passed` is None until the gate has run.

    `passed` is True when every hard (`fail`) rule passed; `checks` holds every rule's outcome,
    warn-only ones included; `reasons` their texts plus the shipping decision, when there is one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: str
    metrics: dict[str, float] = {}
    bytes: int | None = None
    gzip_bytes: int | None = None
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    throughput_rows_s: float | None = None
    passed: bool | None = None
    reasons: list[str] = []
    checks: list[GateCheck] = []
    shipped: bool = False
    path: str | None = None
    error: str | None = None
    extra: dict[str, Any] = {}

    def to_json(self) -> dict[str, Any]:
        """The report's public keys (REPORT_KEYS) plus `gate` (the verdict), `control`, `checks`
        (`{rule, passed, severity, reason}` each), throughput, path, error and `extra`."""
        row = {key: getattr(self, key) for key in REPORT_KEYS}
        row.update(
            gate=self.verdict,
            control=self.control,
            checks=[c.model_dump() for c in self.checks],
            throughput_rows_s=self.throughput_rows_s,
            path=self.path,
            error=self.error,
            **self.extra,
        )
        return row

    @property
    def control(self) -> bool:
        """A control experiment: gated for information, never shipped (settings.CONTROL_VARIANTS)."""
        return self.variant in CONTROL_VARIANTS

    @property
    def verdict(self) -> Verdict:
        """`pass`, `warn` (passed, but a warn-only rule failed), `fail`, `baseline` (the keras row,
        never gated) or `not gated` (the gate has not run yet)."""
        if self.variant == KERAS_BASELINE:
            return "baseline"
        if self.passed is None:
            return "not gated"
        if not self.passed:
            return "fail"
        return "warn" if any(not c.passed for c in self.checks) else "pass"

    @property
    def ok(self) -> bool:
        """Built and measured without error."""
        return self.error is None


def failed_report(variant: str, error: BaseException | str) -> VariantReport:
    """A report for a variant that could not be built or measured; the gate fails it."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    reason = f"{variant} could not be built: {message}"
    return VariantReport(
        variant=variant,
        error=message,
        passed=False,
        reasons=[reason],
        checks=[GateCheck(rule="build", passed=False, reason=reason)],
    )


def file_sizes(path: Path) -> tuple[int, int]:
    """(bytes on disk, bytes after gzip level 9) of a file."""
    data = path.read_bytes()
    return len(data), len(gzip.compress(data, compresslevel=9, mtime=0))


def latency_percentiles_ms(call: Callable[[], Any], settings: LatencySettings) -> tuple[float, float]:
    """p50 and p99 in ms of `call()` after `settings.warmup` discarded calls."""
    for _ in range(settings.warmup):
        call()
    timings = np.empty(settings.repeats, dtype=np.int64)
    for i in range(settings.repeats):
        start = time.perf_counter_ns()
        call()
        timings[i] = time.perf_counter_ns() - start
    p50, p99 = np.percentile(timings, [50, 99]) / 1e6
    return float(p50), float(p99)


class TfliteRunner:
    """One interpreter for one .tflite file, used by one thread, with serving's own int8
    (de)quantization (tasks.serving.package), so a variant is measured as it will be served."""

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        from tasks.model.tf_env import native_stderr_silenced
        from tasks.serving.package import new_interpreter

        with native_stderr_silenced():  # LiteRT's XNNPACK notice on first allocation
            self.interpreter = new_interpreter(Path(path).read_bytes(), num_threads)
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._rows = -1
            self._resize(1)

    def _resize(self, rows: int) -> None:
        if rows != self._rows:
            self.interpreter.resize_tensor_input(self.input["index"], [rows, *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self._rows = rows

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Float outputs for every row of `x`, `batch_size` rows per invoke."""
        from tasks.serving.package import dequantize_output, quantize_input

        chunks = []
        for start in range(0, len(x), batch_size):
            chunk = quantize_input(x[start : start + batch_size], self.input)
            self._resize(len(chunk))
            self.interpreter.set_tensor(self.input["index"], chunk)
            self.interpreter.invoke()
            chunks.append(dequantize_output(self.interpreter.get_tensor(self.output["index"]), self.output))
        return np.concatenate(chunks)

    def single_row_call(self, row: np.ndarray) -> Callable[[], None]:
        """A zero-argument callable that invokes the interpreter on one pre-quantized row."""
        from tasks.serving.package import quantize_input

        self._resize(1)
        quantized = quantize_input(row.reshape(1, -1), self.input)
        index, interpreter = self.input["index"], self.interpreter

        def call() -> None:
            interpreter.set_tensor(index, quantized)
            interpreter.invoke()

        return call


def throughput_rows_s(predict: Callable[[np.ndarray], Any], x: np.ndarray) -> float:
    """Rows per second of one warm pass of `predict` over `x`."""
    start = time.perf_counter_ns()
    predict(x)
    return len(x) / max((time.perf_counter_ns() - start) / 1e9, 1e-9)


def measure_tflite(
    variant: str, path: Path, x_test: np.ndarray, score: Score, settings: LatencySettings, extra: dict[str, Any] | None = None
) -> VariantReport:
    """Score a .tflite file on `x_test` through LiteRT and time it; `passed` stays None."""
    runner = TfliteRunner(path, settings.num_threads)
    outputs = runner.predict(x_test, settings.batch_size)
    metrics = {name: float(value) for name, value in score(outputs).items()}
    rows_s = throughput_rows_s(lambda x: runner.predict(x, settings.batch_size), x_test)
    p50, p99 = latency_percentiles_ms(runner.single_row_call(x_test[0]), settings)
    size, gz = file_sizes(path)
    return VariantReport(
        variant=variant,
        metrics=metrics,
        bytes=size,
        gzip_bytes=gz,
        latency_ms_p50=p50,
        latency_ms_p99=p99,
        throughput_rows_s=rows_s,
        path=str(path),
        extra=dict(extra or {}),
    )


def keras_predict(model: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """`model(x, training=False)` in chunks, as numpy (not `predict`: no callbacks, no tf.data)."""
    tf = _tf()
    return np.concatenate(
        [model(tf.constant(x[i : i + batch_size]), training=False).numpy() for i in range(0, len(x), batch_size)]
    )


def measure_keras(model: Any, x_test: np.ndarray, score: Score, settings: LatencySettings, workdir: Path) -> VariantReport:
    """The baseline row: the float Keras model called directly; bytes = its saved .keras file."""
    tf = _tf()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    path = Path(workdir) / "keras_model.keras"
    model.save(path)
    metrics = {name: float(value) for name, value in score(keras_predict(model, x_test, settings.batch_size)).items()}
    rows_s = throughput_rows_s(lambda x: keras_predict(model, x, settings.batch_size), x_test)
    row = tf.constant(x_test[:1])
    p50, p99 = latency_percentiles_ms(lambda: model(row, training=False), settings)
    size, gz = file_sizes(path)
    return VariantReport(
        variant="keras",
        metrics=metrics,
        bytes=size,
        gzip_bytes=gz,
        latency_ms_p50=p50,
        latency_ms_p99=p99,
        throughput_rows_s=rows_s,
        path=str(path),
    )


def _tf() -> Any:
    from tasks.model.tf_env import import_tf

    return import_tf()
