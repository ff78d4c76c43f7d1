"""What a user sets for a Modal deployment: typed, validated against Modal's limits, each with a one-line help
and its cost consequence, plus an hourly GPU price table for estimates.

Modal itself accepts some bad values offline (unknown GPU names, timeout 0, concurrency 0: see
shared notes/modal.md), so everything is checked here, before a file is generated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from runtimes.serverless.settings import HOURS_PER_MONTH, DeploySettingsError, FieldInfo, as_bool, as_int

# USD per GPU-hour, Modal's published list prices (modal.com/pricing, late 2025): the built-in table, and the GPU
# types a user's table (DATA_DIR/gpu_prices.json, runtimes/planner/prices.py) may price. Estimates only: the bill
# also counts CPU and memory, and prices change: edit the table and its date together.
GPU_PRICES_CHECKED = "late 2025"
GPU_PRICES_SOURCE = "https://modal.com/pricing"
GPU_PRICES: dict[str, float] = {
    "T4": 0.59,
    "L4": 0.80,
    "A10": 1.10,
    "L40S": 1.95,
    "A100-40GB": 2.10,
    "A100-80GB": 2.50,
    "RTX-PRO-6000": 3.03,
    "H100": 3.95,
    "H200": 4.54,
    "B200": 6.25,
}
GPU_MAX_COUNT = 8  # Modal's largest multi-GPU container
SCALEDOWN_RANGE = (2, 3600)  # seconds, enforced by modal at definition time
TIMEOUT_RANGE = (1, 24 * 3600)  # seconds, Modal's documented per-input limit
MAX_CONTAINERS_LIMIT = 1000
REGIONS = ("us", "eu", "ap", "us-east", "us-central", "us-west", "eu-west", "eu-north", "ap-northeast",
           "ap-southeast", "ap-south", "uk", "jp", "ca", "au")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+(-\d)?)?$")


FIELD_INFO: dict[str, FieldInfo] = {
    "gpu": FieldInfo("GPU type", "The GPU each container gets; bigger GPUs run larger models and run faster.",
                     "Billed per second while a container runs, at the GPU's hourly price."),
    "gpu_count": FieldInfo("GPUs per container", "GPUs attached to each container (1 for image workflows).",
                           "Multiplies the hourly price of every running container."),
    "min_containers": FieldInfo("Warm pool (min containers)",
                                "Containers kept running even with no traffic: no cold start for the first runs.",
                                "Each warm container costs its GPU's hourly price around the clock."),
    "max_containers": FieldInfo("Max containers", "Upper limit on containers at once; extra runs wait in Modal's "
                                                  "queue. Empty = no limit.",
                                "Caps the worst-case hourly cost at max containers x GPU price."),
    "buffer_containers": FieldInfo("Buffer containers", "Extra idle containers started while the app is busy, so "
                                                        "bursts do not wait for a cold start.",
                                   "Each buffer container is billed like a running one while the app is busy."),
    "scaledown_window": FieldInfo("Idle timeout (s)", "Seconds a container stays up after its last run before it "
                                                      "shuts down (2-3600).",
                                  "Each idle container is billed for this long after every burst."),
    "max_inputs": FieldInfo("Concurrent runs per container", "Runs one container accepts at once; ComfyUI runs "
                                                             "one prompt at a time, others wait in its queue.",
                            "Higher values use fewer containers (cheaper) but runs queue behind each other."),
    "timeout_s": FieldInfo("Per-run timeout (s)", "A run taking longer is stopped and reported as timed out "
                                                  "(1-86400).",
                           "Bounds what one stuck run can cost."),
    "memory_snapshot": FieldInfo("Memory snapshot", "Start ComfyUI once, snapshot the container's memory, restore "
                                                    "it at each cold start (about 10-15 s -> under 3 s).",
                                 "Shorter cold starts bill fewer seconds; snapshots themselves are free."),
    "gpu_snapshot": FieldInfo("GPU snapshot (alpha)", "Also snapshot GPU memory (Modal's experimental option); "
                                                      "needs the memory snapshot.",
                              "Fastest cold starts; experimental on Modal's side."),
    "region": FieldInfo("Region", "Run containers only in this region (e.g. us, eu, us-east). Empty = anywhere.",
                        "Pinning a region can raise prices and queueing for scarce GPUs."),
}


@dataclass(frozen=True)
class DeploySettings:
    gpu: str = "L4"  # 24 GB, enough for SD1.5/SDXL image workflows at a low price
    gpu_count: int = 1
    min_containers: int = 0  # scale to zero: no cost while idle
    max_containers: int | None = 10
    buffer_containers: int = 0
    scaledown_window: int = 300
    max_inputs: int = 1
    timeout_s: int = 600
    memory_snapshot: bool = True
    gpu_snapshot: bool = False
    region: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None = None, *, base: DeploySettings | None = None) -> DeploySettings:
        """Settings from user input (JSON, CLI), over `base` (defaults); every problem is reported at once."""
        raw = dict(raw or {})
        start = asdict(base or cls())
        known = set(start)
        problems = [f"unknown setting '{k}'; the settings are: {', '.join(sorted(known))}" for k in raw
                    if k not in known]
        values: dict[str, Any] = {**start, **{k: v for k, v in raw.items() if k in known}}
        for name in ("gpu_count", "min_containers", "buffer_containers", "scaledown_window", "max_inputs",
                     "timeout_s", "max_containers"):
            value = values[name]
            if name == "max_containers" and value in (None, ""):
                values[name] = None
                continue
            coerced = as_int(value)
            if coerced is None:
                problems.append(f"{name}: {value!r} is not a whole number")
            else:
                values[name] = coerced
        for name in ("memory_snapshot", "gpu_snapshot"):
            coerced_bool = as_bool(values[name])
            if coerced_bool is None:
                problems.append(f"{name}: {values[name]!r} is not true or false")
            else:
                values[name] = coerced_bool
        if isinstance(values["gpu"], str):
            values["gpu"] = values["gpu"].strip().upper()
        if isinstance(values["region"], str):
            values["region"] = values["region"].strip().lower() or None
        if problems:
            raise DeploySettingsError(problems)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        problems: list[str] = []
        if self.gpu not in GPU_PRICES:
            problems.append(f"gpu: unknown GPU type {self.gpu!r}; choose one of {', '.join(GPU_PRICES)}")
        if not 1 <= self.gpu_count <= GPU_MAX_COUNT:
            problems.append(f"gpu_count: {self.gpu_count} is out of range; give 1 to {GPU_MAX_COUNT}")
        if self.min_containers < 0:
            problems.append(f"min_containers: {self.min_containers} is negative; give 0 (scale to zero) or more")
        if self.buffer_containers < 0:
            problems.append(f"buffer_containers: {self.buffer_containers} is negative; give 0 or more")
        if self.max_containers is not None:
            if not 1 <= self.max_containers <= MAX_CONTAINERS_LIMIT:
                problems.append(f"max_containers: {self.max_containers} is out of range; give 1 to "
                                f"{MAX_CONTAINERS_LIMIT}, or leave it empty for no limit")
            elif self.min_containers > self.max_containers:
                problems.append(f"min_containers ({self.min_containers}) is greater than max_containers "
                                f"({self.max_containers}); raise max_containers or lower the warm pool")
        low, high = SCALEDOWN_RANGE
        if not low <= self.scaledown_window <= high:
            problems.append(f"scaledown_window: {self.scaledown_window} s is outside Modal's range {low}-{high} s")
        if self.max_inputs < 1:
            problems.append(f"max_inputs: {self.max_inputs}; a container must accept at least 1 run at a time")
        elif self.max_inputs > 100:
            problems.append(f"max_inputs: {self.max_inputs} is too many for one engine; give 1 to 100")
        low, high = TIMEOUT_RANGE
        if not low <= self.timeout_s <= high:
            problems.append(f"timeout_s: {self.timeout_s} s is outside Modal's range {low}-{high} s")
        if self.gpu_snapshot and not self.memory_snapshot:
            problems.append("gpu_snapshot needs memory_snapshot: turn memory_snapshot on, or gpu_snapshot off")
        if self.region is not None and not _REGION.match(self.region):
            problems.append(f"region: {self.region!r} is not a region name; e.g. {', '.join(REGIONS[:6])}")
        if problems:
            raise DeploySettingsError(problems)

    @property
    def gpu_spec(self) -> str:
        """Modal's gpu= string: "L4", or "L4:2" for two."""
        return self.gpu if self.gpu_count == 1 else f"{self.gpu}:{self.gpu_count}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cost(self, prices: Mapping[str, float] = GPU_PRICES) -> dict[str, Any]:
        """What these settings cost in GPU time (USD; CPU and memory come on top), at `prices` (USD per GPU-hour:
        the table in force, runtimes/planner/prices.py; the built-in one by default)."""
        hourly = prices.get(self.gpu, 0.0) * self.gpu_count
        warm = hourly * self.min_containers
        return {
            "gpu_hourly_usd": round(hourly, 2),
            "warm_pool_hourly_usd": round(warm, 2),
            "warm_pool_monthly_usd": round(warm * HOURS_PER_MONTH, 2),
            "max_hourly_usd": round(hourly * self.max_containers, 2) if self.max_containers else None,
            "idle_tail_usd_per_burst": round(hourly * self.scaledown_window / 3600, 4),
            "note": "GPU time only, at the price table's prices; a warm container costs its GPU's hourly price around "
                    "the clock.",
        }


