"""The GPU price table in force, with its date and source: the built-in one (runtimes/modal/host/settings.py:
GPU_PRICES, also the list of GPU types Modal offers), or a user's `<data_dir>/gpu_prices.json` whose prices override
it, e.g. {"checked": "2026-11-30", "source": "my invoice", "usd_per_hour": {"A10": 1.0}}. Loaded, checked and
saved (atomically) here: the plan CLI, the Deploy tab's plan and cost card all read the same table."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtimes.modal.host.settings import GPU_PRICES, GPU_PRICES_CHECKED, GPU_PRICES_SOURCE

FILE_NAME = "gpu_prices.json"
KEYS = ("checked", "source", "usd_per_hour")
# Older names Modal still accepts (its ComfyUI load test ran on "A10G", today's "A10").
ALIASES = {"A10G": "A10"}


class PriceTableError(ValueError):
    """A user's price table that cannot be used: the message names the file, what is wrong and how to fix it."""


@dataclass(frozen=True)
class PriceTable:
    usd_per_hour: Mapping[str, float]  # every GPU type Modal offers, in the built-in table's order
    checked: str  # when the prices were checked (a date, or "late 2025")
    source: str  # where they come from
    builtin: bool = True
    path: Path | None = field(default=None, compare=False)  # the user's file, when it is one

    def describe(self) -> str:
        """"2026-11-30, my invoice (/data/gpu_prices.json)": the date and source, for outputs and the studio."""
        where = f" ({self.path})" if self.path else ""
        return f"{self.checked}, {self.source}{where}"

    def price(self, gpu: str) -> float:
        """A GPU's price per hour in USD, by name as Modal spells it (any case, old aliases too)."""
        name = known_gpu(gpu)
        if name is None:
            raise ValueError(f"no price for GPU '{gpu}': pick one of {', '.join(GPU_PRICES)} (or pass --gpu-price)")
        return self.usd_per_hour[name]


BUILTIN = PriceTable(usd_per_hour=dict(GPU_PRICES), checked=GPU_PRICES_CHECKED, source=GPU_PRICES_SOURCE)


def known_gpu(name: str) -> str | None:
    """The built-in table's spelling of a GPU type (any case, aliases), or None when Modal offers no such GPU."""
    upper = str(name).strip().upper()
    upper = ALIASES.get(upper, upper)
    return next((known for known in GPU_PRICES if known.upper() == upper), None)


def checked_prices(raw: Any, where: str) -> dict[str, float]:
    """Known GPU types with finite prices > 0, spelled as the built-in table does; else PriceTableError."""
    if not isinstance(raw, Mapping):
        raise PriceTableError(f"{where}: \"usd_per_hour\" must be an object of GPU: USD per hour, e.g. "
                              '{"A10": 1.10}')
    prices: dict[str, float] = {}
    for gpu, value in raw.items():
        name = known_gpu(gpu)
        if name is None:
            raise PriceTableError(f"{where}: unknown GPU '{gpu}'; the table prices only the GPU types Modal offers: "
                                  f"{', '.join(GPU_PRICES)}. Rename or remove it.")
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number) or number <= 0:
            raise PriceTableError(f"{where}: the price of {name} is {json.dumps(value)}; it must be a number of USD "
                                  f"per hour above 0, e.g. {GPU_PRICES[name]}. Fix it, or remove {name} to use "
                                  "the built-in price.")
        prices[name] = float(number)
    return prices


def from_dict(data: Any, where: str, path: Path | None = None) -> PriceTable:
    """A user's table (the file's JSON), its prices over the built-in ones."""
    if not isinstance(data, Mapping):
        raise PriceTableError(f"{where}: expected an object like {{\"checked\": \"2026-11-30\", \"source\": \"...\", "
                              "\"usd_per_hour\": {\"A10\": 1.10}}")
    unknown = [key for key in data if key not in KEYS]
    if unknown:
        raise PriceTableError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
                              f"{', '.join(KEYS)}")
    for key in ("checked", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise PriceTableError(f"{where}: \"{key}\" must be a non-empty text ("
                                  + ("the date the prices were checked, e.g. \"2026-11-30\")" if key == "checked"
                                     else "where the prices come from, e.g. \"https://modal.com/pricing\")"))
    prices = checked_prices(data.get("usd_per_hour"), where)
    return PriceTable(usd_per_hour={**GPU_PRICES, **prices}, checked=data["checked"].strip(),
                      source=data["source"].strip(), builtin=False, path=path)


def load(path: Path) -> PriceTable:
    """A user's price file; PriceTableError naming the file when it cannot be read or is not a valid table."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceTableError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PriceTableError(f"{where}: not valid JSON ({exc}); fix it, or delete the file to use the built-in "
                              "prices") from None
    return from_dict(data, where, path=path)


def in_force(data_dir: Path) -> PriceTable:
    """The data dir's table when it has one, else the built-in one (PriceTableError when the file is bad)."""
    path = data_dir / FILE_NAME
    return load(path) if path.exists() else BUILTIN


def in_force_or_builtin(data_dir: Path) -> tuple[PriceTable, str | None]:
    """The table in force, or the built-in one with the reason when the data dir's file cannot be used (for pages
    and estimates that must show a price anyway, and the problem beside it)."""
    try:
        return in_force(data_dir), None
    except PriceTableError as exc:
        return BUILTIN, str(exc)


def save(data_dir: Path, usd_per_hour: Mapping[str, Any], source: str, checked: str | None = None) -> PriceTable:
    """Check and write the data dir's table (dated today unless `checked` says otherwise), atomically: a reader
    sees the old file or the new one, never half of one."""
    table = from_dict({"checked": checked or dt.date.today().isoformat(), "source": source,
                       "usd_per_hour": dict(usd_per_hour)}, "the new price table", path=data_dir / FILE_NAME)
    data_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"checked": table.checked, "source": table.source, "usd_per_hour": dict(table.usd_per_hour)},
                      indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=data_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
        os.replace(tmp, data_dir / FILE_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return table


def reset(data_dir: Path) -> PriceTable:
    """Back to the built-in table: the data dir's file is removed."""
    (data_dir / FILE_NAME).unlink(missing_ok=True)
    return BUILTIN


def gpu_price(gpu: str, table: PriceTable = BUILTIN) -> float:
    """A GPU's price per hour in USD from `table`, by name as Modal spells it (any case)."""
    return table.price(gpu)


def prices_checked(table: PriceTable = BUILTIN) -> str:
    return table.describe()
