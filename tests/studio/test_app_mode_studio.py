"""The Publish tab with a file made in ComfyUI's App Mode: its inputs ticked in its order, its outputs published."""

from __future__ import annotations

import json
from typing import Any

from app.publish import service as publishing
from app.publish.service import PublishInput, PublishRequest
from app.studio.summary import app_mode_outputs, candidate_rows, rows_to_inputs, summary_markdown
from publisher import NodeCatalog
from tests.support.paths import REPO

FIXTURES = REPO / "tests" / "publisher" / "fixtures"


def _analysis(object_info: dict[str, Any]) -> tuple[dict[str, Any], NodeCatalog]:
    catalog = NodeCatalog.from_object_info(object_info)
    ui = json.loads((FIXTURES / "ui_app_mode_outputs.app.json").read_text())
    return publishing.analyze(ui, catalog), catalog


def test_the_table_ticks_app_modes_inputs_in_order_and_the_draft_keeps_its_outputs(
        object_info: dict[str, Any]) -> None:
    found, catalog = _analysis(object_info)
    rows = candidate_rows(found)
    assert [(row[7], row[8]) for row in rows if row[0]] == [("1", "height"), ("1", "color"), ("1", "width")]
    assert "App Mode chose 3 input(s)" in summary_markdown(found)

    # What the tab publishes: the ticked rows, in the table's order, and App Mode's outputs.
    inputs, problems = rows_to_inputs(rows)
    assert problems == []
    spec = publishing.build_spec(PublishRequest(name="draft", workflow=found["workflow"],
                                                inputs=[PublishInput(**i) for i in inputs],
                                                outputs=app_mode_outputs(found)), catalog)
    assert [(i.node, i.input) for i in spec.inputs] == [("1", "height"), ("1", "color"), ("1", "width")]
    assert spec.output_nodes == ("7",)
