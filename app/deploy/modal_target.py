"""Modal as a deploy target: settings (DeploySettings), the generated modal_app.py bundle, Modal's preflight,
the secrets and `modal deploy`, teardown, and runs sent to the deployment's endpoint (RemoteRuns).

The endpoint key is derived from the server's master key (app/auth/secrets.py): never stored, never logged; it
reaches Modal only inside a modal.Secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.auth.secrets import derive_secret
from app.deploy.target import DeployOptions, Note, Plan
from db.crud_apps import RunnableVersion
from publisher import AppSpec
from runtimes.contract import Runner, UpdateCallback
from runtimes.modal.host import deploy as modal_deploy
from runtimes.modal.host.generate import HF_SECRET_NAME, Bundle, generate, modal_names
from runtimes.modal.host.runner import RemoteRuns, RemoteTarget
from runtimes.modal.host.settings import DeploySettings, DeploySettingsError, settings_schema
from runtimes.planner.prices import PriceTable

CREDENTIALS_HELP = ("Modal's usual config: `modal token new` (~/.modal.toml) or MODAL_TOKEN_ID and "
                    "MODAL_TOKEN_SECRET in the server's environment.")


def endpoint_key_of(master_key: bytes, slug: str) -> str:
    """The key an app's deployment endpoint takes (kept only in its Modal secret; derived again when needed)."""
    return derive_secret(master_key, f"modal-endpoint:{slug}")


class ModalDeployTarget:
    name = "modal"
    label = "Modal"
    recover_hint = "check `modal app list`"

    def __init__(self, master_key: bytes, on_update: UpdateCallback | None = None) -> None:
        """`on_update`: where runs sent to deployments report (the server's; the command line runs none)."""
        self._master = master_key
        self.remote = RemoteRuns(on_update=on_update) if on_update is not None else None

    def endpoint_key(self, slug: str) -> str:
        return endpoint_key_of(self._master, slug)

    def settings(self, raw: Mapping[str, Any] | None) -> DeploySettings:
        return DeploySettings.from_dict(raw)

    def generate(self, spec: AppSpec, settings: DeploySettings, *, slug: str, version: int, title: str,
                 prices: PriceTable) -> tuple[Bundle, str]:
        bundle = generate(spec, settings, slug=slug, version=version, title=title, gpu_prices=prices.usd_per_hour)
        return bundle, bundle.app_name

    def check(self, options: DeployOptions) -> None:
        problems = [f"{name}: RunPod only (Modal builds the image itself)" for name, value in
                    (("image", options.image), ("build", options.build)) if value]
        if problems:
            raise DeploySettingsError(problems)

    async def preflight(self, plan: Plan, directory: Path) -> None:
        await modal_deploy.preflight()

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (os.environ.get("HF_TOKEN"), os.environ.get("MODAL_TOKEN_SECRET")) if v)

    async def deploy(self, plan: Plan, directory: Path, note: Note) -> str:
        bundle: Bundle = plan.bundle
        key = self.endpoint_key(plan.app.slug)
        await note(f"Creating the secret {bundle.secret_name} (endpoint key)")
        await modal_deploy.ensure_secret(bundle.secret_name, {"COMFY_PUBLISHER_ENDPOINT_KEY": key})
        if "hf_secret" in bundle.modal_app:
            token = os.environ.get("HF_TOKEN")
            await note(f"Creating the secret {HF_SECRET_NAME} ({'with' if token else 'without'} HF_TOKEN)")
            await modal_deploy.ensure_secret(HF_SECRET_NAME, {"HF_TOKEN": token} if token else
                                             {"HF_HUB_DISABLE_TELEMETRY": "1"})
        await note(f"modal deploy {directory / 'modal_app.py'} --name {bundle.app_name}")
        run = modal_deploy.DeployRun(directory, bundle.app_name, redact=(key,))
        async for line in run.lines():
            await note(line)
        url = run.url or await modal_deploy.web_url(bundle.app_name)
        if not url:
            raise modal_deploy.DeployError("The deploy finished but Modal gave no endpoint URL.")
        return url

    async def teardown(self, slug: str) -> str:
        app_name = modal_names(slug)[0]
        await modal_deploy.teardown(app_name)
        return app_name

    def runner(self, version: RunnableVersion) -> Runner | None:
        if self.remote is None or not version.deployment_url:
            return None
        return self.remote.runner(RemoteTarget(name=f"modal:{version.deployment_app_name}",
                                               url=version.deployment_url, key=self.endpoint_key(version.slug)))

    def cost(self, settings: Mapping[str, Any], prices: Mapping[str, float]) -> dict[str, Any]:
        try:
            return DeploySettings.from_dict(settings).cost(prices)
        except DeploySettingsError:
            return {}

    def schema(self) -> dict[str, Any]:
        return {**settings_schema(), "credentials": modal_deploy.credentials_present(),
                "credentials_help": CREDENTIALS_HELP}

    async def aclose(self) -> None:
        if self.remote is not None:
            await self.remote.aclose()
