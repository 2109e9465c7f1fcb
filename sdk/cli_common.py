"""What every `slsdk` command shares: the consoles, the one-line error, and the rule for errors.

The rule: an ``SlsdkError`` (bad input the user can fix) or an ``OSError`` (a bad path, a full disk; the file is
named) prints as one ``error: ...`` line and exits 1. Anything else is a bug in slsdk: it keeps its traceback and
the CLI adds one line asking to report it (``report_bug``). Imported by ``slsdk.cli`` and ``slsdk.cli_import``.
"""
from __future__ import annotations

import shlex
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from enum import Enum
from importlib import metadata
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from slsdk.version import __version__
from slsdk.errors import SlsdkError
from slsdk.terminal import plain

__all__ = ["console", "err_console", "choice_value", "shown_path", "print_error", "fail", "error_line", "run_stage",
           "issue_tracker", "report_bug", "USER_ERRORS", "flag", "on_interrupt", "run_kept", "again_command",
           "INTERRUPTED_EXIT", "version_line", "Command", "Group", "working"]

INTERRUPTED_EXIT = 130   # 128 + SIGINT, as shells report a command stopped by Ctrl-C

console = Console(soft_wrap=True)   # paths and messages are never broken across lines
err_console = Console(stderr=True, soft_wrap=True)   # an error is one line, however long

# the errors a user can fix: printed as one line; every other exception is a bug and keeps its traceback
USER_ERRORS = (SlsdkError, OSError)


def choice_value(x):
    """The plain value of an Enum choice (or ``x`` itself)."""
    return x.value if isinstance(x, Enum) else x


def shown_path(path) -> str:
    """``path`` as the user would type it: relative to the working folder when it lies inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def print_error(message: str) -> None:
    """Print ``error: MESSAGE`` as one plain line on stderr (paths and names from files cannot style the terminal)."""
    err_console.print(f"[bold red]error:[/] {plain(message)}", emoji=False, highlight=False)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: MESSAGE`` (``print_error``) and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def error_line(e: BaseException) -> str:
    """The one-line message of a user error: an OSError names its file and its kind (``FileNotFoundError: ...``)."""
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    if isinstance(e, OSError) and not isinstance(e, SlsdkError) and e.filename and str(e.filename) not in msg:
        msg = f"{e.filename}: {msg}"
    name = "" if isinstance(e, SlsdkError) else f"{type(e).__name__}: "
    return f"{name}{msg}".replace("\n", " ")


def run_stage(fn, *args, **kwargs):
    """Call a stage; a user error (``USER_ERRORS``) becomes one clear line and exit code 1, a bug propagates."""
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as e:
        fail(error_line(e))


def issue_tracker() -> str:
    """Where to report a bug: the installed package's issue URL (its metadata), else a plain description."""
    try:
        urls = metadata.metadata("slsdk").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if any(w in label.lower() for w in ("issue", "bug", "tracker")):
            return url.strip()
    return "the slsdk issue tracker"


def report_bug(exc: BaseException) -> None:
    """Print ``exc``'s traceback and one line asking to report it (an error that is not the user's)."""
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    err_console.print(f"this is a bug in slsdk {__version__}: please report it with the traceback above at "
                      f"{issue_tracker()}", emoji=False, highlight=False, markup=False)


def version_line() -> str:
    """What `slsdk --version` prints: ``slsdk X.Y.Z``."""
    return f"slsdk {__version__}"


def flag(name: str, help: str = "", default: bool = False):
    """A boolean option shown as ``--NAME/--no-NAME`` (no value metavar in ``--help``)."""
    return typer.Option(default, f"--{name}/--no-{name}", help=help, metavar="")


def _help_without_metavar(option):
    """``--help`` shown as the flag it is (typer would add a ``<bool>`` metavar)."""
    if option is not None:
        option.metavar = ""
    return option


class Command(typer.core.TyperCommand):
    """An `slsdk` command: its ``--help`` line without a value metavar."""

    def get_help_option(self, ctx):
        return _help_without_metavar(super().get_help_option(ctx))


class Group(typer.core.TyperGroup):
    """An `slsdk` command group: its ``--help`` line without a value metavar."""

    def get_help_option(self, ctx):
        return _help_without_metavar(super().get_help_option(ctx))


@contextmanager
def working(what: str):
    """A spinner with the time elapsed while a step without its own progress bar runs (on a terminal only;
    erased when the step ends)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        bar.add_task(what, total=None)
        yield


def again_command(resume: bool) -> str:
    """The command line that was typed, to run again: with ``--resume`` (and without ``--overwrite``) when
    ``resume``, else as it was."""
    args = list(sys.argv[1:])
    if resume:
        args = [a for a in args if a not in ("--overwrite", "--no-overwrite", "--resume", "--no-resume")]
        args.append("--resume")
    return "slsdk " + shlex.join(args)


def run_kept(out) -> str:
    """What a stopped `slsdk train`/`distill` left in its run folder ``out`` and how to continue it."""
    from slsdk.train.run_folder import checkpoint_epoch   # torch (the command has loaded it already)

    last = Path(out) / "last.pt"
    epoch = checkpoint_epoch(last) if last.is_file() else None
    if epoch is None:
        return (f"no epoch finished, so nothing was kept in {shown_path(out)}; start again with "
                f"`{again_command(resume=False)}`")
    return (f"{shown_path(out)} keeps the checkpoint of epoch {epoch} ({shown_path(last)}); continue with "
            f"`{again_command(resume=True)}`")


@contextmanager
def on_interrupt(kept: Callable[[], str]):
    """Ctrl-C inside the block: print ``interrupted: <kept()>`` (what was kept, how to go on), exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        err_console.print(f"interrupted: {plain(kept())}", emoji=False, highlight=False, markup=False)
        raise typer.Exit(INTERRUPTED_EXIT) from None
