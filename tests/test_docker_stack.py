"""docker/ run for real: the image built, each compose file brought up, a site crawled.

Opt-in: ``CRAWL_TEST_CONTAINERS=1`` (``bash .ci/containers`` sets it and
installs what it needs): a minute or two of podman on top of the suite's
budget. Skipped, with the reason, without it, or without podman and
podman-compose, or without the base images (on a machine with no container
registry, shared/tools/podman-standins.sh builds local stand-ins for
``python:3.11-slim`` and ``valkey/valkey:9``).

Each test builds the image through the compose file's own ``build:``, brings
the stack up under a project name of its own, starts a small static site
container on the stack's network (``python -m http.server``), seeds it
through ``compose run worker seed -``, lets the compose worker crawl it, and
reads the records back through ``compose run worker export -``. All traffic
stays on the stack's podman bridge network: the crawl is allowed exactly that
network's subnet (``allow_cidrs``), nothing else private.

podman-compose 1.0.3 (Debian 12's) starts services without waiting on
``depends_on`` conditions, and without systemd podman runs no health checks
on its own: the tests start the services in the order those conditions
would, running each health check themselves (``podman healthcheck run``),
which checks the health check commands too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
BASE_IMAGES = ("docker.io/library/python:3.11-slim", "docker.io/valkey/valkey:9")
# The image's layers stay cached under this tag: the next run builds in seconds.
CACHE_TAG = "localhost/crawler-docker-test:cache"
PASSWORD, TOKEN = "compose-test-pw", "compose-test-token"
PAGE_TITLES = ["Home"] + [f"Page {n}" for n in range(1, 12)]
CRAWLER_UID = "10001"  # docker/Dockerfile's useradd
# Run on the stack's network, as Prometheus scrapes: each /metrics with the
# token and without; prints url, token sent, status, lines of crawl* samples.
SCRAPE = f"""
import urllib.error, urllib.request
for url in ("http://worker:9100/metrics", "http://worker:9101/metrics",
            "http://metrics:9464/metrics"):
    for token in ("{TOKEN}", ""):
        request = urllib.request.Request(
            url, headers={{"Authorization": "Bearer " + token}} if token else {{}})
        try:
            body = urllib.request.urlopen(request, timeout=10)
            print(url, bool(token), body.status, body.read().count(b"\\ncrawl"))
        except urllib.error.HTTPError as refused:
            print(url, bool(token), refused.code, 0)
