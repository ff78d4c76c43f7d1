"""The Deploy tab's price table as typed: rows read back as GPU: price, empty rows skipped, a price typed as
text read as a number, anything else left for the table's check to name."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.studio.prices_panel import edited_prices, gpu_choices, info_md
from runtimes.planner import prices
from runtimes.planner.prices import PriceTableError


def test_the_edited_rows_are_saved_as_typed_and_checked(tmp_path: Path) -> None:
    rows = [["T4", 0.5], ["L4", "1.25"], ["", None], [None, ""]]
    assert edited_prices(rows) == {"T4": 0.5, "L4": 1.25}
    saved = prices.save(tmp_path, edited_prices(rows), source="edited in the studio")
    assert saved.price("L4") == 1.25
    assert ("L4 · $1.25/h", "L4") in gpu_choices(saved)
    assert "Your prices" in info_md(saved) and str(saved.path) in info_md(saved)
    with pytest.raises(PriceTableError, match="L4 is \"cheap\""):
        prices.save(tmp_path, edited_prices([["L4", "cheap"]]), source="edited in the studio")


def test_the_info_says_which_table_is_in_force_and_what_is_wrong() -> None:
    assert "Built-in prices" in info_md(prices.BUILTIN) and prices.BUILTIN.checked in info_md(prices.BUILTIN)
    problem = info_md(prices.BUILTIN, "/d/gpu_prices.json: not valid JSON")
    assert "cannot be used" in problem and "/d/gpu_prices.json" in problem
