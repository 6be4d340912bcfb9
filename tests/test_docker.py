"""The Docker files, read as files, in the default suite.

tests/test_docker_stack.py builds and runs them for real with podman (opt-in:
bash .ci/containers). What can be checked without building: the compose files parse, refuse to
start without a password, let workers wait for a healthy Valkey, and the
image does not run the crawler as root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from crawler.bench.cluster import NODE_TIMEOUT_MS

DOCKER = Path(__file__).resolve().parent.parent / "docker"
COMPOSE_FILES = sorted(DOCKER.glob("compose*.yaml"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_the_image_runs_the_crawler_as_a_user_that_is_not_root() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_has_no_default_password(path: Path) -> None:
    text = path.read_text()
    assert "change-me" not in text
    uses = re.findall(r"\$\{CRAWL_REDIS_PASSWORD([^}]*)\}", text)
    assert uses and all(u.startswith(":?") for u in uses), uses  # unset: refuse to start


def _healthy_valkey_behind(services: dict[str, Any], name: str) -> bool:
    """The service is a Valkey server with a healthcheck, or a one-shot that waits for them."""
    service = services[name]
    if "valkey-server" in str(service.get("command", "")):
        return bool(service["healthcheck"]["test"])
    waits = service.get("depends_on") or {}
    return bool(waits) and all(waits[w]["condition"] == "service_healthy"
                               and _healthy_valkey_behind(services, w) for w in waits)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_workers_wait_for_a_healthy_valkey(path: Path) -> None:
    services = load(path)["services"]
    assert any("valkey-server" in str(s.get("command", "")) for s in services.values())
    for name, service in services.items():
        if "build" in service:
            waits = service["depends_on"]
            assert waits, name
            for dep, how in waits.items():
                assert how["condition"] in ("service_healthy",
                                            "service_completed_successfully"), name
                assert _healthy_valkey_behind(services, dep), (name, dep)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_valkey_has_the_embedded_servers_memory_settings(path: Path) -> None:
    # Dedup intsets, compressed host queues in small nodes (README, Memory): an
    # external server sized from the README's figures needs what the embedded one has.
    from crawler.store.server import server_args

    embedded = server_args(Path("/tmp"))
    wanted = [f"{flag} {embedded[embedded.index(flag) + 1]}" for flag in (
        "--set-max-intset-entries", "--list-compress-depth", "--list-max-listpack-size")]
    services = load(path)["services"]
    nodes = [s for s in services.values() if "valkey-server" in str(s.get("command", ""))]
    assert nodes
    for node in nodes:
        command = " ".join(str(node["command"]).split())
        assert all(setting in command for setting in wanted), (wanted, command)


def test_the_compose_cluster_has_the_test_fixtures_shape_and_settings() -> None:
    services = load(DOCKER / "compose-cluster.yaml")["services"]
    nodes = [s for s in services.values() if "valkey-server" in str(s.get("command", ""))]
    assert len(nodes) == 3 * (1 + 1)  # 3 masters, a replica each
    create = str(services["cluster-init"]["command"])
    assert "--cluster-replicas 1" in create and create.count(":6379") == 6
    for node in nodes:
        command = " ".join(str(node["command"]).split())
        assert f"--cluster-node-timeout {NODE_TIMEOUT_MS} " in command
        assert "--cluster-replica-validity-factor 0" in command
        assert "--cluster-enabled yes" in command and "--masterauth" in command


def test_the_grafana_dashboard_asks_only_for_metrics_the_crawler_serves() -> None:
    import json

    from prometheus_client.parser import text_string_to_metric_families

    from crawler.observe.metrics import WorkerMetrics, crawl_families, exposition

    served = {f.name for f in text_string_to_metric_families(
        WorkerMetrics().exposition().decode())}
    served |= {"crawler_frontier_round_trips", "crawler_retries", "crawler_robots_fetches",
               "crawler_pages", "crawler_fetches_in_flight"}  # read from a live worker
    served |= {f.name for f in text_string_to_metric_families(
        exposition(crawl_families({"by_shard": []}, {})).decode())}
    board = json.loads((DOCKER / "grafana-dashboard.json").read_text())
    asked = {name for panel in board["panels"] for target in panel["targets"]
             for name in re.findall(r"\b(crawl(?:er)?_[a-z_]+)", target["expr"])}
    suffixes = ("_total", "_bucket", "_sum", "_count")
    missing = {n for n in asked if n not in served
               and not any(n.endswith(x) and n[:-len(x)] in served for x in suffixes)}
    assert asked and not missing, missing
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    assert {job["job_name"] for job in prometheus["scrape_configs"]} == {"crawl", "workers"}


def test_metrics_served_beyond_loopback_carry_a_token_prometheus_sends() -> None:
    compose = load(DOCKER / "compose.yaml")
    serving = {name: s for name, s in compose["services"].items()
               if "0.0.0.0" in str(s.get("command", ""))
               or (s.get("environment") or {}).get("CRAWL_METRICS_HOST") == "0.0.0.0"}
    assert set(serving) == {"worker", "metrics"}
    for name, service in serving.items():  # unset: compose refuses to start
        assert service["environment"]["CRAWL_METRICS_TOKEN"].startswith(
            "${CRAWL_METRICS_TOKEN:?"), name
    token_file = "/etc/prometheus/metrics_token"
    assert compose["configs"]["metrics_token"]["content"].startswith("${CRAWL_METRICS_TOKEN:?")
    assert {"source": "metrics_token", "target": token_file} in \
        compose["services"]["prometheus"]["configs"]
    prometheus = load(DOCKER / "prometheus.yml")
    for job in prometheus["scrape_configs"]:
        assert job["authorization"]["credentials_file"] == token_file, job["job_name"]
