"""Install Comfy Publisher's editor extension (the "Publish…" command) into a ComfyUI's custom_nodes/.

The managed engines get it at every start, so it follows the app's version and address; a ComfyUI of the user's
own gets it on request (`launch.py install-extension`). The engine lists its script at `GET /extensions` as
/extensions/comfy_publisher/publish.js.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

SOURCE = Path(__file__).with_name("editor_extension")
FOLDER = "comfy_publisher"  # its name under custom_nodes/, and so its URL: /extensions/comfy_publisher/
CONFIG = "publisher.json"  # in web/: where the app answers, read by publish.js


class ExtensionInstallError(RuntimeError):
    """The extension could not be installed; the message says where and why."""


def check_app_url(app_url: str) -> str:
    """The app's address as the editor will call it (no trailing slash); ValueError naming the fix."""
    parts = urlsplit(app_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the app's address must be an http(s) URL such as http://127.0.0.1:7860, "
                         f"got {app_url[:80]!r}")
    return app_url.strip().rstrip("/")


def custom_nodes_of(comfyui_path: Path) -> Path:
    """The custom_nodes/ folder of a ComfyUI install: the folder of its main.py, or a ComfyUI Desktop base folder
    (which has custom_nodes/ but no main.py)."""
    folder = comfyui_path.expanduser()
    if not folder.is_dir():
        raise ExtensionInstallError(f"{folder} is not a folder: pass the ComfyUI folder that holds main.py")
    if not (folder / "main.py").is_file() and not (folder / "custom_nodes").is_dir():
        raise ExtensionInstallError(f"{folder} is not a ComfyUI folder: it holds neither main.py nor custom_nodes/. "
                                    "Pass the folder of ComfyUI's main.py (or ComfyUI Desktop's base folder).")
    return folder / "custom_nodes"


def install_extension(custom_nodes: Path, app_url: str) -> Path:
    """Copy the extension into `custom_nodes`/comfy_publisher with the app's address, replacing an older copy
    whole (never a mix of two versions); returns the installed folder. A running ComfyUI sees it after a restart."""
    address = check_app_url(app_url)
    target = custom_nodes / FOLDER
    try:
        custom_nodes.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=custom_nodes.parent))
        try:
            built = staging / FOLDER
            shutil.copytree(SOURCE, built, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            (built / "web" / CONFIG).write_text(json.dumps({"app_url": address}, indent=1) + "\n")
            if target.exists():
                target.rename(staging / "old")
            built.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise ExtensionInstallError(f"could not install the editor extension into {custom_nodes}: {exc}") from exc
    return target
