"""What a training run prints: the console (stderr; quiet on DDP ranks other than 0) and the progress bars."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def make_console(enabled: bool) -> Console:
    """A stderr console that prints only when ``enabled`` (the main process)."""
    return Console(stderr=True, quiet=not enabled, highlight=False)


def progress_bar(console: Console, enabled: bool) -> Progress:
    """Progress bars (steps done / total, times, an info field) on ``console``; inert unless ``enabled``."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                    disable=not enabled, transient=False)


__all__ = ["make_console", "progress_bar"]
