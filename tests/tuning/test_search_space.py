"""The search space and the ask/tell loop, on a known objective: pure functions, no training."""

from __future__ import annotations

import math

import pytest

from tasks.config import ConfigError, TrainConfig
from tasks.tuning.search import SearchFailed, run_search
from tasks.tuning.settings import ParamSpec, TuneSettings
from tasks.tuning.space import DEFAULT_SPACES, apply_params, configured_values, search_space
from tasks.tuning.trial import PruneRule, TrialOutcome


def quadratic(asked):
    """A known optimum: learning_rate 0.01, width 64; every trial completes."""
    number, params, _ = asked
    value = -((math.log10(params["learning_rate"]) + 2) ** 2) - abs(params["width"] - 64) / 64
    return TrialOutcome(number, params, "completed", value, curve=[value])


class Later:
    """A future of an outcome, as a Prefect or Dask future is: `.result()` waits for it (or raises)."""

    def __init__(self, outcome=None, error=None):
        self.outcome, self.error = outcome, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.outcome


def test_the_default_mlp_space_searches_what_the_issue_names():
    space = DEFAULT_SPACES["mlp"]
    assert {"layers", "width", "dropout", "learning_rate", "lr_schedule", "batch_size"} <= set(space)
    assert {"conv_layers", "conv_base"} <= set(DEFAULT_SPACES["cnn"])


def test_an_override_replaces_one_parameter_and_an_unknown_one_is_named():
    settings = TuneSettings(space={"batch_size": ParamSpec(choices=(8,)), "dropout": ParamSpec(fixed=0.25)})
    space = search_space(settings, "mlp")
    assert space["batch_size"].choices == (8,)
    assert space["learning_rate"] == DEFAULT_SPACES["mlp"]["learning_rate"]
    with pytest.raises(ConfigError, match=r"tune\.space\.widht: not a parameter of the mlp search"):
        search_space(TuneSettings(space={"widht": ParamSpec(fixed=3)}), "mlp")


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"low": 1},
        {"low": 2, "high": 1},
        {"low": 0, "high": 1, "log": True},
        {"choices": []},
        {"low": 1, "high": 2, "fixed": 1},
    ],
)
def test_a_malformed_parameter_is_refused(spec):
    with pytest.raises(ValueError, match=r"range|choices|low"):
        ParamSpec(**spec)


def test_trial_values_become_the_training_config():
    cfg = apply_params(TrainConfig(), {"layers": 3, "width": 128, "dropout": 0.2, "batch_size": 64}, epochs=7)
    assert cfg.hidden_units == (128, 64, 32)
    assert (cfg.dropout, cfg.batch_size, cfg.epochs) == (0.2, 64, 7)
    cnn = apply_params(TrainConfig(model="cnn", image_shape=(8, 8, 1)), {"conv_layers": 2, "conv_base": 16})
    assert cnn.conv_filters == (16, 32)


def test_the_search_finds_the_optimum_region_and_a_seed_reproduces_it():
    settings = TuneSettings(trials=16, parallelism=4, seed=7, pruning=False)
    space = search_space(settings, "mlp")
    first = run_search(settings, space, "score", True, quadratic)
    second = run_search(settings, space, "score", True, quadratic)
    assert [o.params for o in first.outcomes] == [o.params for o in second.outcomes]
    assert first.count("completed") == 16
    assert first.asked == 16
    assert first.best is not None
    assert first.best.value == max(o.value for o in first.outcomes)
    assert first.ranked()[0] is first.best
    other = run_search(settings.model_copy(update={"seed": 8}), space, "score", True, quadratic)
    assert [o.params for o in other.outcomes] != [o.params for o in first.outcomes]


def test_trials_are_asked_in_batches_of_parallelism_two_in_flight_and_batch_b_knows_batches_up_to_b_minus_2():
    """Whatever evaluates them and whichever finishes first, batches of 3 are asked, the next is queued while
    one runs, and batch b knows batches 0 … b - 2 only (its pruning rule holds their curves): what makes a
    seed reproduce the search on any number of workers."""
    known, in_flight, peak, batches = {}, [], [0], {}

    def submit(asked):
        number, _, rule = asked
        known[number] = len(rule.curves)
        batches.setdefault(id(rule), (rule, []))[1].append(number)  # a batch's trials share the rule asked with them
        in_flight.append(number)
        peak[0] = max(peak[0], len(in_flight))
        done = quadratic(asked)

        class Finishing(Later):
            def result(self):
                in_flight.remove(number)
                return done

        return Finishing()

    result = run_search(TuneSettings(trials=7, parallelism=3), search_space(TuneSettings(), "mlp"), "score", True, submit)
    assert sorted(numbers for _, numbers in batches.values()) == [[0, 1, 2], [3, 4, 5], [6]]
    assert peak[0] == 6  # two batches in flight
    assert known == {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 3}
    assert [o.number for o in result.outcomes] == list(range(7))


def test_a_failing_trial_is_recorded_and_the_search_goes_on():
    def submit(asked):
        done = quadratic(asked)
        if done.number % 2 == 0:
            return TrialOutcome(done.number, done.params, "failed", reason="ValueError: boom")
        return done

    result = run_search(TuneSettings(trials=4, parallelism=2), search_space(TuneSettings(), "mlp"), "s", True, submit)
    assert result.count("failed") == 2
    assert result.count("completed") == 2
    assert result.to_json()["failed"] == 2
    assert result.best is not None


