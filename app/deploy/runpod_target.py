"""RunPod serverless as a deploy target: settings (RunPodSettings), the generated bundle (Dockerfile, handler.py),
the preflight (RUNPOD_API_KEY and a route to RunPod; docker for --build), an optional docker build and push, the
template and the endpoint created or updated through RunPod's REST API, teardown, and runs sent to the endpoint's
job API (RunPodRuns).

The API key is the server's RUNPOD_API_KEY: read from the environment when needed, never stored, never logged.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.deploy import docker
from app.deploy.target import DeployOptions, Note, Plan
from db.crud_apps import RunnableVersion
from publisher import AppSpec
from runtimes.contract import CancelOutcome, Runner, RunRequest, RunUpdate, UpdateCallback, run_error
from runtimes.planner.prices import PriceTable
from runtimes.runpod.host.api import RunPodApi, job_url, preflight
from runtimes.runpod.host.generate import RunPodBundle, generate_runpod, runpod_names
from runtimes.runpod.host.runner import RunPodRuns, RunPodTarget
from runtimes.runpod.host.settings import RunPodSettings, runpod_settings_schema
from runtimes.serverless.settings import DeploySettingsError

KEY_ENV = "RUNPOD_API_KEY"
CREDENTIALS_HELP = (f"Set {KEY_ENV} (RunPod console > Settings > API Keys) in the server's environment, then "
                    "restart the server.")
# Passed on to the workers' template when set here: the handler uploads outputs to this bucket (S3-compatible)
# instead of returning them inline.
BUCKET_ENV = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY")
SECRET_ENV = (KEY_ENV, "HF_TOKEN", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY")
# A docker image reference: [host[:port]/]path[:tag][@digest], the path in lower case.
_IMAGE = re.compile(r"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
                    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")


def api_key() -> str:
    return os.environ.get(KEY_ENV, "").strip()


# Worker env values that are secrets: stored as RunPod account secrets (encrypted, write-only) under these names and
# referenced from the template's env, so neither the template nor any log holds them in plain text.
SECRET_NAMES = {"HF_TOKEN": "comfy-publisher-hf-token",
                "BUCKET_ACCESS_KEY_ID": "comfy-publisher-bucket-access-key-id",
                "BUCKET_SECRET_ACCESS_KEY": "comfy-publisher-bucket-secret-access-key"}


def worker_env(settings: RunPodSettings, bundle: RunPodBundle) -> tuple[dict[str, str], dict[str, str]]:
    """What the workers' environment needs from here, as (plain values, secret values by env name): HF_TOKEN when
    they fetch models onto the network volume at start, the bucket when outputs go to one."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    token = os.environ.get("HF_TOKEN")
    if settings.models == "volume" and "models.json" in bundle.files and token:
        secret["HF_TOKEN"] = token
    if os.environ.get("BUCKET_ENDPOINT_URL"):
        for name in BUCKET_ENV:
            if value := os.environ.get(name):
                (secret if name in SECRET_NAMES else plain)[name] = value
    return plain, secret


