"""What the Publish tab shows of a workflow: a readable summary, the candidate inputs as table rows (and
back), and what a new version changes. Pure functions: no Gradio, no I/O."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from publisher import AppSpec
from publisher.apply import DEFAULT_TEXT_MAX_LENGTH

_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#|~])")  # shown as typed, never as formatting

COLUMNS = ["Use", "Label", "Default", "Min", "Max", "Choices", "Type", "Node", "Input", "Why suggested"]
DATATYPES = ["bool", "str", "str", "str", "str", "str", "str", "str", "str", "str"]
EDITABLE = 6  # the first six columns are the publisher's choices; the rest describe the input
# A text input's "Max" is its maximum length in characters (it has no range).
CHOICE_SEPARATOR = " | "
_ROLES: list[tuple[str, tuple[str, ...]]] = [
    ("Models", ("loader", "checkpoint", "lora", "unet", "vae", "clipvision", "controlnetloader")),
    ("Prompts", ("textencode", "conditioning", "prompt")),
    ("Sampling", ("sampler", "scheduler", "sigmas", "guider", "noise")),
    ("Inputs", ("loadimage", "emptylatent", "emptyimage", "loadaudio", "loadvideo")),
]


def _role(class_type: str, output_ids: set[str], node_id: str) -> str:
    if node_id in output_ids:
        return "Outputs"
    lowered = class_type.lower()
    for role, needles in _ROLES:
        if any(n in lowered for n in needles):
            return role
    return "Processing"


def summary_markdown(analysis: dict[str, Any]) -> str:
    output_ids = {o["node_id"] for o in analysis["outputs"]}
    groups: dict[str, list[str]] = {}
    for node in analysis["nodes"]:
        title = node["title"] if node["title"] and node["title"] != node["class_type"] else ""
        name = f"{title} ({node['class_type']})" if title else node["class_type"]
        mark = " ⚠ *unknown to this engine*" if not node["known"] else ""
        groups.setdefault(_role(node["class_type"], output_ids, node["id"]), []).append(
            f"#{node['id']} {name}{mark}")
    lines = [f"**{len(analysis['nodes'])} nodes**, {len(analysis['inputs'])} inputs that could be published, "
             f"{sum(1 for i in analysis['inputs'] if i['suggested'])} suggested."]
    if analysis.get("format") == "ui":  # notes, reroutes, muted and bypassed nodes are gone: say why
        lines.insert(0, "*Converted from the UI format (as ComfyUI's Export (API) would): notes, reroutes, "
                        "primitives, muted and bypassed nodes are left out.*")
    lines += _app_mode_lines(analysis.get("app_mode") or {})
    for role in ("Inputs", "Models", "Prompts", "Sampling", "Processing", "Outputs"):
        if role in groups:
            lines.append(f"- **{role}**: " + ", ".join(groups[role]))
    models = analysis["models"]
    if models:
        lines.append("\n**Models**")
        for m in models:
            state = "✓ on this engine" if m["available"] else f"✗ missing: put it in `models/{m['folder']}/`"
            source = f" · from `{m['source']}`" if m.get("source") else ""
            lines.append(f"- `{m['filename']}` ({m['folder']}, node {m['node']}) — {state}{source}")
    else:
        lines.append("\n**Models**: none (this workflow needs no model files).")
    return "\n".join(lines)


def _app_mode_lines(app_mode: dict[str, Any]) -> list[str]:
    """What the file's ComfyUI App Mode chose: the ticked inputs (in its order) and the outputs published."""
    lines = []
    if app_mode.get("inputs"):
        lines.append(f"\n*ComfyUI's App Mode chose {len(app_mode['inputs'])} input(s): they are ticked, in its "
                     "order.*")
    if app_mode.get("outputs"):
        lines.append(f"\n*App Mode's outputs are published: nodes {', '.join(map(str, app_mode['outputs']))}.*")
    lines += [f"- ⚠ {problem}" for problem in app_mode.get("problems") or ()]
    return lines


def app_mode_outputs(analysis: dict[str, Any]) -> list[str] | None:
    """The outputs App Mode chose, to publish instead of the save nodes (None: it chose none)."""
    return list((analysis.get("app_mode") or {}).get("outputs") or ()) or None


