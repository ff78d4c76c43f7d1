"""The studio's pure helpers: table rows <-> publish inputs, version changes, snippets, the login cookie."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from app.auth.web import WebAuth
from app.settings import parse_credentials
from app.studio.share import open_tunnel
from app.studio.snippets import snippets
from app.studio.summary import describe_changes, editor_differences_markdown, rows_to_inputs, warnings_markdown
from publisher import AppInput, AppSpec

SPEC = AppSpec(workflow={"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}},
               inputs=(AppInput(node="1", input="width", type="int", name="width", label="Width", default=64),
                       AppInput(node="6", input="text", type="text", name="prompt", default="it's a cat")),
               outputs=())


def test_ticked_rows_become_inputs_with_typed_values() -> None:
    rows = [[True, "Width", "128", "8", "512", "", "int", "1", "width", ""],
            [False, "Height", "64", "", "", "", "int", "1", "height", ""],
            [True, "Sampler", "euler", "", "", "euler | dpmpp_2m", "choice", "3", "sampler_name", ""]]
    inputs, problems = rows_to_inputs(rows)
    assert problems == []
    assert inputs == [{"node": "1", "input": "width", "label": "Width", "default": 128, "min": 8, "max": 512},
                      {"node": "3", "input": "sampler_name", "label": "Sampler", "default": "euler",
                       "choices": ["euler", "dpmpp_2m"]}]


def test_bad_cells_are_named_by_row_and_column() -> None:
    _, problems = rows_to_inputs([[True, "Width", "wide", "", "", "", "int", "1", "width", ""],
                                  [True, "Flag", "maybe", "", "", "", "bool", "2", "flag", ""]])
    assert problems == ["'Width' (node 1, input width): Default 'wide' is not valid: write a number",
                        "'Flag' (node 2, input flag): Default 'maybe' is not valid: write true or false"]


def test_a_text_rows_max_is_its_maximum_length() -> None:
    inputs, problems = rows_to_inputs([[True, "Prompt", "a cat", "", "500", "", "text", "6", "text", ""]])
    assert problems == [] and inputs == [{"node": "6", "input": "text", "label": "Prompt", "default": "a cat",
                                          "max_length": 500}]
    _, problems = rows_to_inputs([[True, "Prompt", "", "", "12.5", "", "text", "6", "text", ""],
                                  [True, "Prompt", "", "3", "", "", "text", "7", "text", ""]])
    assert problems == ["'Prompt' (node 6, input text): Max '12.5' is a text's maximum length: write a whole number",
                        "'Prompt' (node 7, input text): Min only applies to numbers (for a text, Max is its maximum "
                        "length); clear it"]


def test_changes_between_versions_name_inputs_and_nodes() -> None:
    new = AppSpec(workflow={"1": {"class_type": "EmptyImage", "inputs": {"width": 32}}},
                  inputs=(AppInput(node="1", input="width", type="int", name="width", label="Width", default=32),
                          AppInput(node="1", input="color", type="int", name="color")), outputs=())
    text = describe_changes(SPEC, new)
    assert "new input **color**" in text and "input **prompt** removed" in text
    assert "**width**: default 64 → 32" in text and "workflow nodes changed: 1" in text
    assert describe_changes(None, new) == ""


def test_snippets_are_valid_code_with_the_defaults(tmp_path: Path) -> None:
    code = snippets("http://127.0.0.1:7860", "demo", SPEC, public=False)
    for name in ("python (httpx)", "python (requests)"):
        tree = ast.parse(code[name])  # runs as pasted: valid Python
        assert any(isinstance(n, ast.Dict) for n in ast.walk(tree))
        assert "COMFY_PUBLISHER_KEY" in code[name]
    curl = code["curl"]
    body = curl.split("-d '", 1)[1].rsplit("'", 1)[0].replace("'\\''", "'")
    assert json.loads(body) == {"inputs": {"width": 64, "prompt": "it's a cat"}}
    assert "Bearer" not in snippets("http://h", "demo", SPEC, public=True)["javascript (fetch)"]


def test_credentials_and_session_cookies(tmp_path: Path) -> None:
    assert parse_credentials("ann:s3cret:x") == ("ann", "s3cret:x")
    with pytest.raises(ValueError, match="user:password"):
        parse_credentials("ann")
    auth = WebAuth(credentials=("ann", "pw"), secret=b"k" * 32, sessions=None)  # type: ignore[arg-type]
    assert auth.login("ann", "wrong", "") is None
    cookie = auth.login("ann", "pw", "")
    assert cookie is not None and auth.who({"comfy_publisher_session": cookie}).studio
    assert not auth.who({"comfy_publisher_session": cookie[:-4] + "AAAA"}).studio  # tampered
    assert auth.allowed("/studio/", {}) is False and auth.allowed("/api/apps", {}) is None


def test_share_without_network_fails_fast_and_says_so() -> None:
    said: list[str] = []
    assert open_tunnel(7860, say=said.append, probe=lambda: "api.gradio.app cannot be reached (timed out)") is None
    assert "no public link" in said[0] and "still work" in said[0]


def test_what_the_editor_queues_otherwise_is_listed_as_typed_and_cut_after_five() -> None:
    assert editor_differences_markdown([]) == ""
    found = [f"node {i} (KSampler) input 'cfg': {i} here, \"*{i}*\" in the editor" for i in range(7)]
    shown = editor_differences_markdown(found)
    assert "in 7 place(s)" in shown
    assert "- node 0 (KSampler) input 'cfg': 0 here, \"\\*0\\*\" in the editor" in shown  # no emphasis
    assert "node 4 " in shown and "node 5 " not in shown and "… and 2 more" in shown


def test_a_missing_node_type_says_which_pack_to_install_and_how() -> None:
    pinned = {"class_type": "FancyInvert", "nodes": ["2"],
              "pack": {"id": "comfyui-fancy", "version": "1.2.0", "source": "registry", "pin": "comfyui-fancy@1.2.0"}}
    unpinned = {"class_type": "GitBlur", "nodes": ["5"], "pack": None}
    text = warnings_markdown({"missing_node_types": [pinned, unpinned], "problems": []})
    assert "**FancyInvert** (nodes 2)" in text and "`python launch.py nodes install comfyui-fancy@1.2.0`" in text
    assert "**GitBlur** (nodes 5) is not installed on this engine: install the node pack that provides it" in text
