"""A server-wide v2 job's workflow as a version of the server's internal app (db.crud_v2): each distinct graph
STRUCTURE is recorded once, as an AppSpec whose inputs are its files (one file input per asset the graph names) and
its numbers (app.v2.graph_values: seeds, sizes, steps... go in as the run's values), so its runs are ordinary runs
(the same records, queue, recovery after a restart with the same values). The same structure sent again, whatever
files and numbers it holds, finds its version by hash while this process remembers it (the last 512): the graph is
checked against the engine's node schemas the first time; later, only its numbers are (the full checks run again
to name one the engine would refuse)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.assets.store import AssetStore
from app.auth.keys import Caller
from app.v2 import graph_values
from app.v2.asset_refs import AssetFile, is_asset_reference, missing, read, resolve_reference, uploaded_by_name
from app.v2.errors import V2Error
from db import crud_v2
from db.crud_apps import RunnableVersion
from publisher import AppInput, AppOutput, AppSpec, NodeCatalog, find_outputs, validate_graph
from publisher.file_paths import path_problems
from publisher.quoting import cut
from publisher.validate import GraphProblem
from publisher.workflow import WorkflowFormatError, load_workflow

PLACEHOLDER = "v2-asset"  # the stored graph's value of a file input: each run uploads its own file there
_CACHE_SIZE = 512


@dataclass(frozen=True)
class Slot:
    """A node input that takes a file of the run."""

    node: str
    input: str
    kind: str  # image | video | audio | file: the binding's type

    @property
    def name(self) -> str:
        return "file_" + re.sub(r"\W", "_", f"{self.node}_{self.input}")


@dataclass(frozen=True)
class Prepared:
    version: RunnableVersion
    files: dict[str, tuple[str, bytes]]  # binding name -> (file name, bytes)
    values: dict[str, Any]  # binding name -> the graph's number there


@dataclass(frozen=True)
class _Known:
    """A structure's version, and the name of the input each of its values goes to."""

    version: RunnableVersion
    names: dict[graph_values.ValueSlot, str]


def invalid_workflow(message: str, problems: list[GraphProblem] | None = None,
                     lines: list[str] | None = None) -> V2Error:
    node_errors: dict[str, list[dict[str, Any]]] = {}
    general: list[str] = list(lines or [])
    for problem in problems or ():
        if problem.node_id is None and problem.missing_types:
            for class_type, nodes in problem.missing_types:
                for node in nodes:
                    node_errors.setdefault(node, []).append({"field": None, "reason": problem.kind,
                                                             "class_type": class_type, "message": problem.message})
        elif problem.node_id is None:
            general.append(problem.message)
        else:
            node_errors.setdefault(problem.node_id, []).append({
                "field": problem.input_name, "reason": problem.kind, "class_type": problem.class_type,
                "message": str(problem)})
    text = "; ".join([str(p) for p in problems or ()] + list(lines or []))
    details: dict[str, Any] = {"node_errors": node_errors}
    if general:
        details["problems"] = general
    return V2Error("invalid_workflow", f"{message}: {text}" if text else message, details=details)


