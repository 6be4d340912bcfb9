"""Command-line options made from the settings model, and help for options on the wrong side.

A flag that sets a setting is declared with ``setting_option``: its help
ends with the setting's default and name, read from ``crawler.config``'s
model, so ``crawl worker --help`` cannot drift from ``config/default.toml``.
The flag's own default stays None ("not given"), so a file or an
environment variable is not overridden by a default nobody typed.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer._click.core import Context as ClickContext  # typer vendors click

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


# -- logging ------------------------------------------------------------------------------

LOG_LEVELS = ("debug", "info", "warning", "error")
LogLevelOpt = Annotated[str | None, typer.Option(
    "--log-level", help=escape("debug, info, warning or error. [default: warning]"),
    show_default=False)]
VerboseOpt = Annotated[int, typer.Option(
    "--verbose", "-v", count=True,
    help=escape("More log lines: -v info, -vv debug. [default: warnings and errors only]"),
    show_default=False)]


def log_level(level: str | None, verbose: int) -> int | None:
    """The logging level asked for; None if neither option was given."""
    if level is not None:
        if level.lower() not in LOG_LEVELS:
            from crawler.errors import CrawlError

            raise CrawlError(f"--log-level: expected {', '.join(LOG_LEVELS[:-1])} or "
                             f"{LOG_LEVELS[-1]}, got {level!r}")
        return int(getattr(logging, level.upper()))
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    return None


# -- options on the wrong side of the command ----------------------------------------------


def quiet_flag_metavars(command: Any) -> None:
    """No ``<bool>`` after a flag in help: a flag takes no value (typer shows one anyway)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
    help_option = command.get_help_option(ClickContext(command))  # made once, then cached
    if help_option is not None:
        help_option.metavar = ""
    for sub in (getattr(command, "commands", None) or {}).values():
        quiet_flag_metavars(sub)


def takes_value(command: Any, option: str) -> bool | None:
    """Whether ``option`` of ``command`` takes a value; None if the command has no such option."""
    for param in getattr(command, "params", ()):
        if option in (*param.opts, *getattr(param, "secondary_opts", ())):
            return not (getattr(param, "is_flag", False) or getattr(param, "count", False))
    return None


def misplaced_before(group: Any, ctx: ClickContext, args: list[str], option: str) -> str | None:
    """For ``crawl --delay 1 worker``: where ``--delay`` goes, as a corrected command line."""
    name = option.split("=", 1)[0]
    root_opts = {o: takes_value(group, o) for p in group.params for o in p.opts}
    i, before, moved = 0, [], []
    while i < len(args):
        arg = args[i]
        if root_opts.get(arg):
            before += args[i:i + 2]
            i += 2
        elif arg.split("=", 1)[0] in root_opts or re.fullmatch(r"-v+", arg):
            before.append(arg)
            i += 1
        elif arg.startswith("-"):
            moved.append(arg)
            i += 1
        elif arg in group.commands:
            command = group.commands[arg]
            if takes_value(command, name) is None:
                return None
            fixed = [*before, arg, *moved, *args[i + 1:]]
            return (f"{name} is an option of 'crawl {arg}': put it after the command, as in "
                    f"crawl {' '.join(fixed)}")
        else:  # the value of an option that is not the root's
            moved.append(arg)
            i += 1
    return None


def misplaced_after(group: Any, command_name: str, option: str) -> str | None:
    """For ``crawl worker -v``: an option of ``crawl`` itself goes before the command."""
    name = option.split("=", 1)[0]
    if any(name in p.opts for p in group.params):
        return (f"{name} is an option of crawl itself: put it before the command, as in "
                f"crawl {name} ... {command_name} ...")
    return None
