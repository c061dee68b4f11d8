"""prefect.yaml as a Prefect user deploys it: `prefect deploy --all` against a real server creates the
retrain and monitor deployments with the limit, the schedules and the drift trigger pmf itself creates."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO
from tests.support.local_server import prefect_deploy_all

pytestmark = pytest.mark.slow

MODEL = "yaml-check"  # not penguins: the shared server's other tests own that name


def test_prefect_deploy_all_creates_the_deployments(local_server, prefect, tmp_path):
    config = yaml.safe_load((REPO / "prefect.yaml").read_text().replace("penguins", MODEL))
    for deployment in config["deployments"]:
        deployment["paused"] = True  # nothing of this copy runs on the shared server
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**local_server.env, "PREFECT_API_URL": local_server.prefect_api_url, "PYTHONPATH": str(REPO)}
    prefect_deploy_all(tmp_path, env)
    retrain = prefect.read_deployment_by_name(f"pmf-retrain/{MODEL}")
    monitor = prefect.read_deployment_by_name(f"pmf-monitor/{MODEL}")
    try:
        assert retrain.entrypoint == "flows.retrain_flow:retrain_flow"
        assert (retrain.work_pool_name, monitor.work_pool_name) == ("pmf-local", "pmf-local")
        assert retrain.global_concurrency_limit.limit == 1
        assert retrain.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert retrain.schedules[0].schedule.cron == "0 3 * * *"
        assert retrain.schedules[0].parameters == {"trigger": "schedule"}
        assert monitor.schedules[0].schedule.interval.total_seconds() == 3600
        (trigger,) = prefect.read_resource_related_automations(f"prefect.deployment.{retrain.id}")
        assert trigger.name == f"pmf-drift-retrain-{MODEL}"
        assert trigger.actions[0].parameters["trigger"] == "drift"
    finally:
        prefect.delete_resource_owned_automations(f"prefect.deployment.{retrain.id}")
        prefect.delete_deployment(retrain.id)
        prefect.delete_deployment(monitor.id)
