"""Copy-paste snippets for calling an app: curl, Python (httpx, requests) and JavaScript fetch."""

from __future__ import annotations

import json
import pprint
from typing import Any

from publisher import AppSpec

_MEDIA = ("image", "mask", "video", "audio", "file")


def example_inputs(spec: AppSpec) -> dict[str, Any]:
    """Each non-file input with its default (what the form starts with); seeds left out: drawn per run."""
    return {i.name: i.default for i in spec.inputs
            if i.type not in _MEDIA and i.type != "seed" and i.default is not None}


def snippets(base_url: str, slug: str, spec: AppSpec, *, public: bool) -> dict[str, str]:
    url = f"{base_url.rstrip('/')}/api/apps/{slug}/run"
    body = json.dumps({"inputs": example_inputs(spec)}, indent=2)
    py_body = pprint.pformat({"inputs": example_inputs(spec)}, sort_dicts=False)  # Python literals: True, None
    auth_curl = ' \\\n  -H "Authorization: Bearer $COMFY_PUBLISHER_KEY"' if not public else ""
    auth_py = ', headers={"Authorization": f"Bearer {os.environ[\'COMFY_PUBLISHER_KEY\']}"}' if not public else ""
    auth_js = '\n    "Authorization": `Bearer ${process.env.COMFY_PUBLISHER_KEY}`,' if not public else ""
    py_import = "import os\n\n" if not public else ""
    curl = (f"curl -sS -X POST {url}{auth_curl} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d '{body.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'")  # ' -> '\\''
    httpx = (f"{py_import}import httpx\n\n"
             f"run = httpx.post(\"{url}\", json={py_body}{auth_py}, timeout=120).raise_for_status().json()\n"
             f"print(run[\"status\"], [\"{base_url.rstrip('/')}\" + o[\"url\"] for o in run[\"outputs\"]])")
    requests = (f"{py_import}import requests\n\n"
                f"response = requests.post(\"{url}\", json={py_body}{auth_py}, timeout=120)\n"
                f"response.raise_for_status()\nrun = response.json()\n"
                f"print(run[\"status\"], [\"{base_url.rstrip('/')}\" + o[\"url\"] for o in run[\"outputs\"]])")
    js_body = body.replace("\n", "\n  ")
    # .then() rather than top-level await: the snippet runs as pasted in Node (CommonJS) and in a browser.
    js = (f"fetch(\"{url}\", {{\n  method: \"POST\",\n  headers: {{{auth_js}\n"
          f"    \"Content-Type\": \"application/json\",\n  }},\n  body: JSON.stringify({js_body}),\n}})\n"
          f"  .then((response) => response.json())\n"
          f"  .then((run) => console.log(run.status, run.outputs.map((o) => \"{base_url.rstrip('/')}\" + o.url)));")
    return {"curl": curl, "python (httpx)": httpx, "python (requests)": requests, "javascript (fetch)": js}