class RunPodDeployTarget:
    name = "runpod"
    label = "RunPod"
    recover_hint = "check the endpoint in RunPod's console, Serverless"

    def __init__(self, data_dir: Path, on_update: UpdateCallback | None = None) -> None:
        """`on_update`: where runs sent to endpoints report (the server's; the command line runs none)."""
        self.data_dir = data_dir
        self._on_update = on_update
        self._runs: RunPodRuns | None = None  # made at the first run sent (its HTTP client)

    def settings(self, raw: Mapping[str, Any] | None) -> RunPodSettings:
        return RunPodSettings.from_dict(raw)

    def generate(self, spec: AppSpec, settings: RunPodSettings, *, slug: str, version: int, title: str,
                 prices: PriceTable) -> tuple[RunPodBundle, str]:
        # RunPod prices its own GPU pools (the settings' table): the price table in force is Modal's GPU names.
        bundle = generate_runpod(spec, settings, slug=slug, version=version, title=title)
        return bundle, runpod_names(slug)

    def check(self, options: DeployOptions) -> None:
        image = (options.image or "").strip()
        if not image:
            raise DeploySettingsError([
                "image: a RunPod deploy needs the worker image in a registry RunPod can pull from: give --image "
                "REGISTRY/NAME:TAG (REST: \"image\"); build and push it from the generated files (see their "
                "README.md), or add --build to have the local docker do it"])
        if not _IMAGE.match(image):
            raise DeploySettingsError([f"image: {image!r} is not a docker image reference; give "
                                       "REGISTRY/NAME:TAG, e.g. docker.io/me/my-app:v1 (the path in lower case)"])

    async def preflight(self, plan: Plan, directory: Path) -> None:
        await preflight(api_key())
        if plan.options.build:
            await docker.check_docker(str(plan.options.image), directory)

    def secrets(self) -> tuple[str, ...]:
        return tuple(os.environ[name] for name in SECRET_ENV if os.environ.get(name))

    async def deploy(self, plan: Plan, directory: Path, note: Note) -> str:
        settings: RunPodSettings = plan.settings
        image = str(plan.options.image).strip()
        if plan.options.build:
            await docker.build_and_push(image, directory, note)
        env, secret_values = worker_env(settings, plan.bundle)
        async with RunPodApi(api_key()) as api:
            for env_name, value in secret_values.items():
                await note(f"Secret {SECRET_NAMES[env_name]} (the workers' {env_name}, kept encrypted by RunPod)")
                env[env_name] = await api.ensure_secret(SECRET_NAMES[env_name], value,
                                                        f"{env_name} of Comfy Publisher's RunPod workers")
            await note(f"Template {plan.app_name}: image {image}"
                       + (f", env {', '.join(sorted(env))}" if env else ""))  # the names only
            template = await api.ensure_template(plan.app_name, image, env, settings.template_fields())
            await note(f"Endpoint {plan.app_name} on template {template['id']}: GPU pools "
                       f"{', '.join(settings.gpu_pools)}, workers {settings.active_workers}-{settings.max_workers}")
            endpoint = await api.ensure_endpoint(plan.app_name, template["id"], settings.endpoint_fields())
        await note(f"Endpoint id {endpoint['id']}")
        return job_url(endpoint["id"])

    async def teardown(self, slug: str) -> str:
        """Delete the endpoint, then the template (RunPod refuses to delete a template an endpoint was made from).
        Both go by name: an endpoint keeps no link to its template."""
        name = runpod_names(slug)
        key = api_key()
        await preflight(key)
        async with RunPodApi(key) as api:
            endpoint = await api.find_endpoint(name)
            if endpoint is not None:
                await api.delete_endpoint(endpoint["id"])
            template = await api.find_template(name)
            if template is not None:
                await api.delete_template(template["id"])
        return name

    def runner(self, version: RunnableVersion) -> Runner | None:
        if self._on_update is None or not version.deployment_url:
            return None
        name = f"runpod:{version.deployment_app_name}"
        key = api_key()
        if not key:
            return MissingKeyRunner(self._on_update, name)
        if self._runs is None:
            self._runs = RunPodRuns(on_update=self._on_update)
        return self._runs.runner(RunPodTarget(name=name, url=version.deployment_url, key=key))

    def cost(self, settings: Mapping[str, Any], prices: Mapping[str, float]) -> dict[str, Any]:
        try:
            return RunPodSettings.from_dict(settings).cost()
        except DeploySettingsError:
            return {}

    def schema(self) -> dict[str, Any]:
        return {**runpod_settings_schema(), "credentials": bool(api_key()), "credentials_help": CREDENTIALS_HELP}

    async def aclose(self) -> None:
        if self._runs is not None:
            await self._runs.aclose()


class MissingKeyRunner:
    """The app's runs go to its RunPod endpoint, but this server has no RUNPOD_API_KEY: each run fails at once,
    saying so (rather than running somewhere the user did not choose)."""

    def __init__(self, on_update: UpdateCallback, name: str) -> None:
        self._on_update = on_update
        self.name = name
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, request: RunRequest, *, earlier_losses: Sequence[str] = ()) -> int | None:
        task = asyncio.get_running_loop().create_task(self._on_update(RunUpdate(
            request.run_id, "failed", worker=self.name, error=run_error(
                "remote_error", f"This app's runs go to its RunPod endpoint, but the server has no {KEY_ENV}. "
                                f"{CREDENTIALS_HELP} Or switch the app's runtime to local."))))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def cancel(self, run_id: str) -> CancelOutcome:
        return "not_found"

    def position(self, run_id: str) -> int | None:
        return None

    def queued_count(self) -> int:
        return 0

    def running(self) -> dict[str, str]:
        return {}
