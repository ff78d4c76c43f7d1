"""Where a converted workflow and the prompt the editor queues for the same graph differ.

The editor's ``graphToPrompt()`` is the reference for the UI-format converter: the browser oracle tests compare
with it, and the studio compares with the prompt the editor's "Publish…" sends, to say when an app would not run
what the editor runs. Inputs the engine does not take (the frontend's own widgets, such as ``preview`` or
``audioUI``) are left out, and so are the texts each run makes (dates, dynamic prompts' choices), which differ
between any two queues.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .frontend_values import apply_run_replacements, per_run_steps
from .node_schema import NodeCatalog
from .quoting import quote

Prompt = Mapping[str, Mapping[str, Any]]


def prompt_differences(ours: Prompt, theirs: Prompt, catalog: NodeCatalog) -> list[str]:
    """Each difference in a sentence, by node id; empty when the engine would run the same thing."""
    ours = apply_run_replacements({k: dict(v) for k, v in ours.items()})  # dates: filled in as the editor queues
    found = [f"only the editor queues node {node_id}" for node_id in sorted(set(theirs) - set(ours))]
    found += [f"only the conversion queues node {node_id}" for node_id in sorted(set(ours) - set(theirs))]
    for node_id in sorted(set(ours) & set(theirs)):
        mine, real = ours[node_id], theirs[node_id]
        if mine.get("class_type") != real.get("class_type"):
            found.append(f"node {node_id}: {mine.get('class_type')} here, {real.get('class_type')} in the editor")
            continue
        schema = catalog.get(str(real.get("class_type")))
        real_inputs, mine_inputs = real.get("inputs") or {}, mine.get("inputs") or {}
        known = {spec.name for spec in schema.inputs} if schema is not None else set(real_inputs)
        for name in sorted((set(real_inputs) | set(mine_inputs)) & known):
            if per_run_steps(mine, name):
                continue
            here, there = mine_inputs.get(name, "<absent>"), real_inputs.get(name, "<absent>")
            if here != there:
                found.append(f"node {node_id} ({real.get('class_type')}) input '{name}': {quote(here)} here, "
                             f"{quote(there)} in the editor")
    return found
