"""TLS against real local HTTPS servers: a CA trusted through ca_file, certificate
errors said in one line, and tls_insecure_hosts for the hosts it names only."""

from __future__ import annotations

import datetime
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from crawl_helpers import crawl
from redis.asyncio import Redis
from test_fetch import StubResolver

from crawler import errors
from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.errors import ConfigError
from crawler.net.fetch import Fetcher
from crawler.net.tls import client_context, host_matches

Configure = Callable[[ssl.SSLContext], None]


@asynccontextmanager
async def https_server(ip: str, configure: Configure | None) -> AsyncIterator[str]:
    """An HTTPS server on ``ip`` whose certificate ``configure`` loads; yields its root
    URL, https:// either way. ``configure`` None: the server speaks plain HTTP."""
    ctx = None
    if configure is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        configure(ctx)

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="<title>over tls</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port(ip)
    await web.TCPSite(runner, ip, port, ssl_context=ctx).start()
    try:
        yield f"https://{ip}:{port}/"
    finally:
        await runner.cleanup()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_settings(settings: Settings) -> Settings:
    return settings.replace(obey_robots=False, max_attempts=2)


async def crawl_one(redis: Redis, settings: Settings, url: str) -> dict[str, Any]:
    return (await crawl(redis, settings, [url]))[url]


def error_of(record: dict[str, Any]) -> tuple[str | None, str]:
    error = record["error"] or {}
    return error.get("type"), error.get("message", "")


async def test_a_ca_trusted_through_ca_file_lets_the_crawl_succeed(
        redis: Redis, tls_settings: Settings, ca: trustme.CA, ca_file: str) -> None:
    async with https_server("127.0.0.2", ca.issue_cert("127.0.0.2").configure_cert) as url:
        record = await crawl_one(redis, tls_settings.replace(ca_file=ca_file), url)
    assert record["error"] is None and record["status"] == 200
    assert record["title"] == "over tls"


async def test_the_same_server_without_ca_file_is_an_unknown_issuer(
        redis: Redis, tls_settings: Settings, ca: trustme.CA) -> None:
    async with https_server("127.0.0.2", ca.issue_cert("127.0.0.2").configure_cert) as url:
        record = await crawl_one(redis, tls_settings, url)
    kind, message = error_of(record)
    assert kind == "tls_certificate"
    assert message.startswith("unknown issuer") and "\n" not in message
    assert record["attempts"] == 1  # trying again cannot help


async def test_an_https_url_on_a_plain_http_port_says_so(
        redis: Redis, tls_settings: Settings) -> None:
    """aiohttp's message held "ssl:<ssl.SSLContext object at 0x7f...>" and OpenSSL's
    WRONG_VERSION_NUMBER, which a user had to decode."""
    async with https_server("127.0.0.2", None) as url:
        record = await crawl_one(redis, tls_settings, url)
    kind, message = error_of(record)
    assert kind == "tls_error"
    assert "does this port speak plain HTTP?" in message
    assert "object at 0x" not in message and "ssl:" not in message


async def test_a_self_signed_certificate_is_said_so(
        redis: Redis, tls_settings: Settings, ca: trustme.CA, tmp_path: Path) -> None:
    # The CA's own certificate is self-signed: served as the leaf, it is one.
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    ca.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(cert))
    async with https_server("127.0.0.2", lambda c: c.load_cert_chain(cert, key)) as url:
        record = await crawl_one(redis, tls_settings, url)
    kind, message = error_of(record)
    assert kind == "tls_certificate" and message.startswith("self-signed certificate"), record


async def test_an_expired_certificate_is_said_so(
        redis: Redis, tls_settings: Settings, ca: trustme.CA, ca_file: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    leaf = ca.issue_cert("127.0.0.2", not_before=now - datetime.timedelta(days=30),
                         not_after=now - datetime.timedelta(days=1))
    async with https_server("127.0.0.2", leaf.configure_cert) as url:
        record = await crawl_one(redis, tls_settings.replace(ca_file=ca_file), url)
    kind, message = error_of(record)
    assert kind == "tls_certificate" and message.startswith("certificate expired"), record


async def test_a_certificate_for_another_address_is_a_wrong_name(
        redis: Redis, tls_settings: Settings, ca: trustme.CA, ca_file: str) -> None:
    async with https_server("127.0.0.2", ca.issue_cert("127.0.0.9").configure_cert) as url:
        record = await crawl_one(redis, tls_settings.replace(ca_file=ca_file), url)
    kind, message = error_of(record)
    assert kind == "tls_certificate" and message.startswith("wrong name"), record


async def test_a_certificate_for_another_host_name_is_a_wrong_name(
        tls_settings: Settings, ca: trustme.CA, ca_file: str) -> None:
    stub = StubResolver({"site.test": ["127.0.0.2"], "other.test": ["127.0.0.2"]})
    leaf = ca.issue_cert("other.test")
    async with https_server("127.0.0.2", leaf.configure_cert) as url:
        port = url.rsplit(":", 1)[1].rstrip("/")
        async with Fetcher(tls_settings.replace(ca_file=ca_file), resolver=stub) as fetcher:
            with pytest.raises(errors.TLSCertificateError) as caught:
                await fetcher.get(f"https://site.test:{port}/")
            good = await fetcher.get(f"https://other.test:{port}/")  # control: its own name
    assert str(caught.value).startswith("wrong name: certificate is not for this host")
    assert good.status == 200


async def test_tls_insecure_hosts_skips_verification_for_its_hosts_only(
        redis: Redis, tls_settings: Settings, ca: trustme.CA,
        caplog: pytest.LogCaptureFixture) -> None:
    s = tls_settings.replace(tls_insecure_hosts=("127.0.0.2",), max_per_host=1)
    caplog.set_level(logging.WARNING, "crawler.tls")
    async with https_server("127.0.0.2", ca.issue_cert("127.0.0.2").configure_cert) as named, \
            https_server("127.0.0.3", ca.issue_cert("127.0.0.3").configure_cert) as other:
        found = await crawl(redis, s, [named, named + "again", other])
    assert found[named]["error"] is None and found[named]["title"] == "over tls"
    assert found[named + "again"]["status"] == 404  # fetched, unverified, a second time
    assert error_of(found[other])[0] == "tls_certificate"  # not named: verified, refused
    warned = [r for r in caplog.records if "NOT verified" in r.getMessage()]
    assert len(warned) == 1 and "127.0.0.2" in warned[0].getMessage()


def test_host_patterns_match_the_host_and_its_subdomains_only() -> None:
    patterns = ("example.com", "intranet.test:8443")
    assert host_matches("example.com:443", patterns) == "example.com"
    assert host_matches("www.example.com", patterns) == "example.com"
    assert host_matches("badexample.com", patterns) is None
    assert host_matches("intranet.test:8443", patterns) == "intranet.test:8443"
    assert host_matches("intranet.test:443", patterns) is None


def test_an_unreadable_ca_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_file: no such file"):
        client_context(str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="ca_file: not a PEM bundle"):
        client_context(str(tmp_path / "junk.pem"))
