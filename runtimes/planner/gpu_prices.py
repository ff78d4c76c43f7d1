"""The GPU price table the planner costs containers with: gpu_prices.json beside this file (edit it; it says when
and where its prices were read)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PRICES_FILE = Path(__file__).with_name("gpu_prices.json")


@dataclass(frozen=True)
class PriceTable:
    checked: str
    source: str
    usd_per_hour: dict[str, float]

    def price_of(self, gpu: str) -> float:
        """A GPU's price per hour, by name as Modal spells it (any case)."""
        by_upper = {name.upper(): price for name, price in self.usd_per_hour.items()}
        if gpu.upper() not in by_upper:
            raise ValueError(f"no price for GPU '{gpu}': pick one of {', '.join(self.usd_per_hour)} "
                             f"(or pass --gpu-price, or add it to {PRICES_FILE})")
        return by_upper[gpu.upper()]


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        table = PriceTable(checked=str(raw["checked"]), source=str(raw["source"]),
                           usd_per_hour={str(k): float(v) for k, v in raw["usd_per_hour"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"the GPU price table {path} is unreadable ({exc}): it needs 'checked', 'source' and "
                         "'usd_per_hour' {GPU: dollars per hour}") from exc
    if any(price < 0 for price in table.usd_per_hour.values()):
        raise ValueError(f"the GPU price table {path} has a negative price")
    return table