"""


def _why_not() -> str | None:
    if os.environ.get("CRAWL_TEST_CONTAINERS") != "1":
        return "containers are opt-in: CRAWL_TEST_CONTAINERS=1 (or: bash .ci/containers)"
    missing = [tool for tool in ("podman", "podman-compose") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (bash .ci/containers installs them)"
    absent = [image for image in BASE_IMAGES
              if subprocess.run(["podman", "image", "exists", image]).returncode != 0]
    if absent:
        return (f"base image(s) {', '.join(absent)} absent: bash .ci/containers pulls them, "
                "or with no registry builds stand-ins (shared/tools/podman-standins.sh)")
    return None


WHY_NOT = _why_not()
pytestmark = [pytest.mark.containers, pytest.mark.timeout(600),
              pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]


def podman(*args: str, check: bool = True, timeout: float = 120,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {done.returncode}\n"
                             f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def wait_for(what: str, ready: Callable[[], bool], seconds: float,
             container: str | None = None) -> None:
    """Polls ``ready`` every second; on timeout, says what (and the container's log tail)."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            log = podman("logs", "--tail", "30", container, check=False) if container else None
            raise AssertionError(f"not within {seconds:.0f} s: {what}"
                                 + (f"\n{log.stdout}{log.stderr}" if log else ""))
        time.sleep(1)


def exited(container: str) -> bool:
    status = json.loads(podman("inspect", container).stdout)[0]["State"]["Status"]
    return bool(status == "exited")


def exit_code(container: str) -> int:
    return int(json.loads(podman("inspect", container).stdout)[0]["State"]["ExitCode"])


class Stack:
    """One compose file under a project name of its own, and everything it made."""

    def __init__(self, compose_file: Path, project: str) -> None:
        self.file, self.project = compose_file, project
        self.env = {**os.environ, "CRAWL_REDIS_PASSWORD": PASSWORD,
                    "CRAWL_METRICS_TOKEN": TOKEN}
        self.label = f"io.podman.compose.project={project}"

    def compose(self, *args: str, stdin: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman-compose", "-p", self.project, "-f", str(self.file), *args],
                              capture_output=True, text=True, env=self.env,
                              timeout=timeout, input=stdin, cwd=ROOT)
        if done.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)}: exit {done.returncode}\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def container(self, service: str) -> str:
        found = podman("ps", "-a", "-q", "--filter", f"label={self.label}",
                       "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        assert len(found) == 1, (service, found)
        return found[0]

    def wait_healthy(self, service: str) -> None:
        """The service's own health check, run until it passes (what service_healthy waits on)."""
        name = self.container(service)
        wait_for(f"{service} healthy", lambda: podman(
            "healthcheck", "run", name, check=False).returncode == 0, 120, name)

    def network(self) -> tuple[str, str]:
        """The stack's network and its subnet."""
        some = podman("ps", "-a", "-q", "--filter", f"label={self.label}").stdout.split()[0]
        name = next(iter(json.loads(podman("inspect", some).stdout)[0]["NetworkSettings"]
                         ["Networks"]))
        subnets = json.loads(podman("network", "inspect", name).stdout)[0]["subnets"]
        return name, subnets[0]["subnet"]

    def start_site(self, image: str) -> None:
        """The site, on the stack's network under the name ``site``, labelled as the stack's."""
        network, _ = self.network()
        podman("run", "-d", "--name", f"{self.project}-site", "--label", self.label,
               "--net", network, "--network-alias", "site", image)

    def seed(self) -> str:
        """The site's home page seeded; what seed said."""
        _, subnet = self.network()
        seeded = self.compose("run", "--rm", "--no-deps", "-T", "-e", "CRAWL_DELAY=0",
                              "-e", f"CRAWL_ALLOW_CIDRS={subnet}",
                              "worker", "seed", "-", stdin="http://site:8000/\n")
        said = [line for line in (seeded.stdout + seeded.stderr).splitlines()
                if line.startswith("added ")]
        assert said, seeded.stderr[-2000:]
        return said[0]

    def volumes(self) -> list[str]:
        return podman("volume", "ls", "-q", "--filter", f"label={self.label}").stdout.split()

    def status(self) -> dict[str, Any]:
        shown = podman("exec", self.container("worker"), "crawl", "status", "--json",
                       check=False)
        return json.loads(shown.stdout) if shown.returncode == 0 else {}

    def export(self) -> list[dict[str, Any]]:
        """``compose run worker export -``: JSON lines on stdout (podman-compose 1.0.3
        prints its own lines there too: only JSON objects are records)."""
        out = self.compose("run", "--rm", "--no-deps", "-T", "worker", "export", "-").stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith('{"id"')]

    def remove(self) -> None:
        """Every container, volume and network of the project, and its image tags."""
        for cid in podman("ps", "-a", "-q", "--filter", f"label={self.label}").stdout.split():
            podman("rm", "-f", "-t", "0", cid, check=False)
        for volume in self.volumes():
            podman("volume", "rm", "-f", volume, check=False)
        for network in podman("network", "ls", "-q", "--filter",
                              f"label={self.label}").stdout.split():
            podman("network", "rm", "-f", network, check=False)
        for service in ("worker", "metrics"):  # untagged only: CACHE_TAG keeps the layers
            podman("rmi", f"localhost/{self.project}_{service}", check=False)


@pytest.fixture(scope="module")
def site_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static site of 12 linked pages, served by the base python image as nobody."""
    root = tmp_path_factory.mktemp("site")
    pages = root / "site"
    pages.mkdir()
    links = " ".join(f'<a href="/p{n}.html">{n}</a>' for n in range(1, 12))
    (pages / "index.html").write_text(
        f"<html><head><title>Home</title></head><body>{links}</body></html>")
    for n in range(1, 12):
        (pages / f"p{n}.html").write_text(
            f"<html><head><title>Page {n}</title></head><body><a href='/'>home</a></body></html>")
    (root / "Containerfile").write_text(
        f"FROM {BASE_IMAGES[0]}\nCOPY site /site\nUSER nobody\n"
        'CMD ["python", "-m", "http.server", "8000", "--directory", "/site"]\n')
    tag = f"localhost/crawler-docker-test-site:{os.getpid()}"
    podman("build", "-q", "-t", tag, str(root))
    yield tag
    podman("rmi", "-f", tag, check=False)


@pytest.fixture
def stack() -> Iterator[Callable[[str], Stack]]:
    made: list[Stack] = []

    def make(compose_file: str) -> Stack:
        made.append(Stack(DOCKER / compose_file, f"crawltest{os.getpid()}{len(made)}"))
        made[-1].remove()  # a run killed before its teardown left these
        return made[-1]

    yield make
    for each in made:
        each.remove()


def build(stack: Stack) -> float:
    """The compose file's own build of the image; seconds it took."""
    started = time.monotonic()
    stack.compose("build", "worker", timeout=600)
    took = time.monotonic() - started
    before = podman("image", "inspect", "--format", "{{.Id}}", CACHE_TAG, check=False)
    podman("tag", f"localhost/{stack.project}_worker", CACHE_TAG)
    after = podman("image", "inspect", "--format", "{{.Id}}", CACHE_TAG).stdout
    if before.returncode == 0 and before.stdout != after:  # the last build, untagged now
        podman("rmi", before.stdout.strip(), check=False)
    return took


