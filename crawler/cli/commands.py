"""The ``crawl`` commands, each module imported when one of its commands runs.

``crawl --help`` lists every command from ``COMMANDS`` (its module and the
first paragraph of its help) without importing one, and ``crawl status``
imports ``crawler.cli.crawl`` alone: not the benchmark, the dashboard, the
live view (rich) or another command's module. Each module adds its commands
with ``register(app)``, and only the command looked up is built: typer's
work grows with the options (``worker`` has forty).
tests/test_cli_help.py checks that the listing is the commands' own help.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping

import typer
import typer.main
from typer._click.core import Command  # typer vendors click
from typer.core import TyperCommand
from typer.main import get_command_name

COMMANDS: dict[str, tuple[str, str]] = {
    "seed": ("crawler.cli.crawl",
             "Add URLs to the frontier. Bad lines are reported by number; the rest are seeded."),
    "worker": ("crawler.cli.crawl",
               "Crawl until nothing is queued or leased anywhere (or forever)."),
    "export": ("crawler.cli.crawl",
               "Write every result to FILE, in the format its extension names (read-only, "
               "unless --drain)."),
    "status": ("crawler.cli.crawl",
               "Print the crawl's counters, rates, workers, results and busiest hosts as JSON."),
    "list": ("crawler.cli.crawls",
             "List the crawls on this Redis: name, URLs queued, leased, done, errors, workers, "
             "age and state (running, paused, stopped or finished)."),
    "delete": ("crawler.cli.crawls",
               "Delete a crawl: its queues, seen URLs, results, workers and layout, on every "
               "shard."),
    "pause": ("crawler.cli.control",
              "Stop claiming on every worker; fetches in flight finish. `crawl resume` goes on."),
    "resume": ("crawler.cli.control", "Let a paused (or stopped) crawl claim again."),
    "stop": ("crawler.cli.control",
             "Stop the crawl on every node: workers finish their fetches and exit."),
    "metrics": ("crawler.cli.watch",
                "Serve the crawl-wide gauges (queued, leased, done, shards, Redis memory) for "
                "Prometheus."),
    "recrawl": ("crawler.cli.recrawl",
                "Queue done URLs again for a revisit (the crawl needs recrawl = true)."),
    "retry": ("crawler.cli.retry",
              "Queue again the done URLs whose last result was one of these errors."),
    "dashboard": ("crawler.cli.dashboard",
                  "Serve a live web page of the crawl (counters, pages/s, workers, hosts, "
                  "results) with pause, resume and stop buttons."),
    "config": ("crawler.cli.control", "The crawl's own settings, stored with it in Redis."),
    "server": ("crawler.cli.server", "The embedded Valkey server."),
    "demo-site": ("crawler.cli.server",
                  "A generated site on 127.0.0.2-4:8765 to try the crawler on."),
    "bench": ("crawler.bench.cli",
              "Benchmark on a generated local site, beside a minimal-loop ceiling (see "
              "bench/README.md)."),
}
"""Command name: (the module whose ``register`` adds it, its help's first paragraph).
In the order ``crawl --help`` lists them."""


class LazyCommands(MutableMapping[str, Command]):
    """The root group's commands: names known up front, each module imported on first use.

    While ``listing`` is set (``crawl --help``), a command not yet imported is
    a stand-in carrying its name and summary, which is all the listing shows.
    ``on_load`` is called once on every command made.
    """

    def __init__(self, on_load: Callable[[Command], None]) -> None:
        self.listing = False
        self._on_load = on_load
        self._made: dict[str, Command] = {}
        self._added: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name in self._added:
            return self._added[name]
        if name not in COMMANDS:
            raise KeyError(name)
        if name not in self._made:
            if self.listing:
                return TyperCommand(name, help=COMMANDS[name][1])
            self._made[name] = self.make(name)
            self._on_load(self._made[name])
        return self._made[name]

    @staticmethod
    def make(name: str) -> Command:
        """The command ``name``, made alone: its module's other commands are not built."""
        commands = typer.Typer()
        importlib.import_module(COMMANDS[name][0]).register(commands)
        commands.registered_commands = [
            info for info in commands.registered_commands
            if (info.name or get_command_name(getattr(info.callback, "__name__", ""))) == name]
        commands.registered_groups = [info for info in commands.registered_groups
                                      if info.name == name]
        return typer.main.get_group(commands).commands[name]

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self._added

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._added if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(name not in COMMANDS for name in self._added)

    def __setitem__(self, name: str, command: Command) -> None:
        self._added[name] = command

    def __delitem__(self, name: str) -> None:
        del self._added[name]  # a command of the table stays