def settings_schema() -> dict[str, Any]:
    """Fields, types, defaults, limits, help and cost notes: what a Deploy form renders."""
    defaults = DeploySettings()
    limits: dict[str, dict[str, Any]] = {
        "gpu": {"choices": list(GPU_PRICES)},
        "gpu_count": {"min": 1, "max": GPU_MAX_COUNT},
        "min_containers": {"min": 0},
        "max_containers": {"min": 1, "max": MAX_CONTAINERS_LIMIT, "nullable": True},
        "buffer_containers": {"min": 0},
        "scaledown_window": {"min": SCALEDOWN_RANGE[0], "max": SCALEDOWN_RANGE[1]},
        "max_inputs": {"min": 1, "max": 100},
        "timeout_s": {"min": TIMEOUT_RANGE[0], "max": TIMEOUT_RANGE[1]},
        "region": {"examples": list(REGIONS), "nullable": True},
    }
    out = []
    for f in fields(DeploySettings):
        info = FIELD_INFO[f.name]
        kind = {"gpu": "choice", "region": "text"}.get(f.name) or (
            "bool" if f.name.endswith("snapshot") else "int")
        out.append({"name": f.name, "type": kind, "default": getattr(defaults, f.name), "label": info.label,
                    "help": info.help, "cost": info.cost, **limits.get(f.name, {})})
    return {"fields": out, "gpu_prices_usd_per_hour": GPU_PRICES,
            "price_note": "Modal list prices per GPU-hour; estimates only (CPU and memory are billed on top)."}
