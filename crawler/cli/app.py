"""The ``crawl`` typer application: its callback, and its commands (crawler.cli.commands).

This module, and the small ones it imports, are all that ``crawl --help``
imports of the crawler: a command's module, and what it needs (pydantic for
the settings, redis, asyncio), is imported when the command is looked up.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer._click.exceptions import (
    ClickException,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)
from typer._click.formatting import HelpFormatter
from typer.core import TyperGroup

from crawler.cli.commands import LazyCommands
from crawler.cli.common import (
    Common,
    ConfigOpt,
    CrawlOpt,
    HomeOpt,
    LogLevelOpt,
    RedisOpt,
    VerboseOpt,
    log_level,
    setup_logging,
)
from crawler.cli.markup import narrow_terminal, plain_help, unwrap, unwrap_command_help
from crawler.cli.placement import misplaced_after, misplaced_before, quiet_flag_metavars
from crawler.cli.usage import one_line
from crawler.errors import CrawlError


def _tidy_help(command: Any) -> None:
    """A made command's help as it should print: no ``<bool>`` after a flag, each
    paragraph one line for rich to wrap (crawler.cli.markup.unwrap), and on a
    narrow terminal click's plain layout (crawler.cli.markup.plain_help)."""
    quiet_flag_metavars(command)
    unwrap_command_help(command)
    if narrow_terminal():
        plain_help(command)


class CrawlGroup(TyperGroup):
    """The root command group: every command's CrawlError becomes one line and exit 2.

    It also says where an option given on the wrong side of the command goes.
    Its commands are imported when looked up (crawler.cli.commands).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        quiet_flag_metavars(self)  # before the commands: it would import them all
        self.lazy_commands = LazyCommands(on_load=_tidy_help)
        self.commands = self.lazy_commands

    def format_help(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        """The help lists the commands by name and summary, none of them imported;
        plainly on a narrow terminal, as each command's own help is."""
        if narrow_terminal():
            plain_help(self, subcommands=False)
        self.lazy_commands.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.lazy_commands.listing = False

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        """Usage errors as one ``crawl: error:`` line too, not typer's boxed panel."""
        prog_name = prog_name or "crawl"  # python -m crawler too
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:  # a bare command group: its help
            exc.show()
            code = exc.exit_code
        except UsageError as exc:
            typer.echo(f"crawl: error: {one_line(exc)}", err=True)
            code = exc.exit_code
        except ClickException as exc:
            typer.echo(f"crawl: error: {exc.format_message()}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes the list it is given
        ctx.meta["crawl.args"] = given  # for a misplaced option's corrected command line
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as exc:  # crawl --delay 1 worker
            hint = misplaced_before(self, ctx, given, exc.option_name)
            if hint is None:
                raise
            raise UsageError(hint, ctx) from None

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except NoSuchOption as exc:  # crawl seed --crawl-ish-root-option
            # The root's command (`config`), not the innermost one (`set`): crawl's own
            # options go before it.
            command = ctx.invoked_subcommand or (
                exc.ctx.info_name if exc.ctx is not None else "COMMAND")
            hint = misplaced_after(self, str(command), exc.option_name,
                                   ctx.meta.get("crawl.args"))
            if hint is None:
                raise
            raise UsageError(hint, exc.ctx) from None
        except UsageError as exc:  # `crawl worker --delay`: the parser gives no context
            if exc.ctx is None and ctx.invoked_subcommand:
                exc.where = f"{ctx.command_path} {ctx.invoked_subcommand}"  # type: ignore[attr-defined]
            raise
        except CrawlError as exc:
            typer.echo(f"crawl: error: {exc}", err=True)
            raise typer.Exit(2) from None


HELP = """An asyncio-native, distributed web crawler on a shared Redis frontier.

A crawl: crawl seed urls.txt, then crawl worker on every node (it exits when
the crawl is done; see crawl worker --help for scope, politeness and timeouts),
then crawl export results.jsonl. With no --redis, commands share an embedded
Valkey in ./.crawl. crawl list shows the crawls there are.
"""

app = typer.Typer(cls=CrawlGroup, add_completion=False, no_args_is_help=True, help=unwrap(HELP))


def _print_version(given: bool) -> None:
    if given:
        from crawler import __version__

        typer.echo(f"crawl {__version__}")
        raise typer.Exit(0)


VersionOpt = Annotated[bool, typer.Option(
    "--version", help="Print the crawler's version and exit.", is_eager=True,
    callback=_print_version)]


@app.callback()
def common_options(ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
                   config: ConfigOpt = None, home: HomeOpt = None,
                   log_level_name: LogLevelOpt = None, verbose: VerboseOpt = 0,
                   version: VersionOpt = False) -> None:
    """Options before the command apply to it, as if given after it."""
    setup_logging(log_level(log_level_name, verbose))
    ctx.obj = Common(redis=redis, crawl=crawl, config=config, home=home)

