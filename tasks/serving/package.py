"""The shipped model at prediction time: fitted preprocessor + TFLite bytes run by LiteRT.

Imports pandas, numpy and ai_edge_litert only — never TensorFlow — so a serving process starts
fast and stays small. One interpreter per thread: a LiteRT interpreter is not thread-safe.
"""
from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from tasks.data.preprocess import Preprocessor

MODEL_FILE = "model.tflite"
PREPROCESSOR_FILE = "preprocessor.json"
META_FILE = "model_meta.json"


class IntegrityError(RuntimeError):
    """The model file's SHA-256 is not the one recorded at registration."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class LiteRTRunner:
    """Runs a TFLite flatbuffer on float32 feature rows; quantizes int8 inputs/outputs as needed."""

    model_bytes: bytes

    def __post_init__(self) -> None:
        self._local = threading.local()

    def _interpreter(self, rows: int) -> Any:
        state = getattr(self._local, "state", None)
        if state is None:
            interpreter = new_interpreter(self.model_bytes)
            state = self._local.state = {"interpreter": interpreter, "rows": None}
        interpreter = state["interpreter"]
        if state["rows"] != rows:
            index = interpreter.get_input_details()[0]["index"]
            width = interpreter.get_input_details()[0]["shape"][1]
            interpreter.resize_tensor_input(index, [rows, width], strict=False)
            with _first_allocation_silenced(state):
                interpreter.allocate_tensors()
            state["rows"] = rows
        return interpreter

    def __call__(self, features: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter(len(features))
        source = interpreter.get_input_details()[0]
        target = interpreter.get_output_details()[0]
        interpreter.set_tensor(source["index"], quantize_input(features, source))
        interpreter.invoke()
        return dequantize_output(interpreter.get_tensor(target["index"]), target)


@contextmanager
def _first_allocation_silenced(state: dict) -> Iterator[None]:
    """LiteRT prints an XNNPACK notice on stderr when it first allocates; mute that one call."""
    if state["rows"] is not None:
        yield
        return
    from tasks.model.tf_env import native_stderr_silenced

    with native_stderr_silenced():
        yield


def new_interpreter(model_bytes: bytes, num_threads: int = 1) -> Any:
    """A LiteRT interpreter on one thread by default (requests run in parallel, not each op)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_bytes, num_threads=num_threads)


def quantize_input(features: np.ndarray, detail: dict) -> np.ndarray:
    """Float features -> the input tensor's dtype (int8 models: with its scale and zero point)."""
    if detail["dtype"] == np.float32:
        return features.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(features / scale + zero), info.min, info.max).astype(detail["dtype"])


def dequantize_output(values: np.ndarray, detail: dict) -> np.ndarray:
    """The output tensor -> float32 probabilities or predictions."""
    if values.dtype == np.float32:
        return values.copy()
    scale, zero = detail["quantization"]
    return (values.astype(np.float32) - zero) * scale


class PackagedModel:
    """Raw rows in, predictions out: what the registered pyfunc and `pmf serve` call."""

    def __init__(self, runner: LiteRTRunner, preprocessor: Preprocessor, meta: dict):
        self.runner = runner
        self.preprocessor = preprocessor
        self.meta = meta

    @classmethod
    def load(cls, folder: Path, expected_sha256: str | None = None) -> "PackagedModel":
        folder = Path(folder)
        model_bytes = (folder / MODEL_FILE).read_bytes()
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        digest = sha256_bytes(model_bytes)
        expected = expected_sha256 or meta.get("sha256")
        if expected and digest != expected:
            raise IntegrityError(f"{folder / MODEL_FILE}: SHA-256 {digest} does not match the recorded {expected}")
        return cls(LiteRTRunner(model_bytes), Preprocessor.load(folder / PREPROCESSOR_FILE), meta)

    @property
    def input_columns(self) -> list[str]:
        return list(self.preprocessor.schema.features)

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Model outputs: class probabilities (rows x classes) or standardized predictions."""
        return self.runner(self.preprocessor.transform(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.decode_output(self.outputs(frame))


def write_package(folder: Path, model_bytes: bytes, preprocessor: Preprocessor, meta: dict) -> dict:
    """Write the three files of a shipped model; returns the metadata with the model's SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(model_bytes)
    preprocessor.save(folder / PREPROCESSOR_FILE)
    meta = {**meta, "sha256": sha256_bytes(model_bytes), "bytes": len(model_bytes)}
    (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta
