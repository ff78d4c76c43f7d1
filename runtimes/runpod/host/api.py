"""RunPod's management API (REST v2): the serverless template (image + env) and the endpoint (GPUs, workers,
timeouts) of a deployment, created or updated by name, and deleted, with errors that say what to do.

RunPod answers errors as application/problem+json {title, status, detail, errors?}; every failure here becomes a
`RunPodError` (a `DeployError`, the type deploy callers already catch) naming the call that failed. The API key
travels only in the Authorization header: never in a message, a log line or a repr.

An endpoint keeps no link to its template (REST v2 applies a template once, when it is named in a create or a
PATCH), so rolling a new image means updating the template, then PATCHing the endpoint with its templateId.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx

from runtimes.serverless.errors import DeployError
from runtimes.serverless.reach import unreachable

log = logging.getLogger(__name__)

REST_URL = "https://api.runpod.io/v2"
ENDPOINT_BASE_URL = "https://api.runpod.ai/v2"
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
KEY_HINT = ("create a key at runpod.io console → Settings → API Keys with read/write on Serverless, and set it as "
            "RUNPOD_API_KEY in the environment of the app")


class RunPodError(DeployError):
    """Something RunPod did not do; the message says why and what to do."""


class RunPodCredentialsError(RunPodError):
    pass


class RunPodUnreachableError(RunPodError):
    pass


class RunPodApiError(RunPodError):
    """RunPod answered with an error: its status, its problem details and its field errors are kept."""

    def __init__(self, message: str, *, status: int, detail: str = "", errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.errors = errors


class RunPodRateLimitedError(RunPodApiError):
    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def rest_base_url() -> str:
    return (os.environ.get("RUNPOD_REST_URL") or REST_URL).rstrip("/")


def endpoint_base_url() -> str:
    return (os.environ.get("RUNPOD_ENDPOINT_BASE_URL") or ENDPOINT_BASE_URL).rstrip("/")


def job_url(endpoint_id: str) -> str:
    """The base of an endpoint's job API: {base}/run, /status/{id}, /cancel/{id}, /health."""
    return f"{endpoint_base_url()}/{endpoint_id}"


def secret_reference(name: str) -> str:
    """How a template's env names a RunPod secret: RunPod puts its value there when a worker boots."""
    return f"{{{{ RUNPOD_SECRET_{name} }}}}"


