"""Command-line options made from the settings model.

A flag that sets a setting is declared with ``setting_option``: its help
ends with the setting's default and name, read from ``crawler.config``'s
model, so ``crawl worker --help`` cannot drift from ``config/default.toml``.
The flag's own default stays None ("not given"), so a file or an
environment variable is not overridden by a default nobody typed.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from crawler.cli.markup import escape
from crawler.config import Settings
from crawler.config.loading import flag_name
from crawler.config.settings import field_section


def default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list | dict):
        return ", ".join(map(str, value)) or "none"
    if value is None or value == "":
        return "none"
    return str(value)


def setting_help(name: str, text: str, default: str | None = None) -> str:
    """``text [default: 200; setting worker.concurrency, env CRAWL_CONCURRENCY]``."""
    shown = default if default is not None else \
        default_text(Settings.model_fields[name].default)
    return escape(f"{text} [default: {shown}; setting {field_section(name)}.{name}, "
                  f"env CRAWL_{name.upper()}]")


def setting_option(name: str, text: str, *decls: str, default: str | None = None,
                   **kw: Any) -> Any:
    """A typer.Option for the setting ``name``: its flag, and help naming default and setting."""
    return typer.Option(*(decls or (flag_name(name),)), help=setting_help(name, text, default),
                        show_default=False, **kw)


def bool_setting_option(name: str, text: str, off: str | None = None) -> Any:
    """``--name/--no-name`` (or ``--name/OFF``): a flag both ways, no value after it."""
    on = flag_name(name)
    return setting_option(name, text, f"{on}/{off or '--no-' + on.removeprefix('--')}")


# -- the options of crawl worker that set settings ---------------------------------------

ConcurrencyOpt = Annotated[int | None, setting_option(
    "concurrency", "Fetches in flight per process.")]
ProcessesOpt = Annotated[int | None, setting_option(
    "processes", "Event loops (processes) on this node.")]
ScopeModeOpt = Annotated[str | None, setting_option(
    "scope", "Which links to follow: host (the seeds' hosts), domain (their registered "
             "domains) or any.")]
MaxDepthOpt = Annotated[int | None, setting_option(
    "max_depth", "Links followed from a seed at most; 0 = unlimited.")]
DelayOpt = Annotated[float | None, setting_option(
    "delay", "Seconds between request starts on one host.")]
MaxPerHostOpt = Annotated[int | None, setting_option(
    "max_per_host", "Requests in flight on one host.")]
MaxPagesPerHostOpt = Annotated[int | None, setting_option(
    "max_pages_per_host", "Pages fetched from one host at most; 0 = unlimited.")]
LeaseTimeOpt = Annotated[float | None, setting_option(
    "lease_time", "Seconds before a claimed URL whose worker went silent is handed out again.")]
UserAgentOpt = Annotated[str | None, setting_option(
    "user_agent", "Product token sent as User-Agent and matched in robots.txt, e.g. mybot/1.0.")]
ContactUrlOpt = Annotated[str | None, setting_option(
    "contact_url", "URL added to the User-Agent so site owners can reach you.")]
AllowPrivateOpt = Annotated[bool | None, bool_setting_option(
    "allow_private", "Allow fetching private and loopback addresses.")]
CookiesOpt = Annotated[bool | None, bool_setting_option(
    "cookies", "Keep the cookies sites set (one jar a host, in Redis) and send them back.")]
ObeyRobotsOpt = Annotated[bool | None, bool_setting_option(
    "obey_robots", "Obey robots.txt.", off="--ignore-robots")]
IncludeOpt = Annotated[list[str] | None, setting_option(
    "include", "Follow only URLs matching this regular expression (repeat for more).",
    metavar="<regex>")]
ExcludeOpt = Annotated[list[str] | None, setting_option(
    "exclude", "Never follow URLs matching this regular expression (repeat for more).",
    metavar="<regex>")]
DnsServersOpt = Annotated[list[str] | None, setting_option(
    "dns_servers", "DNS server to ask, ip or ip:port (repeat for more); none: the system's.",
    metavar="<ip[:port]>")]
ConnectTimeoutOpt = Annotated[float | None, setting_option(
    "connect_timeout", "Seconds to connect to a host.")]
ReadTimeoutOpt = Annotated[float | None, setting_option(
    "read_timeout", "Seconds to wait for the next bytes of a response.")]
TotalTimeoutOpt = Annotated[float | None, setting_option(
    "total_timeout", "Seconds for a whole request, body included.")]
MetricsPortOpt = Annotated[int | None, setting_option(
    "metrics_port", "Serve Prometheus /metrics on this port (process i of N: port + i); "
                    "0 = off.")]
MetricsTokenOpt = Annotated[str | None, setting_option(
    "metrics_token", "Bearer token every scrape of /metrics must send; required when "
                     "metrics_host is not loopback (the environment keeps it out of ps).")]
ExtractOpt = Annotated[str | None, setting_option(
    "extract", "Extraction hook run on every page, module.path:function; its result is the "
               "record's data.", metavar="MODULE:FUNCTION")]
ExtractInThreadOpt = Annotated[bool | None, bool_setting_option(
    "extract_in_thread", "Run a sync extraction hook in a thread pool.")]
WarcDirOpt = Annotated[str | None, setting_option(
    "warc_dir", "Write every response and its request as WARC/1.1 into this directory.",
    "--warc", metavar="DIR")]
CaFileOpt = Annotated[str | None, setting_option(
    "ca_file", "PEM bundle of CA certificates trusted besides the system's.",
    metavar="PEM")]
ShardsOpt = Annotated[int | None, setting_option(
    "shards", "Shards, for a new crawl (on a cluster: 4 a master).")]
