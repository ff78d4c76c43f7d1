"""What a user sets for a RunPod serverless deployment: typed, validated against RunPod's limits, each with a
one-line help and its cost consequence, plus an hourly price table per GPU pool for estimates.

Most of these settings live on the endpoint, not in the image: deploy sends them through RunPod's REST API v2
(`endpoint_fields()`, `template_fields()`). Everything is checked here first, so a bad value is refused with what is
allowed before an image is built or an API called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from runtimes.serverless.settings import HOURS_PER_MONTH, DeploySettingsError, FieldInfo, as_bool, as_int

__all__ = ["RUNPOD_FIELD_INFO", "RUNPOD_GPU_POOLS", "RUNPOD_GPU_PRICES", "DeploySettingsError", "RunPodSettings",
           "runpod_settings_schema"]


@dataclass(frozen=True)
class GpuPool:
    """A RunPod GPU pool (REST v2 `gpu.pools`): the GPU models it holds and their memory."""

    gpus: str
    vram_gb: int


# RunPod's GPU pool ids (docs.runpod.io references/gpu-types), the smallest first.
RUNPOD_GPU_POOLS: dict[str, GpuPool] = {
    "AMPERE_16": GpuPool("RTX A4000, RTX A4500, RTX 4000 Ada, RTX 2000 Ada", 16),
    "AMPERE_24": GpuPool("L4, RTX A5000, RTX 3090", 24),
    "ADA_24": GpuPool("RTX 4090", 24),
    "ADA_32_PRO": GpuPool("RTX 5090", 32),
    "AMPERE_48": GpuPool("RTX A6000, A40", 48),
    "ADA_48_PRO": GpuPool("L40, L40S, RTX 6000 Ada", 48),
    "AMPERE_80": GpuPool("A100 80GB", 80),
    "ADA_80_PRO": GpuPool("H100 80GB", 80),
    "BLACKWELL_96": GpuPool("RTX PRO 6000", 96),
    "HOPPER_141": GpuPool("H200", 141),
    "BLACKWELL_180": GpuPool("B200", 180),
}
# USD per GPU-hour of a serverless (flex) worker, RunPod's per-second prices x 3600. Estimates only: prices change
# and active workers may be discounted; edit the table and its date together. The RTX 5090 pool had no published
# serverless price: its costs show as unknown.
RUNPOD_GPU_PRICES_CHECKED = "June 2026"
RUNPOD_GPU_PRICES_SOURCE = "https://www.runpod.io/pricing (serverless, flex workers)"
RUNPOD_GPU_PRICES: dict[str, float] = {
    "AMPERE_16": 0.58,
    "AMPERE_24": 0.68,
    "ADA_24": 1.12,
    "AMPERE_48": 1.22,
    "ADA_48_PRO": 1.91,
    "AMPERE_80": 2.74,
    "ADA_80_PRO": 4.18,
    "BLACKWELL_96": 4.00,
    "HOPPER_141": 5.58,
    "BLACKWELL_180": 8.64,
}
# RunPod's data center ids (REST API dataCenterIds).
RUNPOD_DATA_CENTERS = (
    "EU-RO-1", "CA-MTL-1", "EU-SE-1", "US-IL-1", "EUR-IS-1", "EU-CZ-1", "US-TX-3", "EUR-IS-2", "US-KS-2", "US-GA-2",
    "US-WA-1", "US-TX-1", "CA-MTL-3", "EU-NL-1", "US-TX-4", "US-CA-2", "US-NC-1", "OC-AU-1", "US-DE-1", "EUR-IS-3",
    "CA-MTL-2", "AP-JP-1", "EUR-NO-1", "EU-FR-1", "US-KS-3", "US-GA-1",
)
MAX_GPU_POOLS = 3  # RunPod's console takes up to three GPU types, in order of preference
GPU_MAX_COUNT = 8
IDLE_TIMEOUT_RANGE = (1, 3600)  # seconds (REST workers.idleTimeout)
EXECUTION_TIMEOUT_RANGE = (5, 7 * 24 * 3600)  # seconds: RunPod's 5 s to 7 days
CONTAINER_DISK_RANGE = (10, 500)  # GB
MODELS_PLACES = ("image", "volume")
QUEUE_DELAY_S = 4  # scale up when a job waits this long (RunPod's default)
# The CUDA the image's torch wheels bring (nvidia-cuda-runtime 13.0 in the engine's constraints): workers only on
# hosts whose driver runs it.
MIN_CUDA_VERSION = "13.0"
_VOLUME_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

RUNPOD_FIELD_INFO: dict[str, FieldInfo] = {
    "gpu_pools": FieldInfo("GPU pools", "RunPod GPU pools a worker may get, in order of preference (up to 3); "
                                        "each pool holds GPUs of one memory size.",
                           "Billed per second while a worker runs, at the hourly price of the pool it got."),
    "gpu_count": FieldInfo("GPUs per worker", "GPUs attached to each worker (1 for image workflows).",
                           "Multiplies the hourly price of every running worker."),
    "active_workers": FieldInfo("Active workers (warm pool)", "Workers kept running even with no traffic: no cold "
                                                              "start for the first runs.",
                                "Each active worker is billed around the clock at its GPU's hourly price."),
    "max_workers": FieldInfo("Max workers", "Upper limit on workers at once; extra jobs wait in the endpoint's "
                                            "queue.",
                             "Caps the worst-case hourly cost at max workers x GPU price."),
    "idle_timeout_s": FieldInfo("Idle timeout (s)", "Seconds a worker stays up after its last job before it shuts "
                                                    "down (1-3600).",
                                "Each idle worker is billed for this long after every burst."),
    "flashboot": FieldInfo("FlashBoot", "RunPod keeps a stopped worker's state to revive it faster than a fresh "
                                        "start.",
                           "Faster revivals bill fewer start-up seconds; FlashBoot itself costs nothing extra."),
    "execution_timeout_s": FieldInfo("Per-job timeout (s)", "A job running longer is stopped and reported as "
                                                            "timed out (5 s to 7 days).",
                                     "Bounds what one stuck job can cost."),
    "models": FieldInfo("Models", "Where the model files live: 'image' (baked into the image at build: larger "
                                  "image, no volume) or 'volume' (a network volume, fetched on first start).",
                        "An image with models is larger to push and to pull at each cold start; a volume is "
                        "billed per GB-month."),
    "network_volume_id": FieldInfo("Network volume", "Id of the RunPod network volume that holds the models "
                                                     "(needed with models 'volume'), mounted at /runpod-volume.",
                                   "About $0.07 per GB-month; it also ties the endpoint to the volume's data "
                                   "center, where GPUs may be scarcer."),
    "data_centers": FieldInfo("Data centers", "Run workers only in these data centers (e.g. EU-RO-1, US-TX-3). "
                                              "Empty = any.",
                              "Fewer data centers can mean longer waits for scarce GPUs; the price is the same."),
    "container_disk_gb": FieldInfo("Container disk (GB)", "Each worker's disk: room for what runs write (inputs, "
                                                          "outputs, caches) (10-500).",
                                   "About $0.10 per GB-month while workers exist; small next to GPU time."),
}


@dataclass(frozen=True)
class RunPodSettings:
    gpu_pools: tuple[str, ...] = ("AMPERE_24", "ADA_24")  # 24 GB: SD1.5/SDXL image workflows at a low price
    gpu_count: int = 1
    active_workers: int = 0  # scale to zero: no cost while idle
    max_workers: int = 3
    idle_timeout_s: int = 5
    flashboot: bool = True
    execution_timeout_s: int = 600
    models: str = "image"
    network_volume_id: str | None = None
    data_centers: tuple[str, ...] = ()
    container_disk_gb: int = 30

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None = None, *, base: RunPodSettings | None = None
                  ) -> RunPodSettings:
        """Settings from user input (JSON, CLI, a form), over `base` (defaults); every problem is reported at once.
        A list setting may be given as a list or as one comma-separated string."""
        raw = dict(raw or {})
        start = asdict(base or cls())
        known = set(start)
        problems = [f"unknown setting '{k}'; the settings are: {', '.join(sorted(known))}" for k in raw
                    if k not in known]
        values: dict[str, Any] = {**start, **{k: v for k, v in raw.items() if k in known}}
        for name in ("gpu_count", "active_workers", "max_workers", "idle_timeout_s", "execution_timeout_s",
                     "container_disk_gb"):
            coerced = as_int(values[name])
            if coerced is None:
                problems.append(f"{name}: {values[name]!r} is not a whole number")
            values[name] = start[name] if coerced is None else coerced
        coerced_bool = as_bool(values["flashboot"])
        if coerced_bool is None:
            problems.append(f"flashboot: {values['flashboot']!r} is not true or false")
        values["flashboot"] = start["flashboot"] if coerced_bool is None else coerced_bool
        for name in ("gpu_pools", "data_centers"):
            items = _as_names(values[name])
            if items is None:
                problems.append(f"{name}: {values[name]!r} is not a list of names")
            values[name] = tuple(start[name] if items is None else (item.upper() for item in items))
        volume = values["network_volume_id"]
        if isinstance(volume, str):
            values["network_volume_id"] = volume.strip() or None
        elif volume is not None:
            problems.append(f"network_volume_id: {volume!r} is not a volume id")
            values["network_volume_id"] = start["network_volume_id"]
        if isinstance(values["models"], str):
            values["models"] = values["models"].strip().lower()
        # A value that is not even of its type stands at its base value for the checks of the others, so every
        # problem is reported at once.
        settings = cls(**values)
        problems += settings.problems()
        if problems:
            raise DeploySettingsError(problems)
        return settings

    def validate(self) -> None:
        """Raise DeploySettingsError naming every setting RunPod would refuse, with what is allowed."""
        if problems := self.problems():
            raise DeploySettingsError(problems)

    def problems(self) -> list[str]:
        problems: list[str] = []
        pools = ", ".join(f"{pool} ({p.gpus}; {p.vram_gb} GB)" for pool, p in RUNPOD_GPU_POOLS.items())
        unknown = [pool for pool in self.gpu_pools if pool not in RUNPOD_GPU_POOLS]
        if not self.gpu_pools:
            problems.append(f"gpu_pools: give at least one GPU pool; the pools are: {pools}")
        elif unknown:
            problems.append(f"gpu_pools: unknown GPU pool {', '.join(map(repr, unknown))}; choose from: {pools}")
        elif len(self.gpu_pools) > MAX_GPU_POOLS:
            problems.append(f"gpu_pools: {len(self.gpu_pools)} pools given; RunPod takes up to {MAX_GPU_POOLS}, in "
                            "order of preference")
        elif len(set(self.gpu_pools)) != len(self.gpu_pools):
            problems.append(f"gpu_pools: {', '.join(self.gpu_pools)} names a pool twice; list each once")
        if not 1 <= self.gpu_count <= GPU_MAX_COUNT:
            problems.append(f"gpu_count: {self.gpu_count} is out of range; give 1 to {GPU_MAX_COUNT}")
        if self.max_workers < 1:
            problems.append(f"max_workers: {self.max_workers}; an endpoint needs at least 1 worker to run jobs")
        if self.active_workers < 0:
            problems.append(f"active_workers: {self.active_workers} is negative; give 0 (scale to zero) or more")
        elif self.active_workers > self.max_workers >= 1:
            problems.append(f"active_workers ({self.active_workers}) is greater than max_workers "
                            f"({self.max_workers}); raise max_workers or lower the warm pool")
        low, high = IDLE_TIMEOUT_RANGE
        if not low <= self.idle_timeout_s <= high:
            problems.append(f"idle_timeout_s: {self.idle_timeout_s} s is outside RunPod's range {low}-{high} s")
        low, high = EXECUTION_TIMEOUT_RANGE
        if not low <= self.execution_timeout_s <= high:
            problems.append(f"execution_timeout_s: {self.execution_timeout_s} s is outside RunPod's range "
                            f"{low}-{high} s (5 s to 7 days)")
        if self.models not in MODELS_PLACES:
            problems.append(f"models: {self.models!r} is not a place for models; give 'image' (baked into the "
                            "image) or 'volume' (a network volume)")
        if self.models == "volume" and self.network_volume_id is None:
            problems.append("network_volume_id: models 'volume' needs a network volume; give its id (RunPod console "
                            "> Storage), or set models to 'image'")
        elif self.network_volume_id is not None:
            if self.models == "image":
                problems.append(f"network_volume_id: {self.network_volume_id!r} is given but models is 'image'; set "
                                "models to 'volume' to read models from it, or leave the volume out")
            if not _VOLUME_ID.match(self.network_volume_id):
                problems.append(f"network_volume_id: {self.network_volume_id!r} is not a RunPod volume id (letters, "
                                "digits, '-' and '_')")
        unknown = [dc for dc in self.data_centers if dc not in RUNPOD_DATA_CENTERS]
        if unknown:
            problems.append(f"data_centers: unknown data center {', '.join(map(repr, unknown))}; choose from: "
                            f"{', '.join(RUNPOD_DATA_CENTERS)}")
        low, high = CONTAINER_DISK_RANGE
        if not low <= self.container_disk_gb <= high:
            problems.append(f"container_disk_gb: {self.container_disk_gb} GB is out of range; give {low} to {high}")
        return problems

    def endpoint_fields(self) -> dict[str, Any]:
        """The part of RunPod's REST v2 CreateEndpointRequest these settings decide."""
        out: dict[str, Any] = {
            "gpu": {"pools": list(self.gpu_pools), "count": self.gpu_count, "minCudaVersion": MIN_CUDA_VERSION},
            "workers": {"min": self.active_workers, "max": self.max_workers, "idleTimeout": self.idle_timeout_s},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": QUEUE_DELAY_S},
            "timeout": self.execution_timeout_s * 1000,
            "flashboot": "FLASHBOOT" if self.flashboot else "OFF",
        }
        if self.data_centers:
            out["dataCenterIds"] = list(self.data_centers)
        if self.models == "volume" and self.network_volume_id:
            out["networkVolumes"] = [self.network_volume_id]
        return out

    def template_fields(self) -> dict[str, Any]:
        """The part of RunPod's REST v2 CreateTemplateRequest these settings decide (no Jupyter or SSH: a worker)."""
        return {"disk": self.container_disk_gb, "serverless": True, "startJupyter": False, "startSsh": False}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gpu_pools"], out["data_centers"] = list(self.gpu_pools), list(self.data_centers)
        return out

    def cost(self, prices: Mapping[str, float] = RUNPOD_GPU_PRICES) -> dict[str, Any]:
        """What these settings cost in GPU time (USD), at `prices` (USD per GPU-hour per pool), taking the price of
        the first (preferred) pool; None where that pool has no price."""
        pool = self.gpu_pools[0]
        price = prices.get(pool)
        if price is None:
            hourly = warm = None
        else:
            hourly = price * self.gpu_count
            warm = hourly * self.active_workers
        return {
            "gpu_pool": pool,
            "gpu_hourly_usd": _usd(hourly),
            "warm_pool_hourly_usd": _usd(warm),
            "warm_pool_monthly_usd": _usd(None if warm is None else warm * HOURS_PER_MONTH),
            "max_hourly_usd": _usd(None if hourly is None else hourly * self.max_workers),
            "idle_tail_usd_per_burst": _usd(None if hourly is None else hourly * self.idle_timeout_s / 3600, 4),
            "note": f"GPU time at the price of {pool}, the preferred pool (a worker on another pool costs that "
                    "pool's price); an active worker is billed around the clock. Storage is billed on top.",
        }


