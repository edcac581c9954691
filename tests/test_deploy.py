"""The deployments run the whole system: the compose file (checked against the Compose Specification's JSON
Schema, the offline half of `docker compose config`), the Kubernetes recipe, the image build and the
Prometheus targets, each held against the single sources: every_group() and the settings object. None of
them is started here (no Docker engine, no cluster)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from reelscope.infra.core.metrics import every_group, group_metrics_port
from reelscope.infra.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "infra" / "docker-compose.yml"
K8S = ROOT / "infra" / "k8s" / "reelscope.yaml"
PROMETHEUS = ROOT / "infra" / "grafana" / "prometheus.yml"
COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec" / "compose-spec.json"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(K8S.read_text()) if d]


def group_of(command: list[str]) -> str | None:
    """The group a `reelscope process --group G` command runs; None for other commands."""
    return command[command.index("--group") + 1] if command[:2] == ["reelscope", "process"] else None


def assert_settings_variables(names: list[str]) -> None:
    """Every REELSCOPE_* name reaches a field of the settings object (a typo would be ignored silently)."""
    fields = Settings.model_fields
    for name in names:
        if name.startswith("REELSCOPE_"):
            top = name.removeprefix("REELSCOPE_").split("__")[0].lower()
            assert top in fields, f"{name}: the settings object has no field {top!r}"


def test_the_compose_file_follows_the_compose_specification() -> None:
    import jsonschema  # the `test` extra

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.validate(compose(), schema, cls=jsonschema.Draft7Validator)


def test_compose_runs_every_group_with_healthchecks_volumes_and_pinned_images() -> None:
    services = compose()["services"]
    groups = {name: group_of(s.get("command", [])) for name, s in services.items()}
    assert sorted(g for g in groups.values() if g) == sorted(every_group())
    assert all(name == group for name, group in groups.items() if group)  # a service is named after its group
    declared = set(compose()["volumes"])
    for name, service in services.items():
        assert "healthcheck" in service, name
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?", image) and ":latest" not in image, (
            image
        )
        named = {v.split(":")[0] for v in service.get("volumes", []) if not v.startswith(("/", ".", "$"))}
        assert named <= declared, (name, named - declared)
        env = service.get("environment", {})
        assert_settings_variables(list(env))
        if groups[name]:
            port = env["REELSCOPE_METRICS_PORT"]
            assert f"127.0.0.1:{port}/metrics" in " ".join(service["healthcheck"]["test"]), name
            assert int(service.get("deploy", {}).get("replicas", 1)) <= int(
                env["REELSCOPE_TOPICS__PARTITIONS"]
            )
    for data in ("kafka", "clickhouse", "serve"):  # what must outlive a container is in a named volume
        assert any(v.split(":")[0] in declared for v in services[data]["volumes"]), data
    assert "/health" in " ".join(services["serve"]["healthcheck"]["test"])


def test_the_kubernetes_recipe_has_a_deployment_per_group_within_the_partitions() -> None:
    docs = manifests()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (config,) = by_kind["ConfigMap"]
    partitions = int(config["data"]["REELSCOPE_TOPICS__PARTITIONS"])
    assert_settings_variables([*config["data"], *by_kind["Secret"][0]["stringData"]])
    groups = []
    for deployment in by_kind["Deployment"]:
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        (container,) = spec["template"]["spec"]["containers"]
        assert_settings_variables([e["name"] for e in container.get("env", [])])
        if group := group_of(container["args"]):
            groups.append(group)
            assert spec["replicas"] <= partitions, deployment["metadata"]["name"]
            assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    assert sorted(groups) == sorted(every_group())
    (service,) = by_kind["Service"]
    serve = [
        d
        for d in by_kind["Deployment"]
        if d["spec"]["template"]["spec"]["containers"][0]["args"][1] == "serve"
    ]
    assert service["spec"]["selector"].items() <= serve[0]["spec"]["template"]["metadata"]["labels"].items()
    claims = {c["metadata"]["name"] for c in by_kind["PersistentVolumeClaim"]}
    for deployment in by_kind["Deployment"]:
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_the_image_installs_as_ci_does_and_leaves_the_host_state_out() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN .*\.ci/install$", dockerfile, re.M)  # the one install script, not a copy of it
    assert re.search(r"^FROM [\w./-]+:[\w.-]+", dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".venv", ".reelscope", ".git", "**/__pycache__", ".pytest_cache", "artifacts"):
        assert path in ignored, path


@pytest.mark.parametrize("processes", [1, 3])
def test_prometheus_scrapes_the_stable_group_ports(processes: int) -> None:
    settings = Settings(metrics_base_port=Settings.model_fields["metrics_base_port"].default)
    ports = [group_metrics_port(settings, g, i) for g in every_group() for i in range(processes)]
    assert len(set(ports)) == len(ports) and all(ports)  # no two processes of `up` share a port
    config = yaml.safe_load(PROMETHEUS.read_text())
    (groups_job,) = [j for j in config["scrape_configs"] if j["job_name"] == "reelscope-groups"]
    targets = {t["labels"]["group"]: t["targets"] for t in groups_job["static_configs"]}
    assert targets == {g: [f"127.0.0.1:{group_metrics_port(settings, g, 0)}"] for g in every_group()}
    assert group_metrics_port(Settings(metrics_base_port=0), "light", 0) == 0  # 0: any free port (tests)
