"""What the terminal shows, as a user at an 80-column terminal reads it: `pmf run`, a rejection and
`pmf models` (no line longer than 80, numbers rounded, a next step after a rejection), and the first line
printed before the seconds of start-up."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from flows.console import command_lines, metric, number, path_lines
from flows.summary import failure_lines
from tests.conftest import DATA, REPO
from tests.support.pmf_process import pmf_env

PENGUINS = pd.read_csv(DATA / "penguins.csv")
FLOAT_NOISE = re.compile(r"\d\.\d{7,}|\d{7,}\.\d")  # 1800.0000000001, 4097899.9999999995


def terminal(*args: str) -> tuple[int, str]:
    """`pmf ARGS` in this process as a terminal shows it: (exit code, stderr then stdout)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue() + out.getvalue()


def too_wide(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > 80]


def unwrapped(text: str) -> str:
    """The text with shell continuations joined, as the shell reads a copied command."""
    return re.sub(r" \\\n\s*", " ", text)


def test_numbers_are_rounded_for_people():
    assert number(4097899.9999999995) == "4,097,900"
    assert number(1800.0000000001) == "1,800"
    assert number(1800.0000000001, grouping=False) == "1800"
    assert number(0.123456789) == "0.123457"
    assert number(1234567) == "1,234,567"
    assert metric(0.98551234) == "0.9855"
    assert metric(4097899.9999999995) == "4,097,900"
    error = {
        "column": "body_mass_g",
        "expectation": "expect_column_values_to_be_between",
        "expected": {"min_value": 1800.0000000001, "max_value": 7199.999999999999, "mostly": 1},
        "observed": {
            "unexpected_count": 2,
            "unexpected_percent": 0.5813953488372093,
            "partial_unexpected_list": [4097899.9999999995, 4097899.9999999995, 5019500.000000001],
        },
    }
    text = "\n".join(failure_lines(error))
    assert all(len(line) <= 80 for line in failure_lines(error))
    words = " ".join(text.split())
    assert "(min_value=1800, max_value=7200)" in words
    assert "observed 2 rows (0.6%), e.g. 4097900, 5019500" in words
    assert not FLOAT_NOISE.search(text), text


def test_a_long_path_is_cut_after_a_slash_so_the_shell_joins_it_again():
    path = "/home/alice/.pmf/artifacts/birds/20f03e078d4e486694026cc2ef0ca335/artifacts/validation/report.html"
    lines = path_lines(path, 4)
    assert len(lines) == 2
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].endswith("/\\")
    joined = subprocess.run(["bash", "-c", "printf %s " + "\n".join(lines)], capture_output=True, text=True)
    assert joined.stdout == path


def test_a_copyable_command_continues_with_a_backslash_within_80_columns():
    lines = command_lines(
        ["pmf", "run", "--data", "/data/incoming/" + "x" * 40 + "/penguins 2026-12.csv", "--name", "penguins", "--update-suite"],
        4,
    )
    assert len(lines) > 1
    assert all(len(line) <= 80 for line in lines)
    assert all(line.endswith(" \\") for line in lines[:-1])
    assert "--data '/data/incoming/" in unwrapped("\n".join(lines))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_run_and_models_fit_80_columns(workspace):
    code, text = terminal(
        "run", "--set", "train.epochs=3", "--set", "compression.variants=[float32,dynamic_range,int8,student_scratch_int8]"
    )
    assert code == 0, text
    assert "pmf run · penguins · completed" in text
    assert "compression (LiteRT, test split)" in text
    assert too_wide(text) == []
    assert not FLOAT_NOISE.search(text), text

    reason = (
        "canary rows checked by hand against the lab's own measurements of the 2026 field season, "
        "approved by the data owner after the review of slice metrics per island and sex"
    )
    code, text = terminal("promote", "penguins", "--version", "1", "--to", "staging", "--reason", reason)
    assert code == 0, text
    code, text = terminal("models", "penguins")
    assert code == 0
    assert "@production=v1" in text
    assert too_wide(text) == []
    assert reason in " ".join(line.strip() for line in text.splitlines())  # wrapped, never cut


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_rejection_fits_80_columns_and_says_what_to_do_next(workspace, tmp_path):
    code, text = terminal("validate", "--data", str(DATA / "penguins.csv"), "--target", "species", "--name", "birds")
    assert code == 0, text
    broken = PENGUINS.assign(body_mass_g=PENGUINS["body_mass_g"] * 1000.0000001).drop(columns=["bill_depth_mm"])
    broken.loc[:2, "species"] = "Emperor penguin from a colony far outside the reference data"
    data = tmp_path / "b.csv"
    broken.to_csv(data, index=False)

    code, text = terminal("run", "--data", str(data), "--name", "birds")
    assert code == 3, text
    assert too_wide(text) == []
    assert not FLOAT_NOISE.search(text), text
    assert "✗ bill_depth_mm: expect_column_to_exist" in text
    assert "3750000" in text
    step = unwrapped(text[text.index("next step:") :])
    assert f"pmf run --data {data} --name birds --update-suite" in step
    assert f"pmf run --data {data} --name birds\n" in step  # or fix the data and run again
    report = re.search(r"\S+validation_report\.html", re.sub(r"\\\n", "", step.split("full report")[1]))
    assert report is not None, step
    assert Path(report.group(0)).is_file()


@pytest.mark.slow
def test_the_first_line_comes_before_prefect_is_imported(tmp_path):
    """`python -X importtime` writes a line on stderr as each import completes, in order with the
    command's own lines: the opening line must come before any of Prefect's, and before the first stage."""
    home = tmp_path / "home"
    process = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "flows.cli",
            "validate",
            "--data",
            str(DATA / "penguins.csv"),
            "--target",
            "species",
            "--name",
            "birds",
        ],
        cwd=REPO,
        env=pmf_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    lines = process.stderr.splitlines()
    own = [i for i, line in enumerate(lines) if not line.startswith("import time:")]
    prefect = [
        i
        for i, line in enumerate(lines)
        if line.startswith("import time:") and re.fullmatch(r"prefect(\..*)?", line.split("|")[-1].strip())
    ]
    first_stage = next(i for i in own if lines[i].startswith("▸ "))
    assert lines[own[0]] == f"pmf validate · birds · {DATA / 'penguins.csv'}"
    assert prefect
    assert own[0] < prefect[0] < first_stage
