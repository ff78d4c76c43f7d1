"""The GPU price table in force: the built-in one, or a user's file over it, checked, dated and saved atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from runtimes.modal.host.settings import GPU_PRICES, DeploySettings
from runtimes.planner import prices
from runtimes.planner.prices import FILE_NAME, PriceTableError


def write(data_dir: Path, data: object) -> Path:
    path = data_dir / FILE_NAME
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_without_a_file_the_built_in_table_is_in_force(tmp_path: Path) -> None:
    table = prices.in_force(tmp_path)
    assert table.builtin and table.path is None
    assert dict(table.usd_per_hour) == GPU_PRICES
    assert table.checked in table.describe() and table.source in table.describe()


def test_a_users_file_overrides_prices_and_carries_its_own_date_and_source(tmp_path: Path) -> None:
    write(tmp_path, {"checked": "2026-11-30", "source": "my invoice", "usd_per_hour": {"a10g": 0.9, "H100": 3}})
    table = prices.in_force(tmp_path)
    assert not table.builtin and table.path == tmp_path / FILE_NAME
    assert table.price("A10") == 0.9 and table.price("h100") == 3.0  # the alias and any case name the same GPU
    assert table.price("T4") == GPU_PRICES["T4"]  # what the file leaves out keeps the built-in price
    assert list(table.usd_per_hour) == list(GPU_PRICES)  # no GPU type added
    assert table.describe().startswith("2026-11-30, my invoice")
    assert DeploySettings(gpu="A10", min_containers=1).cost(table.usd_per_hour)["gpu_hourly_usd"] == 0.9
    assert DeploySettings(gpu="A10", min_containers=1).cost()["gpu_hourly_usd"] == GPU_PRICES["A10"]


def test_an_unknown_gpu_is_refused_naming_it_and_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, {"checked": "2026-11-30", "source": "x", "usd_per_hour": {"RTX-9090": 1.0}})
    with pytest.raises(PriceTableError) as error:
        prices.in_force(tmp_path)
    message = str(error.value)
    assert str(tmp_path / FILE_NAME) in message and "RTX-9090" in message
    assert all(gpu in message for gpu in GPU_PRICES)


@pytest.mark.parametrize("value", [0, -1.5, "1.10", True, None, float("nan"), float("inf")])
def test_a_price_that_is_not_a_positive_finite_number_is_refused(tmp_path: Path, value: object) -> None:
    write(tmp_path, json.dumps({"checked": "2026-11-30", "source": "x", "usd_per_hour": {"L4": value}}))
    with pytest.raises(PriceTableError) as error:
        prices.in_force(tmp_path)
    message = str(error.value)
    assert str(tmp_path / FILE_NAME) in message and "L4" in message and "above 0" in message
    assert json.dumps(value) in message


@pytest.mark.parametrize(("text", "says"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected an object"),
    ('{"checked": "2026-11-30", "source": "x", "usd_per_hour": [1]}', "usd_per_hour"),
    ('{"source": "x", "usd_per_hour": {}}', '"checked" must be'),
    ('{"checked": "2026-11-30", "source": " ", "usd_per_hour": {}}', '"source" must be'),
    ('{"checked": "2026-11-30", "source": "x", "usd_per_hour": {}, "currency": "EUR"}', "'currency'"),
])
def test_a_corrupt_or_invalid_file_says_which_file_and_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    write(tmp_path, text)
    with pytest.raises(PriceTableError) as error:
        prices.in_force(tmp_path)
    assert str(tmp_path / FILE_NAME) in str(error.value) and says in str(error.value)


def test_save_writes_a_dated_table_atomically_and_reset_goes_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    saved = prices.save(data_dir, {**GPU_PRICES, "A10": 1.25}, source="edited in the studio")
    assert saved.checked == dt.date.today().isoformat() and not saved.builtin
    assert prices.in_force(data_dir) == saved
    on_disk = json.loads((data_dir / FILE_NAME).read_text())
    assert on_disk["usd_per_hour"]["A10"] == 1.25 and on_disk["source"] == "edited in the studio"
    assert os.listdir(data_dir) == [FILE_NAME]  # no temporary file left behind
    # A date given is kept (a table checked earlier and saved again).
    assert prices.save(data_dir, {"T4": 0.5}, source="s", checked="2026-01-15").checked == "2026-01-15"
    assert prices.in_force(data_dir).checked == "2026-01-15"
    assert prices.reset(data_dir).builtin and prices.in_force(data_dir).builtin
    assert not (data_dir / FILE_NAME).exists()


def test_a_bad_save_leaves_the_file_in_force_untouched(tmp_path: Path) -> None:
    good = prices.save(tmp_path, {"A10": 1.0}, source="mine", checked="2026-11-01")
    for bad in ({"A10": -1}, {"NOPE": 1.0}):
        with pytest.raises(PriceTableError):
            prices.save(tmp_path, bad, source="mine")
    assert prices.in_force(tmp_path) == good
    assert os.listdir(tmp_path) == [FILE_NAME]