async def preflight(api_key: str | None, *, url: str | None = None,
                    connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, before anything is created: no key (at once, no network), or no route to RunPod's API."""
    if not api_key:
        raise RunPodCredentialsError(f"No RunPod API key: {KEY_HINT}.")
    base = url or rest_base_url()
    reason = await unreachable(base, connect_timeout)
    if reason is not None:
        raise RunPodUnreachableError(f"Cannot reach RunPod at {base} ({reason}). Check the network connection "
                                     "(and HTTPS_PROXY if you need one), then deploy again.")


class RunPodApi:
    """One account's templates and serverless endpoints. Use as `async with RunPodApi(key) as api:` or call
    `aclose()`."""

    def __init__(self, api_key: str, *, rest_url: str | None = None, timeout: float = REQUEST_TIMEOUT_S) -> None:
        if not api_key:
            raise RunPodCredentialsError(f"No RunPod API key: {KEY_HINT}.")
        self._key = api_key
        self.url = (rest_url or rest_base_url()).rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S), trust_env=True,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json, application/problem+json"})

    def __repr__(self) -> str:
        return f"RunPodApi(url={self.url!r})"

    async def __aenter__(self) -> RunPodApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # Templates: the image and its env.

    async def list_templates(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/templates", "list your templates"))["templates"]

    async def find_template(self, name: str) -> dict[str, Any] | None:
        return _named(await self.list_templates(), name, "templates")

    async def ensure_template(self, name: str, image: str, env: dict[str, str],
                              fields: dict[str, Any]) -> dict[str, Any]:
        """Create the serverless template `name`, or update the one of that name (image and env replaced).
        `fields`: RunPodSettings.template_fields() (disk, serverless, startJupyter, startSsh)."""
        found = await self.find_template(name)
        if found is None:
            return await self._call("POST", "/templates", f"create the template '{name}'",
                                    {"name": name, "image": image, "env": env, **fields})
        return await self._call("PATCH", f"/templates/{found['id']}", f"update the template '{name}'",
                                {"image": image, "env": env, **fields})

    async def delete_template(self, template_id: str) -> None:
        await self._call("DELETE", f"/templates/{template_id}", f"delete the template {template_id}")

    # Account secrets: values the workers need (an HF token, bucket keys), stored encrypted by RunPod and referenced
    # from a template's env as {{ RUNPOD_SECRET_<name> }}, so no template or log ever holds them in plain text.

    async def list_secrets(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/secrets", "list your secrets"))["secrets"]

    async def ensure_secret(self, name: str, value: str, description: str = "") -> str:
        """Create the secret `name`, or rotate the value of the one of that name; returns the env placeholder that
        references it. Workers read the new value at their next boot."""
        found = _named(await self.list_secrets(), name, "secrets")
        if found is None:
            await self._call("POST", "/secrets", f"create the secret '{name}'",
                             {"name": name, "value": value, "description": description})
        else:
            await self._call("PATCH", f"/secrets/{found['id']}", f"update the secret '{name}'", {"value": value})
        return secret_reference(name)

    # Serverless endpoints: GPUs, workers, timeouts.

    async def list_endpoints(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/serverless", "list your serverless endpoints"))["endpoints"]

    async def find_endpoint(self, name: str) -> dict[str, Any] | None:
        return _named(await self.list_endpoints(), name, "endpoints")

    async def ensure_endpoint(self, name: str, template_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create the queue endpoint `name` from the template, or update the one of that name: the template is
        applied again (its image and env roll out to new workers) with `fields` (RunPodSettings.endpoint_fields())."""
        found = await self.find_endpoint(name)
        if found is None:
            return await self._call("POST", "/serverless", f"create the endpoint '{name}'",
                                    {"name": name, "type": "QUEUE", "templateId": template_id, **fields})
        # A PATCH changes only the fields it names: data centers and volumes the settings no longer ask for are
        # cleared explicitly, or the endpoint would keep the old ones. `type` cannot be changed by a PATCH.
        body = {"dataCenterIds": [], "networkVolumes": [], "templateId": template_id, **fields}
        return await self._call("PATCH", f"/serverless/{found['id']}", f"update the endpoint '{name}'", body)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._call("DELETE", f"/serverless/{endpoint_id}", f"delete the endpoint {endpoint_id}")

    async def _call(self, method: str, path: str, what: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise RunPodUnreachableError(f"RunPod did not answer in time while trying to {what} ({self.url}). "
                                         "Check the network and https://uptime.runpod.io, then try again.") from None
        except httpx.TransportError as exc:
            raise RunPodUnreachableError(f"Cannot reach RunPod at {self.url} to {what} ({type(exc).__name__}: "
                                         f"{self._redact(str(exc))}). Check the network connection (and "
                                         "HTTPS_PROXY if you need one), then try again.") from None
        if response.status_code == 204:
            return None
        if not response.is_success:
            raise self._error(response, what)
        try:
            return response.json()
        except ValueError:  # e.g. a proxy's page: say so, not a JSON traceback
            raise RunPodApiError(f"RunPod's answer while trying to {what} was not JSON ({self.url}, "
                                 f"{response.headers.get('content-type', 'no content type')}): check "
                                 "RUNPOD_REST_URL and any proxy in between.", status=response.status_code) from None

    def _error(self, response: httpx.Response, what: str) -> RunPodError:
        status = response.status_code
        title, detail, errors = _problem(response)
        detail, errors = self._redact(detail), tuple(self._redact(e) for e in errors)
        said = f"{status} {title}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            return RunPodCredentialsError(f"RunPod refused RUNPOD_API_KEY while trying to {what} ({said}): "
                                          f"{KEY_HINT}.")
        if status == 429:
            retry_after = _seconds(response.headers.get("Retry-After"))
            wait = f"wait {retry_after:g} s" if retry_after is not None else "wait a minute"
            return RunPodRateLimitedError(f"RunPod is rate limiting this account while trying to {what} ({said}): "
                                          f"{wait} and try again.", retry_after=retry_after, status=status,
                                          detail=detail, errors=errors)
        lines = [f"RunPod could not {what} ({said})."]
        lines += [f"  - {error}" for error in errors]
        lines.append(_advice(status))
        return RunPodApiError("\n".join(lines), status=status, detail=detail, errors=errors)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _named(items: list[dict[str, Any]], name: str, kind: str) -> dict[str, Any] | None:
    matches = [item for item in items if item.get("name") == name]
    if len(matches) > 1:  # names are not unique on RunPod: the first one made is the one kept up to date
        log.warning("%d %s are named %r on RunPod; updating %s", len(matches), kind, name, matches[0].get("id"))
    return matches[0] if matches else None


def _problem(response: httpx.Response) -> tuple[str, str, tuple[str, ...]]:
    """(title, detail, field errors) of an RFC 9457 problem body; a body of another shape is kept as the detail."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase, response.text.strip()[:500], ()
    if not isinstance(body, dict):
        return response.reason_phrase, str(body)[:500], ()
    detail = body.get("detail") or body.get("message") or body.get("error") or ""
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    return str(body.get("title") or response.reason_phrase), str(detail), tuple(str(e) for e in errors)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _advice(status: int) -> str:
    if status in (400, 422):
        return ("RunPod refused the request as sent: check the deploy settings named above (GPU pools, workers, "
                "timeouts, data centers, volume). If they look right, RunPod's API may have changed: update the app.")
    if status == 404:
        return "It no longer exists on RunPod (deleted in the console?): deploy again to create it."
    if status >= 500:
        return "RunPod had a problem on its side: try again in a few minutes (https://uptime.runpod.io)."
    return "Check the RunPod console, then try again."
