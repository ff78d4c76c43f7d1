"""What a deploy target (a serverless provider: Modal, RunPod) does that the others do not, as the
DeploymentService sees it. The service owns the shared life of a deployment (the record before any work, the
streamed log flushed to the database, live / failed, recover, teardown's record, the runtime switch); a target owns
its settings, its generated bundle, its preflight, the deploy steps, the teardown on the provider and the Runner of a
live deployment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from db.crud_apps import RunnableVersion
from db.models import App, AppVersion
from publisher import AppSpec
from runtimes.contract import Runner
from runtimes.planner.prices import PriceTable

Note = Callable[[str], Awaitable[None]]  # one line of the deploy log (the service redacts and stores it)


@dataclass(frozen=True)
class DeployOptions:
    """What a deploy takes besides the settings: RunPod's image (built and pushed by the user, or by `build`)."""

    image: str | None = None
    build: bool = False


@dataclass(frozen=True)
class Plan:
    """A validated deploy: the app version, the target's settings and generated bundle, the prices planned with."""

    target: str  # "modal" | "runpod": the deployment's provider
    app: App
    version: AppVersion
    settings: Any  # the target's settings (DeploySettings, RunPodSettings): to_dict(), cost(prices)
    bundle: Any  # the target's bundle: files, warnings, write(directory)
    prices: PriceTable  # the GPU prices in force when planned (Modal's table; RunPod prices its own pools)
    app_name: str  # the name of the app (Modal) or of the template and endpoint (RunPod) on the provider
    options: DeployOptions = field(default_factory=DeployOptions)


class DeployTarget(Protocol):
    name: str  # the provider recorded on the deployment
    label: str  # for people: "Modal", "RunPod"
    recover_hint: str  # after a restart cut a deploy short: how to check on the provider

    def settings(self, raw: Mapping[str, Any] | None) -> Any:
        """The target's settings from user input (DeploySettingsError names every bad one)."""
        ...

    def generate(self, spec: AppSpec, settings: Any, *, slug: str, version: int, title: str,
                 prices: PriceTable) -> tuple[Any, str]:
        """The bundle and the provider-side name."""
        ...

    def check(self, options: DeployOptions) -> None:
        """Refuse options the deploy cannot go on with (DeploySettingsError, naming the option)."""
        ...

    async def preflight(self, plan: Plan, directory: Path) -> None:
        """Fail within seconds, before anything is recorded (a DeployError saying what to do)."""
        ...

    async def deploy(self, plan: Plan, directory: Path, note: Note) -> str:
        """The provider's deploy steps, each noted in the log; returns the live deployment's URL."""
        ...

    async def teardown(self, slug: str) -> str:
        """Stop the app's deployment on the provider; returns its provider-side name."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Values never to show in a deploy log (keys, tokens)."""
        ...

    def runner(self, version: RunnableVersion) -> Runner | None:
        """The Runner of a live deployment serving `version` (None: the local engines run it)."""
        ...

    def cost(self, settings: Mapping[str, Any], prices: Mapping[str, float]) -> dict[str, Any]:
        """A recorded deployment's cost estimate ({} when its settings no longer read)."""
        ...

    def schema(self) -> dict[str, Any]:
        """Every setting (GET /api/deploy/settings?target=...) and whether credentials are configured."""
        ...

    async def aclose(self) -> None: ...


def redact(line: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:  # a one-letter "secret" would blank the log
            line = line.replace(secret, "***")
    return line
