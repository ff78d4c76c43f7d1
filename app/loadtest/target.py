"""Where a load test sends its runs: this server (checked to be a Comfy Publisher serving the app), or the app's own
live Modal deployment, found in this server's records. Nothing else: a load test is not a tool against others' sites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from app.loadtest.errors import LoadTestError
from publisher.quoting import cut


@dataclass(frozen=True)
class Target:
    url: str  # Locust's --host
    key: str  # what the locustfile sends as its bearer token (never written to the report)
    app: dict[str, Any]  # the app (or its deployed version) as the server describes it: inputs, defaults, timeout
    version: int | None
    submit_path: str
    queue_url: str | None  # where the queue length is read once a second (None: not exposed)


async def resolve_target(http: httpx.AsyncClient, *, slug: str, target: str, api_key: str,
                         endpoint_key: str | None = None) -> Target:
    """`http` speaks to this server (its base_url); `endpoint_key`: a deployment's (its Target's key; checked by the
    runner, an export does without). Raises LoadTestError naming what to fix."""
    app = await _app(http, slug, api_key)
    if target == "local":
        base = str(http.base_url).rstrip("/")
        # Pinned: the runs are of the version whose inputs the locustfile was written for.
        version = app.get("version")
        return Target(url=base, key=api_key, app=app, version=version,
                      submit_path=f"/api/apps/{slug}/versions/{version}/runs", queue_url=f"{base}/api/engine")
    deployment = await live_deployment(http, slug, api_key)
    version = deployment.get("version")
    described = await _get(http, f"/api/apps/{slug}/versions/{version}", api_key) if version else app
    return Target(url=str(deployment["url"]).rstrip("/"), key=endpoint_key or "", app={**described, "version": version},
                  version=version, submit_path="/api/runs", queue_url=None)


async def live_deployment(http: httpx.AsyncClient, slug: str, api_key: str) -> dict[str, Any]:
    """The newest live Modal deployment of the app with a URL (the one serving its runs first)."""
    deployments = await _get(http, f"/api/apps/{slug}/deployments", api_key, admin=True)
    live = [d for d in deployments if d.get("status") == "live" and d.get("url")
            and d.get("provider", "modal") == "modal"]  # a RunPod endpoint speaks RunPod's job API, not this one
    if not live:
        raise LoadTestError(f"App '{cut(slug)}' has no live Modal deployment. Deploy it first: `python launch.py "
                            f"deploy {cut(slug)}` (or the studio's Deploy tab), then load test it with --target "
                            "modal; --target local tests this server.")
    return max(live, key=lambda d: (bool(d.get("serving")), d.get("id", 0)))


async def _app(http: httpx.AsyncClient, slug: str, api_key: str) -> dict[str, Any]:
    app = await _get(http, f"/api/apps/{slug}", api_key)
    if not isinstance(app, dict) or not isinstance(app.get("latest"), dict) or "inputs" not in app["latest"]:
        raise LoadTestError(f"{http.base_url} does not answer as a Comfy Publisher server (GET /api/apps/{cut(slug)} "
                            "gave no app). Give this server's address with --url.")
    return app


async def _get(http: httpx.AsyncClient, path: str, api_key: str, *, admin: bool = False) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = await http.get(path, headers=headers)
    except httpx.HTTPError as exc:
        raise LoadTestError(f"Cannot reach the server at {http.base_url} ({type(exc).__name__}): start it with "
                            "`python launch.py`, or give its address with --url.") from None
    detail = _detail(response)
    if response.status_code == 404 and path.startswith("/api/apps/"):
        raise LoadTestError(f"{detail or 'No such app'} (`GET /api/apps` lists the apps; the slug is in each "
                            "app's URL).")
    if response.status_code in (401, 403):
        need = "an admin key (to read the app's deployments)" if admin else "an API key of this server"
        raise LoadTestError(f"The server refused the key: {detail or response.status_code}. Give {need} with --key "
                            "or COMFY_PUBLISHER_API_KEY (create one with `python launch.py keys create NAME"
                            f"{' --admin' if admin else ''}`).")
    if response.status_code != 200:
        raise LoadTestError(f"GET {path} answered HTTP {response.status_code}: {detail or cut(response.text)}. "
                            "Is --url this Comfy Publisher server?")
    try:
        return response.json()
    except ValueError:
        raise LoadTestError(f"{http.base_url} does not answer as a Comfy Publisher server (GET {path} is not "
                            "JSON). Give this server's address with --url.") from None


def _detail(response: httpx.Response) -> str:
    """The server's own message ({"detail": text | {"message": ...}}), or nothing."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    if isinstance(detail, dict):
        detail = detail.get("message")
    return detail if isinstance(detail, str) else ""