def with_app_mode_heights(inputs: list[dict[str, Any]], analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's inputs with the height App Mode gave each (the table has no column for it)."""
    heights = {(c["node"], c["input"]): c.get("height") for c in analysis.get("inputs") or ()}
    return [{**i, "height": heights[key]} if heights.get(key := (i["node"], i["input"])) is not None else i
            for i in inputs]


def warnings_markdown(analysis: dict[str, Any]) -> str:
    """Missing node types first (the workflow cannot run without them), then the graph's other problems."""
    lines = []
    for missing in analysis["missing_node_types"]:
        pin = (missing.get("pack") or {}).get("pin")
        how = (f"install its pack `{pin}` (Engine tab › Node packs, or `python launch.py nodes install {pin}`)"
               if pin else "install the node pack that provides it (Engine tab › Node packs)")
        lines.append(f"- ⚠ Node type **{missing['class_type']}** (nodes {', '.join(missing['nodes'])}) is not "
                     f"installed on this engine: {how}, then upload again.")
    for problem in analysis["problems"]:
        if problem["kind"] != "unknown_node_types":
            where = f"node {problem['node_id']} ({problem['class_type']}): " if problem.get("node_id") else ""
            lines.append(f"- ⚠ {where}{problem['message']}")
    return ("### This workflow will not run as it is\n" + "\n".join(lines)) if lines else ""


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def candidate_rows(analysis: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for c in analysis["inputs"]:
        choices = CHOICE_SEPARATOR.join(map(str, c["choices"])) if c["type"] == "choice" else ""
        high = DEFAULT_TEXT_MAX_LENGTH if c["type"] == "text" else c["max"]
        rows.append([bool(c["suggested"]), c["label"], _cell(c["default"]), _cell(c["min"]), _cell(high),
                     choices, c["type"], c["node"], c["input"], c["reason"]])
    return rows


def _number(text: str, kind: str) -> float | int:
    value = float(text)
    return int(value) if kind in ("int", "seed") and value.is_integer() else value


def _parse_default(text: str, kind: str) -> Any:
    if kind in ("int", "float", "seed"):
        return _number(text, kind)
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("write true or false")
        return text.lower() in ("true", "1", "yes")
    return text


def rows_to_inputs(rows: list[list[Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The ticked rows as publish inputs ({node, input, label, default, min, max, choices}), and the problems
    found in the cells, each naming the row's label and column."""
    inputs, problems = [], []
    for row in rows:
        use, label, default, low, high, choices, kind, node, name = (row + [""] * len(COLUMNS))[:9]
        if not (use is True or str(use).lower() == "true"):
            continue
        item: dict[str, Any] = {"node": str(node), "input": str(name), "label": str(label).strip() or None}
        where = f"'{label or name}' (node {node}, input {name})"
        for column, text in (("Default", default), ("Min", low), ("Max", high)):
            text = _cell(text).strip()
            if not text:
                continue
            try:
                value = _parse_default(text, kind) if column == "Default" else _number(text, kind)
            except ValueError:
                hint = "write true or false" if kind == "bool" else "write a number"
                problems.append(f"{where}: {column} '{text}' is not valid: {hint}")
                continue
            if column == "Max" and kind == "text":
                if not float(value).is_integer():
                    problems.append(f"{where}: Max '{text}' is a text's maximum length: write a whole number")
                    continue
                item["max_length"] = int(value)
                continue
            if column != "Default" and kind not in ("int", "float", "seed"):
                hint = " (for a text, Max is its maximum length)" if kind == "text" else ""
                problems.append(f"{where}: {column} only applies to numbers{hint}; clear it")
                continue
            item[column.lower()] = value
        if str(choices).strip() and kind == "choice":
            item["choices"] = [c.strip() for c in str(choices).split(CHOICE_SEPARATOR.strip()) if c.strip()]
        inputs.append({k: v for k, v in item.items() if v is not None})
    return inputs, problems


def describe_changes(old: AppSpec | None, new: AppSpec) -> str:
    """What a new version changes for the people and programs that use the app."""
    if old is None:
        return ""
    lines = []
    before, after = {i.name: i for i in old.inputs}, {i.name: i for i in new.inputs}
    for name in after.keys() - before.keys():
        lines.append(f"- + new input **{name}** ({after[name].type})")
    for name in before.keys() - after.keys():
        lines.append(f"- − input **{name}** removed (API callers that send it will get an error)")
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name], after[name]
        for attribute in ("type", "label", "default", "min", "max", "max_length", "choices", "node", "input"):
            if getattr(a, attribute) != getattr(b, attribute):
                lines.append(f"- ~ **{name}**: {attribute} {_cell(getattr(a, attribute)) or '—'} → "
                             f"{_cell(getattr(b, attribute)) or '—'}")
    changed_nodes = [node_id for node_id in sorted(set(old.workflow) | set(new.workflow))
                     if json.dumps(old.workflow.get(node_id), sort_keys=True)
                     != json.dumps(new.workflow.get(node_id), sort_keys=True)]
    if changed_nodes:
        lines.append(f"- workflow nodes changed: {', '.join(changed_nodes)}")
    if [o.node for o in old.outputs] != [o.node for o in new.outputs]:
        lines.append(f"- outputs: {[o.node for o in old.outputs]} → {[o.node for o in new.outputs]}")
    return "\n".join(lines) if lines else "- no change to inputs, outputs or the workflow"


def editor_differences_markdown(differences: list[str], shown: int = 5) -> str:
    """What the editor would queue otherwise than this app, for a graph its File > Publish… sent (empty: nothing)."""
    if not differences:
        return ""
    more = f"\n- … and {len(differences) - shown} more" if len(differences) > shown else ""
    return (f"**⚠ The editor queues this graph otherwise than this app would, in {len(differences)} place(s).** "
            "Check these values in the inputs table before publishing:\n"
            + "".join(f"\n- {_plain(item)}" for item in differences[:shown]) + more + "\n\n")


def _plain(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", text)