def test_a_trial_whose_worker_fails_is_a_failed_trial_with_the_reason():
    def submit(asked):
        if asked[0] == 1:
            return Later(error=RuntimeError("the worker at tcp://10.0.0.7:40211 died\nmore"))
        return Later(quadratic(asked))

    result = run_search(TuneSettings(trials=3, parallelism=2), search_space(TuneSettings(), "mlp"), "s", True, submit)
    failed = [o for o in result.outcomes if o.state == "failed"]
    assert [(o.number, o.reason) for o in failed] == [(1, "RuntimeError: the worker at tcp://10.0.0.7:40211 died")]
    assert result.count("completed") == 2


def test_only_every_trial_failing_fails_the_search_with_the_reasons():
    def submit(asked):
        n, p, _ = asked
        return TrialOutcome(n, p, "failed", reason=f"diverged #{n}")

    with pytest.raises(SearchFailed, match=r"every one of the 3 trials failed: trial 0: diverged #0"):
        run_search(TuneSettings(trials=3, parallelism=3), search_space(TuneSettings(), "mlp"), "s", True, submit)


def test_each_trial_is_handed_on_as_it_is_told_in_trial_order():
    seen = []
    run_search(
        TuneSettings(trials=5, parallelism=2), search_space(TuneSettings(), "mlp"), "s", True, quadratic, on_outcome=seen.append
    )
    assert [o.number for o in seen] == [0, 1, 2, 3, 4]


def test_the_time_budget_stops_new_batches():
    ticks = iter(range(0, 10_000, 40))  # every clock read is 40 s later
    result = run_search(
        TuneSettings(trials=20, parallelism=2, minutes=1.5),
        search_space(TuneSettings(), "mlp"),
        "s",
        True,
        quadratic,
        clock=lambda: next(ticks),
    )
    assert result.out_of_time
    assert result.asked < 20


def test_the_median_rule_stops_only_a_trailing_trial_after_warmup():
    rule = PruneRule(curves=((0.5, 0.6, 0.7, 0.8), (0.4, 0.6, 0.7, 0.9)), warmup=2)
    assert not rule.should_stop(2, 0.0)  # still warming up
    assert rule.should_stop(3, 0.5)
    assert not rule.should_stop(3, 0.75)
    lower = PruneRule(curves=((1.0, 0.5, 0.4), (1.0, 0.6, 0.3)), warmup=1, higher_is_better=False)
    assert lower.should_stop(2, 0.9)
    assert not lower.should_stop(2, 0.4)
    assert not PruneRule(curves=((0.5, 0.6),), warmup=0).should_stop(1, 0.0)  # one earlier trial is no median


def test_a_stored_study_resumes_with_its_finished_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    settings = TuneSettings(trials=4, parallelism=2, pruning=False)
    space = search_space(settings, "mlp")
    calls = []

    def interrupted(asked):
        calls.append(asked[0])
        if len(calls) == 3:
            return Later(error=KeyboardInterrupt())  # the search is stopped while trial 2 runs
        return quadratic(asked)

    with pytest.raises(KeyboardInterrupt):
        run_search(settings, space, "s", True, interrupted, storage=storage, study_name="penguins-abc")
    result = run_search(settings, space, "s", True, quadratic, storage=storage, study_name="penguins-abc")
    assert result.resumed == 2
    assert result.count("completed") == 4


def test_the_first_trial_takes_the_configured_values_where_the_space_holds_them():
    space = search_space(TuneSettings(space={"batch_size": ParamSpec(choices=(64, 128))}), "mlp")
    first = configured_values(TrainConfig(hidden_units=(64, 32), batch_size=32), space)
    assert first["layers"] == 2
    assert first["width"] == 64
    assert "batch_size" not in first  # 32 is not a choice any more: sampled instead
    result = run_search(TuneSettings(trials=3, parallelism=3), space, "s", True, quadratic, first=first)
    assert result.outcomes[0].params["width"] == 64
    assert result.outcomes[0].params["layers"] == 2


@pytest.mark.parametrize("config", ["digits.yaml", "penguins.yaml", "diabetes.yaml"])
def test_trial_0_is_exactly_the_configured_model_even_outside_the_default_space(config):
    """The digits CNN has 512 hidden units, not one of the default widths: the space widens to hold it."""
    from tasks.config import load_config
    from tasks.tuning.space import configured_values
    from tests.conftest import DATA

    cfg = load_config(DATA / config).train
    settings = TuneSettings()
    space = search_space(settings, cfg.model, cfg)
    first = configured_values(cfg, space)
    assert set(first) == set(space)  # every searched parameter starts at its configured value
    assert apply_params(cfg, first) == cfg


def test_the_configured_layers_are_kept_as_written_and_an_explicit_override_is_not_widened():
    cfg = TrainConfig(hidden_units=(64, 64), learning_rate=0.05, dropout=0.5)
    space = search_space(TuneSettings(), "mlp", cfg)
    assert space["learning_rate"].high == 0.05
    assert space["dropout"].high == 0.5
    assert apply_params(cfg, configured_values(cfg, space)).hidden_units == (64, 64)
    assert apply_params(cfg, {"layers": 2, "width": 128}).hidden_units == (128, 64)
    narrowed = search_space(TuneSettings(space={"learning_rate": ParamSpec(low=1e-4, high=1e-2, log=True)}), "mlp", cfg)
    assert narrowed["learning_rate"].high == 1e-2
    assert "learning_rate" not in configured_values(cfg, narrowed)
