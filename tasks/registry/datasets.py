"""What the store keeps about a named dataset: its expectation suite versions (and, later, its config).

Stored in the tracking store, so every machine sharing it finds them; a copy under PMF_HOME.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from tasks.registry.tracking import client, end_run, log_dict, start_run
from tasks.workspace import pmf_home

SUITE_KIND = "suite"



def latest_suite(experiment_id: str) -> tuple[int, dict] | None:
    """(version, suite document) of the newest stored suite for this dataset, or None."""
    runs = client().search_runs([experiment_id], filter_string=f"tags.`pmf.kind` = '{SUITE_KIND}'",
                                order_by=["attributes.start_time DESC"], max_results=20)
    if not runs:
        return None
    newest = max(runs, key=lambda r: int(r.data.tags.get("pmf.suite_version", "0")))
    with tempfile.TemporaryDirectory() as folder:
        path = client().download_artifacts(newest.info.run_id, "suite/suite.json", folder)
        return int(newest.data.tags["pmf.suite_version"]), json.loads(Path(path).read_text(encoding="utf-8"))


def save_suite(experiment_id: str, name: str, document: dict) -> int:
    """Store a new suite version (a run tagged pmf.kind=suite) and a local copy under PMF_HOME."""
    current = latest_suite(experiment_id)
    version = (current[0] if current else 0) + 1
    run_id = start_run(experiment_id, f"suite-v{version}", tags={"pmf.kind": SUITE_KIND, "pmf.suite_version": str(version)})
    log_dict(run_id, document, "suite/suite.json")
    end_run(run_id)
    local = pmf_home() / "suites" / name / f"v{version}.json"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return version
