"""Build a variant away from the flow's process (a Dask worker, maybe on another machine).

Nothing local travels: the teacher goes as the bytes of a saved tf_keras model (`model_to_bytes`),
the splits as numpy arrays; `build_remote` builds in a temporary folder of its own and sends back
the report and the .tflite bytes (`RemoteBuild`), and the flow writes them into its own scratch
folder (`land`). Running `build_remote` twice (a Dask worker died after finishing it) builds the
same file again and changes nothing else: it is idempotent.

    blob = model_to_bytes(teacher)                      # in the flow
    build = build_remote("int8", blob, arrays, ...)     # on a worker
    report = land(build, workdir)                       # in the flow: report.path is a local file
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.compression.common import CompressionData, Task
from tasks.compression.measure import VariantReport, failed_report
from tasks.compression.settings import CompressionSettings
from tasks.config import TrainConfig

TEACHER_FILE = "teacher.keras"


@dataclass(frozen=True)
class RemoteBuild:
    """What a remote build sends back: its report (`path` None) and the .tflite bytes (None when it failed)."""

    report: VariantReport
    tflite: bytes | None


def model_to_bytes(model: Any) -> bytes:
    """A tf_keras model as the bytes of its `.keras` file (architecture and weights; no optimizer needed)."""
    with tempfile.TemporaryDirectory(prefix="pmf-teacher-", dir=_scratch()) as folder:
        path = Path(folder) / TEACHER_FILE
        model.save(path)
        return path.read_bytes()


def model_from_bytes(blob: bytes) -> Any:
    """The tf_keras model `model_to_bytes` saved, uncompiled."""
    from tasks.model.tf_env import import_keras

    keras = import_keras()
    with tempfile.TemporaryDirectory(prefix="pmf-teacher-", dir=_scratch()) as folder:
        path = Path(folder) / TEACHER_FILE
        path.write_bytes(blob)
        return keras.models.load_model(path, compile=False)


def build_remote(
    variant: str,
    teacher_model: bytes,
    arrays: CompressionData,
    task: Task,
    settings: CompressionSettings,
    train_cfg: TrainConfig,
    n_outputs: int,
) -> RemoteBuild:
    """Build `variant` from the teacher's bytes in a temporary folder; never raises (a failure is a
    report with `error`, as `build_only` returns it)."""
    from tasks.compression.student import student_builder
    from tasks.compression.variants import build_only

    with tempfile.TemporaryDirectory(prefix=f"pmf-build-{variant}-", dir=_scratch()) as folder:
        try:
            teacher = model_from_bytes(teacher_model)
        except Exception as error:  # noqa: BLE001  (a teacher that does not load fails this variant, like any build)
            return RemoteBuild(failed_report(variant, f"the teacher model did not load: {type(error).__name__}: {error}"), None)
        students = student_builder(train_cfg, arrays.x_train.shape[1], n_outputs, task)
        report = build_only(variant, teacher, arrays, task, settings, folder, students)
        if not report.ok or report.path is None:
            return RemoteBuild(report, None)
        return RemoteBuild(report.model_copy(update={"path": None}), Path(report.path).read_bytes())


def land(build: RemoteBuild, workdir: Path) -> VariantReport:
    """Write a remote build's .tflite to `workdir/<variant>/<variant>.tflite` (where a local build puts
    it; a second landing of the same variant overwrites it) and return its report with `path` set."""
    if build.tflite is None:
        return build.report
    folder = Path(workdir) / build.report.variant
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{build.report.variant}.tflite"
    path.write_bytes(build.tflite)
    return build.report.model_copy(update={"path": str(path)})


def _scratch() -> Path:
    """The workspace's scratch folder (this process's PMF_HOME: a Dask worker's own on another machine)."""
    from tasks.workspace import pmf_home

    folder = pmf_home() / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
