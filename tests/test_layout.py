"""The package layout: imports run one way, and start-up stays light.

Imports are read from the source with ``ast`` (those under ``TYPE_CHECKING``
and inside functions included: a lazy import is still a dependency), then
folded to packages. Each package may import only the ones below it in
``LAYERS``; the root keeps only the shared helpers named in ``ROOT``.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "crawler"

LAYERS = [
    "crawler",            # the root: errors, aio, urls
    "crawler.config",
    "crawler.store",
    "crawler.frontier",
    "crawler.net",
    "crawler.pages",
    "crawler.discovery",
    "crawler.results",
    "crawler.observe",
    "crawler.worker",
    "crawler.dashboard",
    "crawler.bench",
    "crawler.cli",
]
"""Bottom first: a package imports only packages above it in this list. The
facade (``crawler/__init__``, whose names are imported on first use) and the
entry point (``crawler/__main__``) sit on top of them all and are not listed."""

ON_TOP = {"crawler", "crawler.__main__"}

ROOT = {"__init__", "__main__", "errors", "aio", "urls"}
"""The modules allowed at the root of ``crawler/``."""

HEAVY = ["aiohttp", "redis", "pydantic", "pyarrow", "bs4", "prometheus_client", "warcio",
         "lxml", "playwright", "rich", "typer", "uvloop", "asyncio", "ssl"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _import_nodes(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """A module's import statements, parsed once for every test here."""
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Import | ast.ImportFrom)]


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(path):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # "from crawler.cli import crawl" imports the module crawler.cli.crawl;
            # the package's __init__ counts only when a name is taken from it.
            found.update(f"{module}.{alias.name}" for alias in node.names)
            found.add(module + "#names")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("crawler")}


@functools.cache
def _modules() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        if name in ON_TOP:
            continue
        found = _imports(path)
        targets = {m for m in found if m in paths}
        # A package named in "from pkg import x" where x is no module of it.
        targets |= {m[:-len("#names")] for m in found if m.endswith("#names")
                    and any(f"{m[:-len('#names')]}.{n}" not in paths
                            for n in _names_from(path, m[:-len("#names")]))}
        graph[name] = targets - {name}
    return graph


def _names_from(path: Path, module: str) -> list[str]:
    """The names ``path`` takes from ``module`` with ``from module import ...``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: list[str] = []
    for node in _import_nodes(path):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            if base == module:
                names.extend(alias.name for alias in node.names)
    return names


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "crawler"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in _modules().items():
        for target in targets:
            a, b = _package_of(module), _package_of(target)
            if a != b:
                graph[a].add(b)
    return graph


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert _cycles(_modules()) == []


def test_no_circle_between_packages() -> None:
    assert _cycles(_package_graph()) == []


def test_packages_import_only_downward() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(f"{a} -> {b}" for a, targets in _package_graph().items() for b in targets
                    if rank[b] >= rank[a])
    assert upward == []


def test_every_package_has_a_layer() -> None:
    packages = {"crawler." + p.name for p in PACKAGE.iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS) - {"crawler"}
    assert set(_package_graph()) <= set(LAYERS)


def test_the_root_keeps_only_the_shared_helpers() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == ROOT


def test_the_circle_check_finds_a_circle() -> None:
    """Negative control: the check above is not vacuous."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _loaded_by(code: str) -> list[str]:
    """The heavy libraries in sys.modules once ``code`` has run (SystemExit included)."""
    heavy = f"(m for m in {HEAVY!r} if m in sys.modules)"
    probe = f"import atexit, sys\natexit.register(lambda: print('LOADED', *{heavy}))\n{code}"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60).stdout
    return out[out.rindex("LOADED"):].split()[1:]


def test_importing_the_package_loads_no_heavy_library() -> None:
    assert _loaded_by("import crawler") == []


def test_the_package_names_load_on_first_use() -> None:
    assert "pydantic" in _loaded_by("import crawler; crawler.Settings")


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["worker", "--help"],
                                  ["bench", "--help"]])
def test_help_loads_no_network_or_parsing_library(argv: list[str]) -> None:
    """``crawl --help`` needs typer, rich and the settings model (the defaults it
    shows), and nothing that fetches, talks to Redis or parses."""
    code = f"import sys; sys.argv = ['crawl', *{argv!r}]\nfrom crawler.cli import main\nmain()"
    assert set(_loaded_by(code)) <= {"typer", "rich", "pydantic"}


# -- what crawl --help and crawl status import (start-up: README, "Start-up") --------------

HELP_LOADS = {"typer", "rich"}
"""The heavy libraries ``crawl --help`` needs: typer, which renders help with rich."""

STATUS_LOADS = {"typer", "pydantic", "redis", "asyncio", "ssl", "uvloop"}
"""The heavy libraries ``crawl status`` needs: the settings (pydantic) and the store
(redis-py, which imports asyncio and ssl), on uvloop. No rich: it prints JSON."""


def _run_loading(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``crawl ARGV`` run in a fresh interpreter, and every module it imported."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('MODULES', *sorted(sys.modules)))\n"
            f"sys.argv = ['crawl', *{argv!r}]\nfrom crawler.cli import main\nmain()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    return done, set(done.stdout[done.stdout.rindex("MODULES"):].split()[1:])


def _heavy(modules: set[str]) -> set[str]:
    return {name for name in HEAVY if name in modules}


def _crawler_packages(modules: set[str]) -> set[str]:
    return {_package_of(m) for m in modules if m == "crawler" or m.startswith("crawler.")}


def test_crawl_help_imports_no_command() -> None:
    """The listing is made without a command's module: no settings model, no Redis."""
    done, modules = _run_loading(["--help"])
    assert done.returncode == 0 and "status" in done.stdout
    assert _heavy(modules) <= HELP_LOADS
    assert _crawler_packages(modules) == {"crawler", "crawler.cli"}
    assert "crawler.cli.crawl" not in modules and "crawler.bench.cli" not in modules


def test_crawl_status_imports_only_what_it_reads_with(clean_redis: str) -> None:
    from fault_helpers import seed_sync

    seed_sync(clean_redis, "startup", ["http://127.0.0.2:9/"])
    done, modules = _run_loading(["status", "--redis", clean_redis, "--crawl", "startup"])
    assert done.returncode == 0, done.stderr
    assert '"queued": 1' in done.stdout  # it did read the crawl
    assert _heavy(modules) <= STATUS_LOADS
    assert _crawler_packages(modules) <= {"crawler", "crawler.config", "crawler.store",
                                          "crawler.frontier", "crawler.results",
                                          "crawler.observe", "crawler.cli"}
    other_commands = {m for m in modules if m.startswith("crawler.cli.")} - {
        "crawler.cli.app", "crawler.cli.commands", "crawler.cli.common", "crawler.cli.crawl",
        "crawler.cli.markup", "crawler.cli.options", "crawler.cli.placement",
        "crawler.cli.usage"}
    assert other_commands == set()
