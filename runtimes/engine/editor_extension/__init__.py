"""Comfy Publisher's extension for the ComfyUI editor: a custom-node folder with no nodes, only a web script.

`web/publish.js` adds "Publish…" to the editor's File menu: it sends the open graph (the UI format and the prompt
the editor would queue) to Comfy Publisher and opens the studio's Publish tab with it. `web/publisher.json` says
where Comfy Publisher answers; `runtimes/engine/extension.py` writes it when it installs this folder.
"""

WEB_DIRECTORY = "./web"
NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