def crawl_and_check(stack: Stack) -> None:
    """Workers up, the seeded site crawled to the end, the export's records checked."""
    def crawled() -> bool:
        status = stack.status()
        return (status.get("done", 0) >= len(PAGE_TITLES)
                and status.get("queued") == 0 and status.get("leased") == 0)

    wait_for("the crawl done", crawled, 180, stack.container("worker"))
    records = stack.export()
    assert sorted(r["title"] for r in records) == sorted(PAGE_TITLES)
    assert {r["status"] for r in records} == {200}
    assert {r["url"] for r in records} == {"http://site:8000/"} | {
        f"http://site:8000/p{n}.html" for n in range(1, 12)}
    # Every process of the worker container (the parent and its --processes 2)
    # runs as the image's user, not root.
    worker = stack.container("worker")
    users = podman("top", worker, "user").stdout.split()[1:]
    assert len(users) >= 3 and set(users) == {"crawler"}, users
    assert podman("exec", worker, "id", "-u").stdout.strip() == CRAWLER_UID


def stop(container: str) -> str:
    """``podman stop`` with the compose file's grace period; the seconds it took."""
    started = time.monotonic()
    podman("stop", "-t", "30", container, timeout=60)
    took = time.monotonic() - started
    assert took < 8 and exit_code(container) == 0, (container, took, exit_code(container))
    return f"{took:.1f} s"


def test_compose_yaml_builds_runs_valkey_and_workers_and_crawls_a_site(
        stack: Callable[[str], Stack], site_image: str) -> None:
    single = stack("compose.yaml")
    seconds = build(single)
    single.compose("up", "-d", "valkey")
    single.wait_healthy("valkey")
    single.start_site(site_image)
    # Seed first, as the README says: a worker started before any crawl exists exits.
    single.compose("up", "-d", "--no-deps", "worker")
    early = single.container("worker")
    wait_for("the early worker's exit", lambda: exited(early), 120, early)
    assert exit_code(early) == 2
    assert "there is no crawl 'default'" in podman("logs", early).stderr
    assert single.seed().startswith("added 1,")
    podman("start", early)
    single.compose("up", "-d", "--no-deps", "metrics")
    crawl_and_check(single)
    # What Prometheus scrapes, from the network as it would: every worker
    # process and `crawl metrics`, each with the token, none without.
    network, _ = single.network()
    scraped = podman("run", "--rm", "--label", single.label, "--net", network,
                     BASE_IMAGES[0], "python", "-c", SCRAPE).stdout.split("\n")
    answers = {(line.split()[0], line.split()[1]): line.split()[2:]
               for line in scraped if line.strip()}
    assert len(answers) == 6, scraped
    for (url, with_token), (status, metric_lines) in answers.items():
        if with_token == "True":
            assert status == "200" and int(metric_lines) > 0, (url, status)
        else:
            assert status == "401", (url, status)
    # docker stop sends SIGTERM to PID 1, the crawl command itself: it must
    # handle it (PID 1 gets no default action) and exit well inside the grace period.
    stopped = {service: stop(single.container(service)) for service in ("worker", "metrics")}
    # `down` keeps the volume: the next `up` has the old crawl, the same seed
    # adds nothing. `down -v` deletes it.
    single.compose("down")
    assert single.volumes() == [f"{single.project}_valkey-data"]
    single.compose("up", "-d", "valkey")
    single.wait_healthy("valkey")
    assert single.seed() == "added 0, already seen 1, invalid 0"
    single.compose("down", "-v")
    assert single.volumes() == []
    print(f"compose.yaml: image build {seconds:.1f} s, stopped in {stopped}")


def test_compose_cluster_yaml_makes_a_cluster_and_crawls_a_site(
        stack: Callable[[str], Stack], site_image: str) -> None:
    cluster = stack("compose-cluster.yaml")
    seconds = build(cluster)
    nodes = [f"valkey-{n}" for n in range(1, 7)]
    cluster.compose("up", "-d", *nodes)
    for node in nodes:
        cluster.wait_healthy(node)
    cluster.compose("up", "-d", "--no-deps", "cluster-init")
    init = cluster.container("cluster-init")
    wait_for("cluster-init exited", lambda: exited(init), 120, init)
    assert exit_code(init) == 0, podman("logs", init).stdout[-2000:]
    node_1 = cluster.container("valkey-1")
    info = podman("exec", "-e", f"REDISCLI_AUTH={PASSWORD}", node_1,
                  "valkey-cli", "cluster", "info").stdout
    assert "cluster_state:ok" in info and "cluster_size:3" in info, info
    cluster.start_site(site_image)
    assert cluster.seed().startswith("added 1,")
    cluster.compose("up", "-d", "--no-deps", "worker")
    crawl_and_check(cluster)
    # The crawl's keys are spread over the three masters, not on one node.
    masters_with_keys = 0
    for node in nodes:
        role = podman("exec", "-e", f"REDISCLI_AUTH={PASSWORD}", cluster.container(node),
                      "valkey-cli", "role").stdout.split()[0]
        keys = podman("exec", "-e", f"REDISCLI_AUTH={PASSWORD}", cluster.container(node),
                      "valkey-cli", "dbsize").stdout.strip()
        masters_with_keys += role == "master" and int(keys) > 0
    assert masters_with_keys == 3
    print(f"compose-cluster.yaml: image build {seconds:.1f} s")
