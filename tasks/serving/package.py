"""The shipped model at prediction time: fitted preprocessor + TFLite bytes run by LiteRT.

Imports pandas, numpy and ai_edge_litert only — never TensorFlow — so a serving process starts
fast and stays small. One interpreter per thread: a LiteRT interpreter is not thread-safe.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.preprocess import Preprocessor
from tasks.data.schema import Schema

MODEL_FILE = "model.tflite"
PREPROCESSOR_FILE = "preprocessor.json"
META_FILE = "model_meta.json"
PACKAGE_DIR = "package"  # the pyfunc artifact holding the files below
MANIFEST_FILE = "manifest.json"  # every other file of the package with its SHA-256; its own digest is a registry tag
RERUN_HINT = "re-run `pmf run` for it to register a verifiable version"


class IntegrityError(RuntimeError):
    """A package file, the manifest or the set of files is not what was recorded at registration."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---- the manifest -------------------------------------------------------------------------------


def package_files(folder: Path) -> list[str]:
    """Every file under the package folder except the manifest, as sorted POSIX paths relative to it."""
    folder = Path(folder)
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.relative_to(folder).as_posix() != MANIFEST_FILE
    )


def write_manifest(folder: Path) -> str:
    """Write `manifest.json` listing every file of the package with its SHA-256; returns the manifest's own SHA-256.

    The bytes are canonical (sorted keys, no spaces) so the digest depends on the contents only."""
    folder = Path(folder)
    files = {relative: sha256_file(folder / relative) for relative in package_files(folder)}
    data = json.dumps({"format": 1, "files": files}, sort_keys=True, separators=(",", ":")).encode()
    (folder / MANIFEST_FILE).write_bytes(data)
    return sha256_bytes(data)


def verify_package(folder: Path, manifest_sha256: str | None = None) -> dict[str, str]:
    """Check every file of the package against its manifest (and the manifest against `manifest_sha256`
    when given, the digest the registry recorded). Returns {file: sha256}; IntegrityError on any difference:
    a missing manifest, a changed, missing or added file."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise IntegrityError(f"{folder} has no {MANIFEST_FILE} (packaged before pmf hashed every file): {RERUN_HINT}")
    data = path.read_bytes()
    if manifest_sha256 is not None and sha256_bytes(data) != manifest_sha256:
        raise IntegrityError(
            f"{path}: SHA-256 {sha256_bytes(data)} does not match the registered manifest digest {manifest_sha256}"
        )
    try:
        files = json.loads(data)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path} is not a pmf manifest ({exc}): {RERUN_HINT}") from None
    if not isinstance(files, dict):
        raise IntegrityError(f"{path} is not a pmf manifest (no file list): {RERUN_HINT}")
    present = package_files(folder)
    missing, added = sorted(set(files) - set(present)), sorted(set(present) - set(files))
    if missing or added:
        raise IntegrityError(
            f"{folder}: files differ from the manifest (missing: {', '.join(missing) or 'none'}; "
            f"not in the manifest: {', '.join(added) or 'none'})"
        )
    for relative in present:
        digest = sha256_file(folder / relative)
        if digest != files[relative]:
            raise IntegrityError(f"{folder / relative}: SHA-256 {digest} does not match the manifest's {files[relative]}")
    return dict(files)


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
    def load(cls, folder: Path, manifest_sha256: str | None = None) -> PackagedModel:
        """Load a package after checking every file against its manifest (IntegrityError otherwise).

        `manifest_sha256`: the digest the registry recorded; without it the manifest the package
        carries is trusted (the pyfunc, which has no registry at hand)."""
        folder = Path(folder)
        files = verify_package(folder, manifest_sha256)
        model_bytes = (folder / MODEL_FILE).read_bytes()
        if sha256_bytes(model_bytes) != files.get(
            MODEL_FILE
        ):  # read again after the check: the bytes we run are the verified ones
            raise IntegrityError(f"{folder / MODEL_FILE} changed while it was being verified")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        return cls(LiteRTRunner(model_bytes), Preprocessor.load(folder / PREPROCESSOR_FILE), meta)

    @property
    def input_columns(self) -> list[str]:
        return list(self.preprocessor.schema.features)

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Model outputs: class probabilities (rows x classes) or standardized predictions."""
        return self.runner(self.preprocessor.transform(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.decode_output(self.outputs(frame))


def model_meta(name: str, schema: Schema, variant: str, metrics: dict[str, float], primary_metric: str) -> dict[str, Any]:
    """What `model_meta.json` in a package says about the model: what it predicts from which columns,
    which compression variant it is, and that variant's measured metrics."""
    return {
        "name": name,
        "task": schema.task,
        "target": schema.target,
        "variant": variant,
        "input_columns": list(schema.features),
        "classes": list(schema.classes),
        "metrics": metrics,
        "primary_metric": primary_metric,
    }


def write_package(folder: Path, model_bytes: bytes, preprocessor: Preprocessor, meta: dict) -> tuple[dict, str]:
    """Write the files of a shipped model and their manifest, last.

    Returns (the metadata with the model file's SHA-256, the manifest's SHA-256 to record in the registry)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(model_bytes)
    preprocessor.save(folder / PREPROCESSOR_FILE)
    meta = {**meta, "sha256": sha256_bytes(model_bytes), "bytes": len(model_bytes)}
    (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta, write_manifest(folder)
