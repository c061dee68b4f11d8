"""What `pmf schedule` and `pmf alerts` accept before they ask a server: durations, cron, time zones,
webhook URLs and kinds, the schedule text users read back, and prefect.yaml as Prefect loads it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows import alerts, deployments
from flows.cli import build_parser
from flows.cli.schedule import schedule_table, usage_problem
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("6h", 21600), ("1d", 86400), ("7d", 604800), (" 2h ", 7200)],
)
def test_a_duration_is_a_number_and_a_unit(text, seconds):
    assert deployments.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0m", "15", "m", "1.5h", "1w", "-1h", "15 m", "1h30m", ""])
def test_a_bad_duration_says_what_is_expected(text):
    with pytest.raises(ValueError, match="expected a positive number and a unit s, m, h or d"):
        deployments.parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(30, "30s"), (90, "90s"), (900, "15m"), (21600, "6h"), (604800, "7d")])
def test_a_duration_reads_back_in_its_largest_whole_unit(seconds, text):
    assert deployments.duration_text(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("expression", ["0 3 * * *", "*/15 * * * *", "0 3 * * 1-5", "30 2 1 * *"])
def test_a_five_field_cron_is_accepted(expression):
    assert deployments.check_cron(expression) == expression


@pytest.mark.parametrize("expression", ["0 3 * *", "61 3 * * *", "0 3 * * * *", "H 3 * * *", "every day"])
def test_a_bad_cron_says_what_is_expected(expression):
    with pytest.raises(ValueError, match="expected 5 fields"):
        deployments.check_cron(expression)


def test_time_zones_are_iana_names():
    assert deployments.check_timezone("Europe/Paris") == "Europe/Paris"
    with pytest.raises(ValueError, match="expected an IANA name"):
        deployments.check_timezone("Mars/Olympus")


def test_schedule_text_is_what_the_user_typed():
    cron = deployments.Timing(cron="0 3 * * *", timezone="Europe/Paris").prefect_schedule()
    every = deployments.Timing(interval=timedelta(hours=6)).prefect_schedule()
    assert deployments.schedule_text(cron) == "cron 0 3 * * * (Europe/Paris)"
    assert deployments.schedule_text(every) == "every 6h"


def schedule_args(*argv: str):
    parser, _ = build_parser()
    return parser.parse_args(["schedule", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["penguins"], "give --cron EXPR or --interval DURATION"),
        ([], "NAME is required"),
        (["penguins", "--list"], "--list takes no NAME"),
        (["penguins", "--pause", "--interval", "1h"], "take no --cron, --interval or --monitor-every"),
        (["penguins", "--interval", "6x"], "--interval: '6x' is not a duration"),
        (["penguins", "--monitor-every", "0s"], "--monitor-every: '0s' is not a duration"),
        (["penguins", "--cron", "0 3 * *"], "--cron: '0 3 * *' is not a cron expression"),
        (["penguins", "--cron", "0 3 * * *", "--timezone", "Paris"], "--timezone: 'Paris' is not a time zone"),
    ],
)
def test_schedule_flags_are_checked_before_any_server(argv, message):
    assert message in (usage_problem(schedule_args(*argv)) or "")


@pytest.mark.parametrize(
    "argv", [["--list"], ["penguins", "--interval", "6h"], ["penguins", "--monitor-every", "15m"], ["penguins", "--delete"]]
)
def test_good_schedule_flags_pass(argv):
    assert usage_problem(schedule_args(*argv)) is None


def test_cron_and_interval_exclude_each_other():
    with pytest.raises(SystemExit) as exit_info:
        schedule_args("penguins", "--cron", "0 3 * * *", "--interval", "1h")
    assert exit_info.value.code == 2


def test_the_schedule_table_fits_80_columns():
    rows = [
        {
            "model": "a-very-long-model-name-indeed",
            "kind": "retrain",
            "schedule": "cron */15 2-5 1,15 * 1-5 (America/Argentina/Buenos_Aires)",
            "paused": False,
            "next_run": "2026-11-30T03:00:00Z",
        },
        {"model": "penguins", "kind": "monitor", "schedule": "every 15m", "paused": True, "next_run": None},
    ]
    lines = schedule_table(rows)
    assert max(len(line) for line in lines) <= 80
    assert lines[1].endswith("2026-11-30 03:00")
    assert lines[2].endswith("paused")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/services/***"),
        ("http://127.0.0.1:8123/hook?token=abc", "http://127.0.0.1:8123/hook?***"),
        ("https://user:pass@example.com/x", "https://example.com/x"),
        ("https://example.com", "https://example.com"),
    ],
)
def test_webhook_urls_are_shown_without_their_secret_parts(url, masked):
    assert alerts.mask_url(url) == masked


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "https://", "file:///tmp/x"])
def test_a_webhook_must_be_http_or_https(url):
    with pytest.raises(ValueError, match="expected http:// or https:// and a host"):
        alerts.check_webhook(url)


def test_alert_kinds_default_to_all_four_and_unknown_ones_are_named():
    assert alerts.parse_kinds(None) == ["failure", "data_rejected", "drift", "promotion"]
    assert alerts.parse_kinds("drift, failure,drift") == ["drift", "failure"]
    with pytest.raises(ValueError, match=r"unknown kind\(s\) rejected"):
        alerts.parse_kinds("failure,rejected")


def test_failure_alerts_are_not_sent_for_rejections():
    assert "prefect.flow-run.Rejected" not in alerts.FLOW_RUN_EVENTS["failure"]
    assert alerts.FLOW_RUN_EVENTS["data_rejected"] == {"prefect.flow-run.Rejected"}


def test_prefect_yaml_validates_as_prefect_deploy_loads_it():
    """Prefect's own models for prefect.yaml, schedules and triggers accept the file as it is."""
    import yaml
    from prefect.cli.deploy._models import PrefectYamlModel, RawScheduleConfig
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers

    raw = yaml.safe_load((REPO / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    by_flow = {d.flow_name: d for d in model.deployments}
    assert by_flow.keys() == {"pmf-retrain", "pmf-monitor"}
    assert by_flow["pmf-retrain"].entrypoint == deployments.ENTRYPOINTS["retrain"]
    assert by_flow["pmf-monitor"].entrypoint == deployments.ENTRYPOINTS["monitor"]
    for config in raw["deployments"]:
        assert config["work_pool"]["name"] == deployments.LOCAL_POOL
        for schedule in config["schedules"]:
            RawScheduleConfig.model_validate(schedule)
        for trigger in _initialize_deployment_triggers(config["name"], config.get("triggers", [])):
            assert trigger.within == deployments.DRIFT_DEBOUNCE
    assert by_flow["pmf-retrain"].concurrency_limit.limit == 1