class WorkflowVersions:
    def __init__(self, store: AssetStore) -> None:
        self.store = store
        self._by_hash: OrderedDict[str, _Known] = OrderedDict()
        self._app: tuple[int, str] | None = None  # the internal app's id and slug, once known
        self._lock = threading.Lock()  # prepare runs in the submissions' worker threads

    def prepare(self, session: Session, graph: dict[str, Any], caller: Caller, catalog: NodeCatalog) -> Prepared:
        """The version to run and the run's files; V2Error (invalid_workflow, missing_asset) naming what is wrong."""
        slots, files, normalized = self._files(session, graph, caller, catalog)
        structure, values = graph_values.split(normalized, frozenset((s.node, s.input) for s in slots))
        graph_hash = _hash(structure, slots)
        with self._lock:
            known = self._by_hash.get(graph_hash)
            if known is not None:
                self._by_hash.move_to_end(graph_hash)  # the graphs sent most stay
        if known is not None and graph_values.refused(normalized, values, catalog):
            _spec(normalized, slots, {}, catalog)  # raises naming each value refused (unless its node never runs)
        if known is None:
            known = self._version(session, normalized, slots, list(values), catalog, graph_hash)
            with self._lock:
                self._by_hash[graph_hash] = known
                while len(self._by_hash) > _CACHE_SIZE:
                    self._by_hash.popitem(last=False)
        return Prepared(known.version, {slot.name: (file.filename, file.data) for slot, file in files},
                        {known.names[slot]: value for slot, value in values.items()})

    def _files(self, session: Session, graph: dict[str, Any], caller: Caller, catalog: NodeCatalog
               ) -> tuple[list[Slot], list[tuple[Slot, AssetFile]], dict[str, Any]]:
        slots: list[Slot] = []
        files: list[tuple[Slot, AssetFile]] = []
        normalized: dict[str, Any] = {}
        for node, body in graph.items():
            if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
                normalized[node] = body  # the loader says what is wrong with it
                continue
            schema = catalog.get(str(body.get("class_type")))
            inputs = dict(body["inputs"])
            for name, value in body["inputs"].items():
                spec = schema.input(name) if schema is not None else None
                kind = (spec.upload or ("image" if spec.image_upload else None)) if spec is not None else None
                if is_asset_reference(value):
                    asset = resolve_reference(session, self.store, caller, node, name, value)
                elif kind is not None and isinstance(value, str):
                    found = uploaded_by_name(session, caller, value)
                    if found is None:
                        if caller.admin:  # an admin may name any file of the engine's input folder
                            continue
                        # The engine's input folder also holds other callers' run uploads: a key that may run any
                        # workflow still reads only the files it uploaded.
                        raise missing(str(node), name, f"node {node} input '{name}' names {cut(value)!r}, which is "
                                      "not a file you uploaded: upload it (POST /api/v2/assets) and name it by its "
                                      "file_path, or pass the asset reference the upload returns.")
                    asset = found
                else:
                    continue
                slot = Slot(str(node), name, kind or "file")
                slots.append(slot)
                files.append((slot, read(self.store, str(node), name, asset)))
                inputs[name] = PLACEHOLDER
            normalized[node] = {**body, "inputs": inputs}
        return slots, files, normalized

    def _version(self, session: Session, graph: dict[str, Any], slots: list[Slot],
                 value_slots: list[graph_values.ValueSlot], catalog: NodeCatalog, graph_hash: str) -> _Known:
        """A new version of the internal app for a structure not seen lately. Not looked up in the database:
        versions are not indexed by hash, and a graph seen before a restart costs one version more, never a wrong
        one."""
        values = graph_values.bindings(value_slots, {slot.name for slot in slots})
        spec = _spec(graph, slots, values, catalog)
        if self._app is None:
            app = crud_v2.internal_app(session)
            self._app = (app.id, app.slug)
        app_id, slug = self._app
        version = crud_v2.add_graph_version(session, app_id=app_id, graph_hash=graph_hash, spec=spec.to_dict())
        return _Known(RunnableVersion(app_id=app_id, slug=slug, public=False, version_id=version.id,
                                      number=version.number), {slot: item.name for slot, item in values.items()})


def _spec(graph: dict[str, Any], slots: list[Slot], values: dict[graph_values.ValueSlot, AppInput],
          catalog: NodeCatalog) -> AppSpec:
    """The graph checked as the engine would check it, as a spec."""
    try:
        workflow = load_workflow(graph)
    except WorkflowFormatError as exc:
        raise invalid_workflow("The workflow cannot be read", lines=[str(exc)]) from None
    if escaping := path_problems(workflow, catalog):
        raise invalid_workflow("The workflow names files outside the engine's folders", lines=escaping)
    if problems := validate_graph(workflow, catalog):
        raise invalid_workflow("The workflow would not run on this engine", problems)
    outputs = find_outputs(workflow, catalog)
    kept = [o for o in outputs if not o.preview] or outputs
    inputs = tuple(AppInput(node=s.node, input=s.input, type=s.kind, name=s.name,  # type: ignore[arg-type]
                            label=s.name) for s in slots) + tuple(values.values())
    return AppSpec(workflow=workflow.to_prompt(), inputs=inputs,
                   outputs=tuple(AppOutput(o.node_id, o.kind, o.label) for o in kept), keep_metadata=True)


def _hash(structure: dict[str, Any], slots: list[Slot]) -> str:
    text = json.dumps({"graph": structure, "files": sorted((s.node, s.input, s.kind) for s in slots)}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["Prepared", "Slot", "WorkflowVersions", "invalid_workflow"]
