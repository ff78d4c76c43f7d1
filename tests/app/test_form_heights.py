"""The height ComfyUI's App Mode gave a widget travels to the published input (the API and the studio publish it)
and sizes the form: a text's box, an image's preview."""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.forms.components import IMAGE_HEIGHT_PX, TEXT_LINE_PX, make_field
from app.publish.service import PublishRequest, build_spec
from app.studio.summary import with_app_mode_heights
from publisher import AppInput, NodeCatalog
from tests.publisher.helpers import fixture_json

TXT2IMG = "ui_app_mode_txt2img.app.json"  # its prompt box is 160 px tall in App Mode


def test_publishing_an_app_mode_file_keeps_its_heights(object_info: dict[str, Any]) -> None:
    spec = build_spec(PublishRequest(name="heights", workflow=fixture_json(TXT2IMG)),
                      NodeCatalog.from_object_info(object_info))
    assert [(i.node, i.input, i.height) for i in spec.inputs][:2] == [("6", "text", 160), ("5", "width", None)]


def test_the_studio_table_keeps_app_modes_heights() -> None:
    analysis = {"inputs": [{"node": "6", "input": "text", "height": 160.0}, {"node": "5", "input": "width"}]}
    table = [{"node": "6", "input": "text", "label": "Prompt"}, {"node": "5", "input": "width", "label": None}]
    assert with_app_mode_heights(table, analysis) == [{**table[0], "height": 160.0}, table[1]]


def test_a_height_sizes_the_text_box_and_the_image_preview() -> None:
    with gr.Blocks():
        tall = make_field(AppInput(node="6", input="text", type="text", name="prompt", multiline=True, height=240))
        usual = make_field(AppInput(node="7", input="text", type="text", name="negative", multiline=True))
        photo = make_field(AppInput(node="1", input="image", type="image", name="photo", height=400))
        other = make_field(AppInput(node="2", input="image", type="image", name="other"))
    assert tall.component.lines == 240 // TEXT_LINE_PX > usual.component.lines
    assert tall.component.max_lines >= tall.component.lines
    assert (photo.component.height, other.component.height) == (400, IMAGE_HEIGHT_PX)
