"""pip's install as a progress bar rather than a scrolling log.

The engine's virtualenv has pip 23.2.1, which prints no machine-readable progress (`--progress-bar raw` came later).
So a dry run (`--dry-run --quiet --report -`) counts the packages the install will add or change, and the
install's own lines move the count: each package's `Collecting` line, then `Installing collected packages`, then
`Successfully installed`. The messages are plain text for any sink (a log, GET /api/engine); a console sink draws
them as one redrawn line on a terminal (ConsoleProgress).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

Progress = Callable[[str], None]
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._]|-(?=[A-Za-z]))*")  # a project name (a file name's up to "-1.0")
_BAR_WIDTH = 24


class BarMessage(str):
    """A progress message that moves a bar: `done` of `total` steps (None: the total is unknown). Its text is the
    plain line shown wherever no bar can be drawn."""

    done: int
    total: int | None
    step: str

    def __new__(cls, step: str, done: int, total: int | None) -> BarMessage:
        counted = f"{done}/{total}" if total else f"{done}"
        message = super().__new__(cls, f"    [{counted}] {step}")
        message.step, message.done, message.total = step, done, total
        return message

    def bar_line(self, width: int) -> str:
        """`[#####-----]  42% step`, cut to `width` characters."""
        if self.total:
            filled = min(_BAR_WIDTH, _BAR_WIDTH * self.done // self.total)
            line = f"    [{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {100 * self.done // self.total:3d}% {self.step}"
        else:
            line = f"    [{self.done}] {self.step}"
        return line[: max(width - 1, 20)]


def planned_packages(python: Path, args: Sequence[str]) -> int | None:
    """How many packages `pip install args` would add or change (a dry run); None when the dry run fails (the real
    install then reports why)."""
    done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--dry-run",
                           "--quiet", "--report", "-", *args], capture_output=True, text=True,
                          env={**os.environ, "PIP_NO_INPUT": "1"})
    if done.returncode != 0:
        return None
    try:
        return len(json.loads(done.stdout)["install"])
    except (ValueError, KeyError, TypeError):
        return None


class PipLines:
    """Turns an install's output lines into bar messages: a step per package collected (a package pip collects
    twice while it resolves counts once), the unpacking, then done. The last step is the install itself, which
    takes minutes for torch."""

    def __init__(self, planned: int | None, progress: Progress) -> None:
        self.planned = planned
        self.total = planned + 1 if planned is not None else None
        self.progress = progress
        self.collected: set[str] = set()

    def feed(self, line: str) -> None:
        text = line.strip()
        if text.startswith(("Collecting ", "Processing ")):  # from an index; from a local file or folder
            verb, what = text.split(" ", 1)
            what = what.split(" (from")[0]
            name = _NAME.match(what if verb == "Collecting" else Path(what).name)
            if name:
                self.collected.add(name[0].lower().replace("_", "-"))
            self._emit(f"{verb} {what if verb == 'Collecting' else Path(what).name}")
        elif text.startswith(("Downloading ", "Using cached ")):
            self._emit(text)
        elif text.startswith("Installing collected packages"):
            count = self.planned if self.planned is not None else len(self.collected)
            self._emit(f"Installing {count} packages (unpacking; torch takes a few minutes)")
        elif text.startswith("Successfully installed"):
            count = len(text.split()) - 2
            self.progress(BarMessage(f"Installed {count} packages", self.total or count, self.total or count))
        elif text.startswith("ERROR"):
            self.progress(f"    {text}")

    def _emit(self, step: str) -> None:
        done = len(self.collected)
        if self.planned is not None:
            done = min(done, self.planned)
        self.progress(BarMessage(step, done, self.total))


class ConsoleProgress:
    """A progress sink for a console: on a terminal, bar messages redraw one line in place; elsewhere (a log file,
    a pipe) every message is a plain line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._drawn = False  # a bar line is on screen without its newline

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout  # sys.stdout as it is now, as print does

    def __call__(self, message: str) -> None:
        if isinstance(message, BarMessage) and self._is_tty():
            width = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + message.bar_line(width) + "\x1b[K")
            self._drawn = True
        else:
            if self._drawn:
                self.stream.write("\n")
                self._drawn = False
            self.stream.write(f"{message}\n")
        self.stream.flush()

    def _is_tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())
