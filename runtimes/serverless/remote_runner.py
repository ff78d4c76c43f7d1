"""The `Runner` of one serverless deployment (a Modal endpoint, a RunPod endpoint): runs go straight to it, since
the provider queues them and retries lost workers itself, so none wait here. What sends and follows the runs (the
target's `runs`, one per provider, shared by all its deployments) is the provider's own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from runtimes.contract import CancelOutcome, RunRequest


class NamedTarget(Protocol):
    @property
    def name(self) -> str: ...  # shown as the run's worker, e.g. "modal:comfy-publisher-demo"


T = TypeVar("T", bound=NamedTarget)


class TargetRuns(Protocol[T]):
    def submit(self, request: RunRequest, target: T) -> None: ...

    async def cancel(self, run_id: str) -> CancelOutcome: ...

    def running(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class RemoteRunner(Generic[T]):
    runs: TargetRuns[T]
    target: T

    def submit(self, request: RunRequest, *, earlier_losses: Sequence[str] = ()) -> int | None:
        self.runs.submit(request, self.target)
        return None

    async def cancel(self, run_id: str) -> CancelOutcome:
        return await self.runs.cancel(run_id)

    def position(self, run_id: str) -> int | None:
        return None

    def queued_count(self) -> int:
        return 0

    def running(self) -> dict[str, str]:
        return {run_id: worker for run_id, worker in self.runs.running().items() if worker == self.target.name}
