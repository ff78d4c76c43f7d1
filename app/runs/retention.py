"""Retention: `--keep-outputs DAYS` and `--keep-inputs DAYS` remove the output files, and the uploaded inputs, of
runs created longer ago than that, and say so in each run's record (`runs.files_removed`); expired Comfy API v2
assets go too. A sweep runs at start and then periodically, in a worker thread; with nothing to do it is a few
indexed queries.

A queued or running run is never touched (only ended runs are candidates). An uploaded blob is shared by content
(app.runs.stored, app.assets.store): it is removed only when no newer run's inputs and no live asset use it, and not
while it was stored again moments ago (a submission in flight whose run is not recorded yet)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.assets.store import AssetStore, blob_path
from app.runs.storage import remove_file, resolve_inside
from app.settings import Settings
from db import crud_assets, crud_retention, crud_runs
from db.crud_retention import INPUTS, OUTPUTS
from db.models import Run, utcnow

log = logging.getLogger(__name__)

MAX_PERIOD_S = 3600.0  # a sweep at least hourly
MIN_PERIOD_S = 1.0
BLOB_GRACE_S = 600.0  # a blob stored again this recently may belong to a run being recorded right now


@dataclass
class SweepCounts:
    output_files: int = 0
    output_runs: int = 0
    input_files: int = 0
    input_runs: int = 0
    expired_assets: int = 0

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def line(self) -> str:
        return (f"retention sweep: removed {self.output_files} output files of {self.output_runs} runs, "
                f"{self.input_files} uploaded input files of {self.input_runs} runs, "
                f"{self.expired_assets} expired assets")


class Retention:
    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], assets: AssetStore) -> None:
        self.settings, self.sessions, self.assets = settings, sessions, assets
        self._held: set[str] | None = None  # the blobs runs still keep, read once a sweep when needed

    def period_s(self) -> float:
        """How often to sweep: a tenth of the shortest retention, at most hourly."""
        days = [d for d in (self.settings.keep_outputs_days, self.settings.keep_inputs_days) if d is not None]
        return max(MIN_PERIOD_S, min([MAX_PERIOD_S, *(d * 86400 / 10 for d in days)]))

    async def run(self) -> None:
        """Sweep now, then every period, until cancelled; a failed sweep is logged and tried again next period."""
        while True:
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:
                log.exception("the retention sweep failed; it runs again in %.0f s", self.period_s())
            await asyncio.sleep(self.period_s())

    def sweep(self, now: datetime | None = None) -> SweepCounts:
        now = now or utcnow()
        counts = SweepCounts()
        self._held = None
        with self.sessions() as session:
            if self.settings.keep_outputs_days is not None:
                self._outputs(session, now - timedelta(days=self.settings.keep_outputs_days), now, counts)
            if self.settings.keep_inputs_days is not None:
                self._inputs(session, now - timedelta(days=self.settings.keep_inputs_days), now, counts)
            self._expired(session, now, counts)
        (log.warning if counts.any() else log.info)(counts.line())
        return counts

    def _outputs(self, session: Session, before: datetime, now: datetime, counts: SweepCounts) -> None:
        while runs := crud_retention.ended_runs_before(session, what=OUTPUTS, before=before):
            for run in runs:
                for artifact in crud_runs.artifacts_of(session, run_id=run.id):
                    counts.output_files += self._remove(self.settings.data_dir, artifact.path)
                _remove_empty_dir(self.settings.outputs_dir / run.id)
            crud_retention.mark_removed(session, run_ids=[r.id for r in runs], what=OUTPUTS, when=now)
            counts.output_runs += len(runs)

    def _inputs(self, session: Session, before: datetime, now: datetime, counts: SweepCounts) -> None:
        while runs := crud_retention.ended_runs_before(session, what=INPUTS, before=before):
            for run in runs:
                counts.input_files += self._remove_inputs(session, run, before)
            crud_retention.mark_removed(session, run_ids=[r.id for r in runs], what=INPUTS, when=now)
            counts.input_runs += len(runs)

    def _remove_inputs(self, session: Session, run: Run, before: datetime) -> int:
        removed = 0
        for value in (run.inputs or {}).values():
            if not isinstance(value, dict):
                continue
            if isinstance(value.get("blob"), str):
                if self._blob_free(session, value["blob"], before):
                    removed += self._remove(self.settings.data_dir, blob_path(value["blob"]))
            elif isinstance(value.get("upload"), str):  # kept under the uploads folder, before blobs
                removed += self._remove(self.settings.uploads_dir, value["upload"])
        _remove_empty_dir(self.settings.uploads_dir / run.id)
        return removed

    def _expired(self, session: Session, now: datetime, counts: SweepCounts) -> None:
        keep = self.settings.keep_inputs_days
        before = now - timedelta(days=keep) if keep is not None else None
        while expired := crud_assets.expired_assets(session, now=now):
            for asset in expired:
                crud_assets.delete_asset(session, asset_id=asset.id)
                if asset.artifact_id is None and asset.hash and self._blob_free(session, asset.hash, before):
                    self._remove(self.settings.data_dir, asset.path)
            counts.expired_assets += len(expired)

    def _blob_free(self, session: Session, hash_: str, before: datetime | None) -> bool:
        """Whether no asset row, no run that keeps its inputs (queued, running, or newer than `before`) and no
        submission in flight (a blob stored again moments ago) uses this blob. The runs are read once a sweep."""
        if self._held is None:
            self._held = crud_retention.blobs_held(session, before=before)
        path = blob_path(hash_)
        return (hash_ not in self._held and crud_assets.blob_users(session, path=path) == 0
                and not self._recently_stored(path))

    def _recently_stored(self, relative: str) -> bool:
        path = resolve_inside(self.settings.data_dir, relative)
        try:
            return path is not None and path.stat().st_mtime > time.time() - BLOB_GRACE_S
        except OSError:
            return False

    @staticmethod
    def _remove(root: Path, relative: str) -> int:
        path = resolve_inside(root, relative)
        if path is None or not path.is_file():
            return 0
        remove_file(root, relative)
        return 1


def _remove_empty_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not there, or not empty: left as it is
        folder.rmdir()
