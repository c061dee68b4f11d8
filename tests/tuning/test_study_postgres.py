"""In team mode the Optuna study lives in the team's PostgreSQL (PMF_DATABASE_URL): an interrupted search
resumes from it. Runs against the real PostgreSQL on 127.0.0.1:5432, in a database of its own."""

from __future__ import annotations

import math
import uuid

import pytest

from tasks.tuning.search import run_search
from tasks.tuning.settings import TuneSettings
from tasks.tuning.space import search_space
from tasks.tuning.trial import TrialOutcome

pytestmark = pytest.mark.component

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def database_url():
    import psycopg

    name = f"pmf_optuna_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def score(asked):
    n, p, _ = asked
    return TrialOutcome(n, p, "completed", -((math.log10(p["learning_rate"]) + 2) ** 2), [0.5])


class Interrupted:
    def result(self):
        raise KeyboardInterrupt  # the worker machine went away while this trial ran


def test_an_interrupted_search_resumes_from_the_study_in_postgresql(database_url):
    settings = TuneSettings(trials=6, parallelism=2, pruning=False)
    space = search_space(settings, "mlp")
    asked_params = []

    def interrupted(asked):
        asked_params.append(asked[1])
        return Interrupted() if len(asked_params) == 3 else score(asked)

    with pytest.raises(KeyboardInterrupt):
        run_search(settings, space, "s", True, interrupted, storage=database_url, study_name="penguins-0123")
    resumed = run_search(settings, space, "s", True, score, storage=database_url, study_name="penguins-0123")
    assert resumed.resumed == 2
    assert resumed.count("completed") == 6
    assert [o.params for o in resumed.outcomes[:2]] == asked_params[:2]  # the finished trials were kept, not rerun

    import optuna

    study = optuna.load_study(study_name="penguins-0123", storage=database_url)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states.count("COMPLETE") == 6
    assert states.count("FAIL") == 4  # the two batches in flight when it stopped, closed so nothing stays RUNNING
