"""A GPU's hourly price for the planner, from the deploy settings' table (runtimes/modal/host/settings.py:
GPU_PRICES, with its date and source): one table to edit, for the Deploy tab's costs and the planner alike."""

from __future__ import annotations

from runtimes.modal.host.settings import GPU_PRICES, GPU_PRICES_CHECKED, GPU_PRICES_SOURCE

# Older names Modal still accepts (its ComfyUI load test ran on "A10G", today's "A10").
ALIASES = {"A10G": "A10"}


def gpu_price(gpu: str) -> float:
    """A GPU's price per hour in USD, by name as Modal spells it (any case)."""
    name = ALIASES.get(gpu.upper(), gpu.upper())
    by_upper = {known.upper(): price for known, price in GPU_PRICES.items()}
    if name not in by_upper:
        raise ValueError(f"no price for GPU '{gpu}': pick one of {', '.join(GPU_PRICES)} (or pass --gpu-price; "
                         "the table is GPU_PRICES in runtimes/modal/host/settings.py)")
    return by_upper[name]


def prices_checked() -> str:
    return f"{GPU_PRICES_CHECKED}, {GPU_PRICES_SOURCE}"
