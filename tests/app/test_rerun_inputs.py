"""A run is run again with its values as applied (the drawn seed, the text a dynamic prompt made), but not with the
texts the run made for the workflow itself: those are no inputs of the app."""

from __future__ import annotations

from pathlib import Path

from app.runs.stored import rerun_inputs
from db.models import Run


def test_a_rerun_sends_the_applied_values_of_the_apps_inputs_only(tmp_path: Path) -> None:
    run = Run(id="r1", inputs={"prompt": "a {red|blue} fox", "seed": None},
              applied={"prompt": "a red fox", "seed": 42, "7.text": "stormy sea"})

    values, uploads = rerun_inputs(run, tmp_path)

    assert values == {"prompt": "a red fox", "seed": 42} and uploads == {}
