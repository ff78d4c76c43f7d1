"""Background fetches of the missing model files of an app or a workflow: one thread per job, the files one after
the other, each file's state and bytes readable while it runs. A file is fetched by one job at a time (and by one
process: hub_fetch locks it on disk)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from app.errors import Conflict
from runtimes.models.hub_fetch import ModelFetchError, fetch_model
from runtimes.models.needs import NeededModel

FileState = Literal["queued", "fetching", "fetched", "present", "failed"]
MAX_JOBS_KEPT = 100  # finished jobs beyond this are forgotten, oldest first


@dataclass
class FileFetch:
    folder: str
    filename: str
    source: str | None
    state: FileState = "queued"
    done: int = 0  # bytes
    total: int | None = None
    error: str | None = None


@dataclass
class FetchJob:
    id: str
    label: str  # the app's slug, or the workflow's name
    files: list[FileFetch] = field(default_factory=list)
    finished: bool = False

    @property
    def failed(self) -> bool:
        return any(f.state == "failed" for f in self.files)

    def snapshot(self) -> FetchJob:
        """A copy that the fetching thread does not change under the reader."""
        return replace(self, files=[replace(f) for f in self.files])


class ModelFetches:
    def __init__(self, models_dir: Path | None, engine_url: str | None = None) -> None:
        """`models_dir`: the managed engines' models folder; None when the app runs an engine it does not manage
        (`engine_url`), whose files are in a folder of its own."""
        self._models_dir = models_dir
        self._engine_url = engine_url
        self._jobs: dict[str, FetchJob] = {}
        self._active: dict[str, str] = {}  # folder/file -> the id of the job fetching it
        self._lock = threading.Lock()

    @property
    def models_dir(self) -> Path:
        """Where the engines read model files from; Conflict for an engine this app does not manage."""
        if self._models_dir is None:
            raise Conflict(f"The engine at {self._engine_url} is not managed by this app: it reads model files from "
                           "its own models folder, which the app was not told. Start the app with --models-dir "
                           "/path/to/that/ComfyUI/models, or fetch them there: python launch.py models pull SLUG "
                           "--models-dir /path/to/that/ComfyUI/models")
        return self._models_dir

    def start(self, label: str, needs: list[NeededModel], *, force: bool = False) -> FetchJob:
        """A job fetching the files of `needs` that are missing (all with `force`); a file without a source fails
        at once with where to put it by hand. When a running job already fetches all of them, that job."""
        wanted = [n for n in needs if force or not n.present]
        with self._lock:
            running = {self._active.get(n.key) for n in wanted}
            if wanted and len(running) == 1 and None not in running:
                return self._jobs[running.pop()].snapshot()  # type: ignore[index]
            job = FetchJob(uuid.uuid4().hex, label)
            for need in wanted:
                entry = FileFetch(need.folder, need.filename, need.source)
                if need.source is None or need.folder == "unknown":
                    entry.state, entry.error = "failed", need.hint()
                elif need.key in self._active:
                    entry.state, entry.error = "failed", "being fetched by another job: wait for it"
                else:
                    self._active[need.key] = job.id
                job.files.append(entry)
            self._jobs[job.id] = job
            self._forget_old()
        todo = [(n, e) for n, e in zip(wanted, job.files, strict=True) if e.state == "queued"]
        threading.Thread(target=self._run, args=(job, todo, force), name=f"model-fetch-{job.id[:8]}",
                         daemon=True).start()
        return job.snapshot()

    def get(self, job_id: str) -> FetchJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.snapshot() if job is not None else None

    def _run(self, job: FetchJob, todo: list[tuple[NeededModel, FileFetch]], force: bool) -> None:
        try:
            for need, entry in todo:
                def progress(done: int, total: int | None, entry: FileFetch = entry) -> None:
                    entry.done, entry.total = done, total

                entry.state = "fetching"
                try:
                    assert need.source is not None  # those without one failed in start()
                    outcome = fetch_model(need.source, self.models_dir, need.folder, need.filename,
                                          sha256=need.sha256, force=force, progress=progress)
                    entry.state = "fetched" if outcome.fetched else "present"
                    entry.done = entry.total = outcome.size
                except ModelFetchError as exc:
                    entry.state, entry.error = "failed", str(exc)
                except Exception as exc:  # a full disk, a permission: reported on the file, the job goes on
                    entry.state, entry.error = "failed", f"{type(exc).__name__}: {exc}"
                finally:
                    with self._lock:
                        self._active.pop(need.key, None)
        finally:
            job.finished = True

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[:max(0, len(self._jobs) - MAX_JOBS_KEPT)]:
            del self._jobs[job_id]
