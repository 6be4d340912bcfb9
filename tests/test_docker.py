"""The Docker files, read as files: no Docker engine runs on this machine type.

What can be checked without building: the compose files parse, refuse to
start without a password, let workers wait for a healthy Valkey, and the
image does not run the crawler as root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

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


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_workers_wait_for_a_healthy_valkey(path: Path) -> None:
    services = load(path)["services"]
    valkeys = [name for name, s in services.items() if "valkey" in str(s.get("image", ""))]
    assert valkeys
    for name in valkeys:
        assert services[name]["healthcheck"]["test"], name
    for name, service in services.items():
        if "build" in service:
            waits = service["depends_on"]
            assert all(waits[v]["condition"] == "service_healthy" for v in waits), name
