"""The load test reports the studio keeps, one folder each under `<data_dir>/loadtests/<id>/` (report.json,
summary.md, locustfile.py and the plots, as the runner writes them): ids allocated, reports listed and loaded.

An id is allocated by creating its folder, so two tests never share one. Ids and file names that come from a
user (or from a report.json someone edited) are checked, so that nothing outside the loadtests folder is read.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import AppError, NotFound

REPORT = "report.json"
ID_PATTERN = re.compile(r"^[0-9]{4,9}$")  # "0001", "0002"…: folders sort as they were made
# What the studio reads of a report.json: a file without them is not a report it can show.
REQUIRED = {"slug": str, "requests": int, "successes": int, "failures": dict, "total_s": dict, "queue_wait_s": dict,
            "execution_s": dict, "runs_per_min": (int, float, type(None)), "series": dict, "options": dict}


class ReportNotFound(NotFound):
    """No report by that id (never made, deleted, or a test that was stopped before it wrote one)."""


class ReportUnreadable(AppError):
    """A report folder whose report.json cannot be read or is not a report."""


@dataclass(frozen=True)
class Report:
    id: str
    folder: Path
    data: dict[str, Any]

    def file(self, name: str | None) -> Path | None:
        """A file of this report by the name report.json gives it, or None when absent or outside its folder."""
        if not isinstance(name, str) or not name or Path(name).name != name:
            return None
        path = self.folder / name
        inside = path.resolve().is_relative_to(self.folder.resolve())  # a link out of the folder is not followed
        return path if inside and path.is_file() else None

    @property
    def plots(self) -> list[Path]:
        names = self.data.get("plots")
        found = (self.file(n) for n in names) if isinstance(names, list) else ()
        return [p for p in found if p is not None and p.suffix.lower() == ".png"]

    @property
    def locustfile(self) -> Path | None:
        return self.file(self.data.get("locustfile", "locustfile.py"))

    @property
    def report_json(self) -> Path:
        return self.folder / REPORT

    @property
    def summary(self) -> str:
        path = self.file(self.data.get("summary", "summary.md"))
        return path.read_text(errors="replace") if path else ""


@dataclass(frozen=True)
class Listed:
    """A line of the list of reports: the report when it reads, else why it does not."""

    id: str
    report: Report | None
    problem: str | None = None


class ReportStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def allocate(self) -> tuple[str, Path]:
        """A new id and its (new, empty) folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        number = max((int(p.name) for p in self._folders()), default=0) + 1
        while True:
            report_id = f"{number:04d}"
            folder = self.root / report_id
            try:
                folder.mkdir()
            except FileExistsError:  # made meanwhile by another test: take the next
                number += 1
                continue
            return report_id, folder

    def list(self) -> list[Listed]:
        """Every report folder, newest first; one that does not read says why instead of hiding the others."""
        listed = []
        for folder in sorted(self._folders(), key=lambda p: int(p.name), reverse=True):
            try:
                listed.append(Listed(folder.name, self.load(folder.name)))
            except (ReportNotFound, ReportUnreadable) as exc:
                listed.append(Listed(folder.name, None, str(exc)))
        return listed

    def load(self, report_id: str) -> Report:
        folder = self._folder(report_id)
        path = folder / REPORT
        if not path.is_file():
            raise ReportNotFound(f"Load test {report_id} has no report: it was stopped or failed before it wrote "
                                 f"{REPORT}. Run it again.")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ReportUnreadable(f"The report of load test {report_id} cannot be read ({exc}): run the test again "
                                   f"or delete {folder}.") from exc
        if not isinstance(data, dict):
            raise ReportUnreadable(f"The report of load test {report_id} is not a JSON object: run the test again "
                                   f"or delete {folder}.")
        wrong = [key for key, kind in REQUIRED.items() if not isinstance(data.get(key), kind)
                 or isinstance(data.get(key), bool)]
        if wrong:
            raise ReportUnreadable(f"The report of load test {report_id} lacks or mistypes {', '.join(wrong)}: it "
                                   f"was not written by this version's load test. Run it again or delete {folder}.")
        return Report(report_id, folder, data)

    def discard(self, report_id: str) -> None:
        """Remove a report's folder (a test stopped before it wrote its report leaves nothing to keep)."""
        shutil.rmtree(self._folder(report_id), ignore_errors=True)

    def _folder(self, report_id: str) -> Path:
        if not isinstance(report_id, str) or not ID_PATTERN.match(report_id):
            raise ReportNotFound(f"{str(report_id)[:40]!r} is not a load test id (4 to 9 digits, e.g. 0001): choose "
                                 "one from the list of reports.")
        folder = self.root / report_id
        if not folder.is_dir():
            raise ReportNotFound(f"No load test {report_id} in {self.root}: choose one from the list of reports.")
        return folder

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and ID_PATTERN.match(p.name)]