def runpod_settings_schema() -> dict[str, Any]:
    """Fields, types, defaults, limits, help and cost notes: what a Deploy form renders."""
    defaults = RunPodSettings()
    limits: dict[str, dict[str, Any]] = {
        "gpu_pools": {"choices": list(RUNPOD_GPU_POOLS), "max_items": MAX_GPU_POOLS,
                      "pools": {pool: {"gpus": p.gpus, "vram_gb": p.vram_gb}
                                for pool, p in RUNPOD_GPU_POOLS.items()}},
        "gpu_count": {"min": 1, "max": GPU_MAX_COUNT},
        "active_workers": {"min": 0},
        "max_workers": {"min": 1},
        "idle_timeout_s": {"min": IDLE_TIMEOUT_RANGE[0], "max": IDLE_TIMEOUT_RANGE[1]},
        "execution_timeout_s": {"min": EXECUTION_TIMEOUT_RANGE[0], "max": EXECUTION_TIMEOUT_RANGE[1]},
        "models": {"choices": list(MODELS_PLACES)},
        "network_volume_id": {"nullable": True},
        "data_centers": {"choices": list(RUNPOD_DATA_CENTERS)},
        "container_disk_gb": {"min": CONTAINER_DISK_RANGE[0], "max": CONTAINER_DISK_RANGE[1]},
    }
    kinds = {"gpu_pools": "choices", "data_centers": "choices", "models": "choice", "network_volume_id": "text",
             "flashboot": "bool"}
    out = []
    for f in fields(RunPodSettings):
        info = RUNPOD_FIELD_INFO[f.name]
        default = getattr(defaults, f.name)
        out.append({"name": f.name, "type": kinds.get(f.name, "int"),
                    "default": list(default) if isinstance(default, tuple) else default, "label": info.label,
                    "help": info.help, "cost": info.cost, **limits.get(f.name, {})})
    return {"fields": out, "gpu_prices_usd_per_hour": RUNPOD_GPU_PRICES,
            "price_note": f"RunPod serverless prices per GPU-hour ({RUNPOD_GPU_PRICES_CHECKED}, "
                          f"{RUNPOD_GPU_PRICES_SOURCE}); estimates only."}


def _as_names(value: Any) -> list[str] | None:
    """A list of names from a list or tuple of strings, or one comma-separated string (a form, the command line)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    return None


def _usd(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
