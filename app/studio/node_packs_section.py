"""The Engine tab's "Node packs" section: the custom node packs of the managed engines (loaded, failed with the
engine's log lines, or not loaded yet), install one by its pin, remove one. Installing or removing restarts the
engines, as the API does, so the change is live when the section answers."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from app.packs.service import NodePacks
from app.services import Services
from runtimes.engine.node_packs import PackError

STATE = {"loaded": "✓ loaded", "failed": "✗ failed", "not loaded": "… not loaded (restart the engine)"}


def packs_markdown(packs: NodePacks, described: list[dict[str, Any]]) -> str:
    """The packs as NodePacks.describe gives them, as a table, with each failed one's log lines."""
    if not packs.managed:
        return ("This app uses a ComfyUI it does not manage (`--comfyui-url`): install node packs in that ComfyUI "
                "itself.")
    if not described:
        return "No node packs installed. Install one by its pin below."
    lines = ["| pack | state | pin | node types |", "|---|---|---|---|"]
    failures = []
    for pack in described:
        nodes = ", ".join(pack["node_types"][:8]) + (" …" if len(pack["node_types"]) > 8 else "")
        lines.append(f"| **{_cell(pack['name'])}** | {STATE.get(pack['state'], pack['state'])} | "
                     f"`{_cell(pack['pin'] or 'not installed by this app')}` | {_cell(nodes)} |")
        if pack["log"]:
            failures.append(f"\n**{_cell(pack['name'])}** failed to import; the engine's log:\n\n```\n"
                            + "\n".join(pack["log"]).replace("```", "'''") + "\n```")
    return "\n".join(lines) + "".join(failures)


def install(packs: NodePacks, pin: str) -> str:
    """Install and restart the engines; the message for the page."""
    if not pin.strip():
        return "✗ Give a pin: GIT_URL@COMMIT (a full 40-hex commit) or REGISTRY_ID@VERSION (x.y.z)."
    try:
        installed, restarted, _ = packs.install_and_load(pin.strip(), progress=lambda _: None)
    except PackError as exc:
        return f"✗ Not installed: {html.escape(str(exc))}"
    notes = "".join(f"\n\nNote: {html.escape(note)}" for note in installed.notes)
    return f"✓ Installed **{installed.name}** ({installed.pin}); {restarted} engine(s) restarted to load it.{notes}"


def remove(packs: NodePacks, name: str | None) -> str:
    if not name:
        return "✗ Choose the pack to remove."
    try:
        packs.remove(name)
    except PackError as exc:
        return f"✗ Not removed: {html.escape(str(exc))}"
    return f"✓ Removed **{name}**; {packs.restart_engines()} engine(s) restarted without it."


def _cell(text: str) -> str:
    return html.escape(str(text)).replace("|", "\\|")


def build(services: Services) -> tuple[Any, list[gr.components.Component]]:
    """Lay out the section; returns its loader (and what it fills)."""
    packs = services.packs
    with gr.Accordion("Node packs", open=True, elem_id="node-packs"):
        listing = gr.Markdown(elem_id="node-packs-list")
        with gr.Row():
            pin = gr.Textbox(label="Pin", placeholder="https://github.com/owner/repo@<40-hex commit>  or  "
                                                      "registry-id@1.2.3", scale=4, elem_id="node-pack-pin")
            install_button = gr.Button("Install", scale=1, elem_id="node-pack-install")
        with gr.Row():
            name = gr.Dropdown(label="Installed pack", choices=[], scale=4, elem_id="node-pack-name")
            remove_button = gr.Button("Remove", scale=1, variant="stop", elem_id="node-pack-remove")
        result = gr.Markdown(elem_id="node-pack-result")

    def load() -> tuple[str, Any]:
        # Once: it reads the engine's log and (for the engines this app manages) their /object_info.
        described = packs.describe(packs.object_info() if packs.managed else None)
        return packs_markdown(packs, described), gr.Dropdown(choices=[p["name"] for p in described], value=None)

    def on_install(text: str) -> tuple[str, str, Any]:
        message = install(packs, text)
        return (message, *load())

    def on_remove(chosen: str | None) -> tuple[str, str, Any]:
        message = remove(packs, chosen)
        return (message, *load())

    install_button.click(on_install, inputs=[pin], outputs=[result, listing, name])
    remove_button.click(on_remove, inputs=[name], outputs=[result, listing, name])
    return load, [listing, name]
