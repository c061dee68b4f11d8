"""What a person sees of the compression stage in a real `pmf run`: progress lines as each variant
is built, the terminal table at 80 columns, the Prefect table artifact and the trade-off plot."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from flows.cli import main

pytestmark = pytest.mark.slow

VARIANTS = ("float32", "int8", "student_scratch_int8")  # cheap ones, and the control
PROGRESS = re.compile(r"^  ✓ (\w+) built in \d+\.\d s \((\d)/3\)$")


@pytest.fixture(scope="module")
def run(prefect_harness, tmp_path_factory):
    """One `pmf run` on penguins, its stdout and stderr, and the Prefect artifact it left."""
    home = tmp_path_factory.mktemp("pmf-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PMF_HOME", str(home))
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        env.setenv("PMF_ARTIFACT_ROOT", (home / "artifacts").as_uri())
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(
                [
                    "run",
                    "--set",
                    "train.epochs=5",
                    "--set",
                    f"compression.variants=[{', '.join(VARIANTS)}]",
                    "--set",
                    "compression.distillation.epochs=3",
                ]
            )
        yield {
            "code": code,
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "artifact": latest_compression_artifact(),
            "plot": downloaded_plot(home, tmp_path_factory.mktemp("plot")),
        }


def latest_compression_artifact():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["compression"])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    return found[0]


def downloaded_plot(home, destination):
    from tasks.registry.tracking import client

    mlflow = client()
    runs = mlflow.search_runs(
        [e.experiment_id for e in mlflow.search_experiments()], filter_string="tags.`pmf.stage` = 'compress'"
    )
    assert len(runs) == 1
    return mlflow.download_artifacts(runs[0].info.run_id, "compression/tradeoff.png", str(destination))


def test_each_variant_prints_a_line_as_its_build_finishes(run):
    assert run["code"] == 0, run["stderr"][-2000:]
    lines = run["stderr"].splitlines()
    start = lines.index("▸ compress (3 variants) …")
    progress = [PROGRESS.match(line) for line in lines[start + 1 : start + 4]]
    assert all(progress), lines[start : start + 6]
    assert sorted(m.group(1) for m in progress) == sorted(VARIANTS)
    assert [m.group(2) for m in progress] == ["1", "2", "3"]
    assert lines[start + 4] == "  measuring the Keras model and 3 variant(s) one at a time …"


def test_the_terminal_table_fits_80_columns_and_marks_the_control(run):
    stdout = run["stdout"]
    table = stdout[stdout.index("compression (LiteRT, test split)") :].split("\n\n")[0].splitlines()
    assert all(len(line) <= 80 for line in table), [line for line in table if len(line) > 80]
    assert table[0] == "compression (LiteRT, test split)  gate: ✓ pass  ! warn only  ✗ fail"
    rows = {line.split()[0]: line for line in table[2:] if line.startswith("  ") and not line.startswith("   ")}
    assert set(rows) >= {"keras", *VARIANTS}
    assert rows["keras"].endswith("– baseline")
    assert rows["student_scratch_int8"].split()[-1] == "control"
    assert re.search(r" [✓!✗] control$", rows["student_scratch_int8"])
    assert "  control: the student trained on labels only, to compare; never shipped" in table
    assert re.match(r"^  float32 +\d+\.\d +\d+\.\d ", rows["float32"]), rows["float32"]  # KiB with one decimal


def test_the_prefect_table_is_rounded_with_full_reasons_and_the_control_marked(run):
    rows = {row["variant"]: row for row in json.loads(run["artifact"].data)}
    assert set(rows) == {"keras", *VARIANTS}
    shipped = [name for name, row in rows.items() if row["role"] == "shipped"]
    assert len(shipped) == 1
    assert f"shipped {shipped[0]}: " in run["stdout"]
    roles = {"keras": "baseline", "float32": "reference", "int8": "candidate", "student_scratch_int8": "control"}
    assert {name: row["role"] for name, row in rows.items()} == roles | {shipped[0]: "shipped"}
    assert rows["keras"]["gate"] == "– not gated"
    for row in rows.values():
        assert re.fullmatch(r"\d{1,3}(,\d{3})*", row["bytes"]), row
        assert re.fullmatch(r"\d\.\d{4}", row["accuracy"]), row
        digits = row["p50 ms"].replace(".", "").lstrip("0")
        assert len(digits) == 3 or float(row["p50 ms"]) >= 100, row  # 3 significant digits
    for name in ("int8", "student_scratch_int8"):
        reasons = rows[name]["reasons"]
        assert reasons.count(" · ") >= 2, reasons
        assert re.search(r"[✓✗] accuracy drop .* budget 1\.00 pp", reasons), reasons
        assert re.search(r"[✓✗] gzip [\d,]+ B [<>=]+ float32 gzip [\d,]+ B", reasons)
        assert re.search(r"[✓✗] p50 [\d.]+ ms [<>=]+ [\d.]+ ms \(float32 p50 x 1\.10 \+ 0\.0020 ms\)", reasons)
        assert (rows[name]["gate"] == "✓ passed") == ("✗" not in reasons), (rows[name]["gate"], reasons)
    assert "! passed, but a warn-only rule failed" in run["artifact"].description
    assert "a control is gated for information and never shipped" in run["artifact"].description


def test_the_tradeoff_plot_is_a_readable_png(run):
    data = Path(run["plot"]).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") >= 1000
    assert 20_000 < len(data) < 2_000_000
