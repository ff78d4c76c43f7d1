"""The Comfy API v2's jobs: a job is an ordinary run, submitted through the one entry point
(RunService.submit). Server-wide, its workflow is any API-format graph (a version of the internal app,
app.v2.workflow_versions), for admin keys and keys with the "workflows" permission; on an app's base URL it is the
app's published workflow with only its published inputs changed (publisher.app_workflow_guard), whose values go in
as any run's inputs do."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from app.auth.keys import Caller, identify, require_runner
from app.errors import AppError, Forbidden, Unauthorized
from app.runs.submission import AppRef, Prepared, Submission, authorize
from app.services import Services
from app.v2.asset_refs import is_asset_reference, read, resolve_reference, uploaded_by_name
from app.v2.errors import V2Error
from app.v2.idempotency import KEY_LIFETIME, MAX_KEY_LENGTH, SingleUseKeys
from app.v2.job_inputs import JobInputs
from app.v2.job_view import LiveRun, Surface, job_of
from app.v2.recent import may_read_here
from app.v2.workflow_versions import WorkflowVersions, invalid_workflow
from db import crud_assets, crud_runs
from db.crud_apps import RunnableVersion
from publisher import AppSpec, NodeCatalog, apply_values
from publisher.app_workflow_guard import AppWorkflowError, app_values_from_workflow
from publisher.apply import FILE_TYPES
from publisher.workflow import WorkflowFormatError
from runtimes import v2wire
from runtimes.contract import FINAL_STATUSES, QueueFullError
from runtimes.inputs import InputProblems

_CATALOG_TTL_S = 30.0  # node schemas change only when node packs are installed (the engine restarts)


def parse_body(raw: bytes) -> v2wire.JobRequest:
    """`{"workflow": {...}, "extra_data"?: {...}}`, as the contract says; what is wrong, named."""
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        raise V2Error("invalid_request", 'The body is not JSON: send {"workflow": {...API-format graph...}}.') from None
    try:
        return v2wire.job_request(data, workflow_hint="send the API-format graph (File > Export (API) in ComfyUI) "
                                                      "as the body's 'workflow' object.")
    except v2wire.JobRequestError as exc:
        raise V2Error(exc.code, exc.message) from None


def require_workflows(caller: Caller) -> None:
    if caller.key_id is None:
        raise Unauthorized("Running any workflow needs an API key: send 'Authorization: Bearer <key>' (an admin key, "
                           "or one made with `python launch.py keys create NAME --workflows`).")
    if not (caller.admin or caller.workflows):
        raise Forbidden("This API key may run published apps but not any workflow: use an admin key, or one made with "
                        "`python launch.py keys create NAME --workflows`; or send the job to an app's base URL "
                        "(/apps/{slug}/api/v2/jobs).")


def node_errors_of(spec: AppSpec, problems: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Input problems of a run, by the node of each input (the v2 envelope's details.node_errors)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for problem in problems:
        item = spec.input(str(problem.get("input")))
        node = str(problem.get("node") or (item.node if item else "") or "")
        entry = {"field": problem.get("node_input") or (item.input if item else problem.get("input")),
                 "reason": "invalid_value", "message": str(problem.get("message", ""))}
        if item is not None:
            entry["input"] = item.name
        if "allowed" in problem:
            entry["allowed"] = problem["allowed"]
        found.setdefault(node, []).append(entry)
    return found


class V2Jobs:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.runs = services.runs
        self.workflows = WorkflowVersions(services.assets)
        self.claims = SingleUseKeys()
        self.canceling: set[str] = set()  # runs a cancel was asked for and that have not ended yet
        self.streams: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}  # v2 event streams by job: told of a cancel
        self._catalog: tuple[NodeCatalog, float] | None = None

    async def catalog(self) -> NodeCatalog:
        if self._catalog is None or time.monotonic() - self._catalog[1] > _CATALOG_TTL_S:
            self._catalog = (await self.services.catalog.get(), time.monotonic())
        return self._catalog[0]

    # --- submission ---------------------------------------------------------------------------------

    async def submit(self, surface: Surface, app: AppRef | None, raw: bytes, authorization: str | None,
                     idempotency_key: str | None) -> dict[str, Any]:
        body = parse_body(raw)
        if idempotency_key is not None and not (0 < len(idempotency_key) <= MAX_KEY_LENGTH):
            raise V2Error("invalid_request", f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters.")
        catalog = None
        if app is None:
            if self._fresh_catalog() is None:  # the caller first: a stranger never waits for the engine
                require_workflows(await self.services.db(lambda session: identify(session, authorization)))
            catalog = await self.catalog()
        found: dict[str, Any] = {}  # what the trip found: the version (to name refused values), the claimed scope

        def prepare(session: Session) -> Prepared:
            """Who calls, the version, the job's inputs and its claimed key, in the submission's own trip."""
            if app is None:
                assert catalog is not None
                caller, version, inputs, scope = self._prepare_workflow(session, authorization, body.workflow,
                                                                        catalog, idempotency_key)
            else:
                caller, version = authorize(session, app, None, authorization, None)
                inputs, scope = self._prepare_app(session, version, body.workflow, caller, idempotency_key)
            found.update(version=version, scope=scope)
            return Prepared(caller, version, inputs)

        try:
            accepted = await self.runs.submit(Submission(None, JobInputs({}, {}), idempotency_key=idempotency_key,
                                                         key_lifetime=KEY_LIFETIME, prepare=prepare,
                                                         extra_data=body.extra_data))
        except RecursionError:  # parsed, but nested deeper than a workflow is walked
            self._release(found.get("scope"))
            raise V2Error("invalid_workflow", "The workflow is nested too deeply: a node's inputs are values and "
                                              "links ([node id, slot]), not lists in lists.") from None
        except InputProblems as exc:
            self._release(found.get("scope"))
            version_id = found["version"].version_id
            spec = await self.services.db(lambda session: self.runs.versions.spec(session, version_id))
            raise V2Error("invalid_workflow", f"The workflow's values do not fit: {exc}",
                          details={"node_errors": node_errors_of(spec, exc.problems)}) from None
        except (V2Error, AppError, QueueFullError):  # refused: no job was made, the key may be used again
            self._release(found.get("scope"))
            raise
        if not accepted.created:  # the same key, a moment earlier, from another process's point of view
            raise _reused()
        # Known without reading it back: queued, no outputs yet.
        return job_of(None, self.services.assets, surface, accepted.run, [],
                      keep_days=self.services.settings.keep_outputs_days, nodes_total=len(accepted.spec.workflow),
                      queue_position=self.runs.position(accepted.run.id), live_progress=None, canceling=False)

    def _fresh_catalog(self) -> NodeCatalog | None:
        if self._catalog is None or time.monotonic() - self._catalog[1] > _CATALOG_TTL_S:
            return None
        return self._catalog[0]

    def _prepare_workflow(self, session: Session, authorization: str | None, graph: dict[str, Any],
                          catalog: NodeCatalog, key: str | None
                          ) -> tuple[Caller, RunnableVersion, JobInputs, str | None]:
        """Who calls, the version of this graph, its files and the claimed key: one trip to the database."""
        caller = identify(session, authorization)
        require_workflows(caller)
        prepared = self.workflows.prepare(session, graph, caller, catalog)
        scope = self._claim(prepared.version.app_id, caller, key)
        return caller, prepared.version, JobInputs(prepared.values, prepared.files), scope

    def _prepare_app(self, session: Session, version: RunnableVersion, graph: dict[str, Any], caller: Caller,
                     key: str | None) -> tuple[JobInputs, str | None]:
        inputs = self._app_inputs(session, version, graph, caller)
        return inputs, self._claim(version.app_id, caller, key)

    def _claim(self, app_id: int, caller: Caller, key: str | None) -> str | None:
        """The key's scope, claimed in memory; `idempotency_key_reuse` when it was used here. A key a job recorded
        before a restart holds is found by the run's insert (app.runs.submission: then `accepted.created` is False)."""
        if not key:
            return None
        scope = f"{app_id}:{caller.scope}:{key}"
        if not self.claims.claim(scope):
            raise _reused()
        return scope

    def _release(self, scope: str | None) -> None:
        if scope is not None:
            self.claims.release(scope)

    def _app_inputs(self, session: Session, version: RunnableVersion, graph: dict[str, Any],
                    caller: Caller) -> JobInputs:
        """The app's input values the graph sets (only those may differ from its published workflow), its files
        read from the asset store."""
        spec = self.runs.versions.spec(session, version.version_id)
        try:
            values = app_values_from_workflow(spec, graph)
        except AppWorkflowError as exc:
            raise V2Error("invalid_workflow", str(exc), details={"node_errors": exc.node_errors()}) from None
        except WorkflowFormatError as exc:
            raise invalid_workflow("The workflow cannot be read", lines=[str(exc)]) from None
        files: dict[str, tuple[str, bytes]] = {}
        for item in spec.inputs:
            value = values.get(item.name)
            if item.type not in FILE_TYPES or value is None:
                continue
            own = (item.default, ((spec.workflow.get(item.node) or {}).get("inputs") or {}).get(item.input))
            if is_asset_reference(value):
                asset = resolve_reference(session, self.services.assets, caller, item.node, item.input, value)
            elif isinstance(value, str) and value not in own and (found := uploaded_by_name(session, caller, value)):
                asset = found
            else:
                continue  # the app's own file, or a name the run's checks refuse (naming what is allowed)
            file = read(self.services.assets, item.node, item.input, asset)
            files[item.name] = (file.filename, file.data)
            del values[item.name]
        return JobInputs(values, files)

    def follow(self, job_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.streams.setdefault(job_id, set()).add(queue)

    def unfollow(self, job_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self.streams.get(job_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.streams[job_id]

    # --- reading ------------------------------------------------------------------------------------

    def readable(self, session: Session, surface: Surface, authorization: str | None, job_id: str) -> Row[Any]:
        """The job's run, if this caller may see it here: the key that submitted it or an admin key (a job of no
        key: as its app allows). Anything else reads as not found."""
        caller = identify(session, authorization)
        run = crud_runs.run_and_access(session, run_id=job_id) if len(job_id) <= 64 else None
        if run is None or (surface.app_id is not None and run.app_id != surface.app_id):
            raise V2Error("not_found", "No such job (unknown, not yours, or past its retention).")
        if run.api_key_id is None:
            require_runner(caller, public=run.app_public)
        elif not caller.admin and caller.key_id != run.api_key_id:
            if caller.key_id is None:
                raise Unauthorized("This job needs the API key that submitted it: send 'Authorization: Bearer <key>'.")
            raise V2Error("not_found", "No such job (unknown, not yours, or past its retention).")
        return run

    def read_live(self, surface: Surface, app: AppRef | None, authorization: str | None,
                  job_id: str) -> dict[str, Any] | None:
        """A job queued, running or ended lately here, from memory (app.runs.inflight), for its submitter's key or an
        admin's verified in the last seconds. None: read it from the database (`read`), which makes every refusal."""
        in_flight = self.runs.in_flight.get(job_id)
        if in_flight is None:
            ended = self.runs.in_flight.recent(job_id)
            if ended is None or not may_read_here(ended.api_key_id, ended.slug, app and app.slug, authorization):
                return None
            self.canceling.discard(job_id)
            return job_of(None, self.services.assets, surface, ended.run, ended.artifacts,
                          keep_days=self.services.settings.keep_outputs_days, nodes_total=ended.nodes,
                          queue_position=None, live_progress=None, canceling=False)
        if not may_read_here(in_flight.api_key_id, in_flight.slug, app and app.slug, authorization):
            return None
        started = in_flight.started_at
        queue_ms = (started - in_flight.created_at).total_seconds() * 1000 if started is not None else None
        run = LiveRun(job_id, "running" if started is not None else "queued", in_flight.created_at, started, queue_ms)
        return job_of(None, self.services.assets, surface, run, [], keep_days=self.services.settings.keep_outputs_days,
                      nodes_total=in_flight.nodes, queue_position=None if started else self.runs.position(job_id),
                      live_progress=in_flight.progress, canceling=job_id in self.canceling)

    def view(self, session: Session, surface: Surface, run: Any) -> dict[str, Any]:
        artifacts = crud_assets.outputs_with_assets(session, run_id=run.id) if run.status == "succeeded" else []
        spec = self.runs.versions.spec(session, run.version_id)
        in_flight = self.runs.in_flight.get(run.id)
        final = run.status in FINAL_STATUSES
        if final:
            self.canceling.discard(run.id)
        return job_of(session, self.services.assets, surface, run, artifacts,
                      keep_days=self.services.settings.keep_outputs_days, nodes_total=len(spec.workflow),
                      queue_position=None if final else self.runs.position(run.id),
                      live_progress=in_flight.progress if in_flight is not None else None,
                      canceling=run.id in self.canceling)

    def read(self, session: Session, surface: Surface, authorization: str | None, job_id: str) -> dict[str, Any]:
        return self.view(session, surface, self.readable(session, surface, authorization, job_id))

    def snapshot(self, session: Session, surface: Surface, authorization: str | None, job_id: str
                 ) -> tuple[dict[str, Any], int]:
        """The job and how many nodes its workflow has (an event stream's progress counts them)."""
        run = self.readable(session, surface, authorization, job_id)
        return self.view(session, surface, run), len(self.runs.versions.spec(session, run.version_id).workflow)

    def workflow(self, session: Session, surface: Surface, authorization: str | None, job_id: str) -> dict[str, Any]:
        """The API-format graph the job ran: its workflow with the values applied, files by the name they were
        uploaded under."""
        run = self.readable(session, surface, authorization, job_id)
        spec = self.runs.versions.spec(session, run.version_id)
        given = run.applied or run.inputs or {}
        values = {name: PurePosixPath(value["upload"]).name if isinstance(value, dict) and "upload" in value
                  else value for name, value in {**(run.inputs or {}), **given}.items() if "." not in name}
        try:
            graph = apply_values(spec.loaded_workflow, spec.inputs, values).prompt
        except ValueError:
            graph = spec.workflow
        return {"workflow": graph, "format": "api"}

    async def cancel(self, surface: Surface, authorization: str | None, job_id: str) -> dict[str, Any]:
        run = await self.services.db(self.readable, surface, authorization, job_id)
        if run.status not in FINAL_STATUSES:
            self.canceling.add(job_id)
            for queue in self.streams.get(job_id, ()):
                if not queue.full():  # a stream this far behind gets the terminal status anyway
                    queue.put_nowait({"event": "canceling"})
            await self.runs.cancel(job_id)
            await self.runs.wait(job_id, 2.0)  # a queued job ends at once; a running one at its next step
        return await self.services.db(self.read, surface, authorization, job_id)


def _reused() -> V2Error:
    return V2Error("idempotency_key_reuse", "This Idempotency-Key was used already (keys are single-use for 24 h): "
                                            "poll the job it made instead of submitting again, or use a new key.")

