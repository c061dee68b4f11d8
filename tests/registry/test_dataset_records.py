"""A dataset's suite and config in a real MLflow store: created once under concurrency, versioned on update."""

from __future__ import annotations

import threading

import pytest

from tasks.registry import datasets
from tasks.registry.tracking import ensure_experiment

pytestmark = pytest.mark.component


def at_once(count: int, work) -> list:
    """Run `work(i)` in `count` threads released together; returns their results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # re-raised below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def live_suite_runs(client, experiment_id: str) -> list:
    """The dataset's suite runs, in the experiment that keeps its records (NAME.pmf-store)."""
    store = client.get_experiment_by_name(client.get_experiment(experiment_id).name + ".pmf-store")
    return client.search_runs([store.experiment_id], filter_string="tags.`pmf.kind` = 'suite'")


def test_first_runs_of_a_name_at_once_store_one_suite_and_all_use_it(mlflow_client, workspace):
    for round_ in range(3):
        name = f"race{round_}"
        experiment_id = ensure_experiment(name)
        documents = [{"name": name, "inferred_by": i} for i in range(4)]
        results = at_once(4, lambda i, e=experiment_id, n=name, d=documents: datasets.save_suite(e, n, d[i]))
        assert {version for version, _ in results} == {1}
        winners = {doc["inferred_by"] for _, doc in results}
        assert len(winners) == 1, f"every run must validate against one suite, got {results}"
        assert len(live_suite_runs(mlflow_client, experiment_id)) == 1
        assert datasets.latest_suite(experiment_id) == (1, documents[winners.pop()])
        assert sorted(p.name for p in (workspace / "suites" / name).iterdir()) == ["v1.json"]


def test_concurrent_suite_updates_each_get_their_own_version(mlflow_client, workspace):
    experiment_id = ensure_experiment("updates")
    datasets.save_suite(experiment_id, "updates", {"v": "first"})
    results = at_once(3, lambda i: datasets.save_suite(experiment_id, "updates", {"v": i}, replace=True))
    assert sorted(version for version, _ in results) == [2, 3, 4]
    assert all(doc == {"v": i} for i, (_, doc) in enumerate(results))
    assert len(live_suite_runs(mlflow_client, experiment_id)) == 4


def test_config_is_recorded_once_then_only_replaced_on_request(mlflow_client, workspace):
    experiment_id = ensure_experiment("configured")
    results = at_once(3, lambda i: datasets.record_config(experiment_id, {"train": {"epochs": i + 1}}, False, f"run {i}"))
    recorded = datasets.recorded_config("configured")
    assert recorded.version == 1
    assert [mine for _, mine in results].count(True) == 1
    assert all(record == recorded for record, _ in results)
    record, mine = datasets.record_config(experiment_id, {"train": {"epochs": 9}}, False, "later run")
    assert (record.version, mine, datasets.recorded_config("configured").document) == (1, False, recorded.document)
    record, mine = datasets.record_config(experiment_id, {"train": {"epochs": 9}}, True, "--update-config")
    assert (record.version, mine) == (2, True)
    assert datasets.recorded_config("configured").document == {"train": {"epochs": 9}}
    assert datasets.recorded_config("never-seen") is None
