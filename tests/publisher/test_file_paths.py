"""File names inside workflows stay inside the engine's folders: publishing refuses literals that leave them, and a
run's filename_prefix (a caller's value included) is confined under runs/<run id>/."""

from __future__ import annotations

import pytest

from publisher import NodeCatalog, isolate_outputs, load_workflow
from publisher.file_paths import confine, escapes_folder, path_problems


def _load_save(image: str, prefix: str = "out") -> dict[str, dict[str, object]]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}}}


@pytest.mark.parametrize("name", ["../../outside.png", "/etc/passwd", "\\\\host\\share\\x.png", "C:\\secret.png",
                                  "c:/x.png", "a/../../x.png", "..\\x.png", ".."])
def test_names_that_leave_their_folder(name: str) -> None:
    assert escapes_folder(name)


@pytest.mark.parametrize("name", ["example.png", "runs/abc/upload.png", "sub/dir/x.png", "..hidden.png",
                                  "%date:yyyy%/x", "a..b.png"])
def test_names_that_stay_in_their_folder(name: str) -> None:
    assert not escapes_folder(name)


@pytest.mark.parametrize(("image", "prefix", "where"), [
    ("../../outside.png", "out", ("node 1 (LoadImage)", "input 'image'", "input folder")),
    ("/home/someone/outside.png", "out", ("node 1 (LoadImage)", "input 'image'")),
    ("example.png", "../../elsewhere/x", ("node 3 (SaveImage)", "input 'filename_prefix'", "output folder")),
    ("example.png", "C:\\temp\\x", ("node 3 (SaveImage)", "input 'filename_prefix'")),
])
def test_publishing_refuses_literals_that_leave_the_engines_folders(catalog: NodeCatalog, image: str, prefix: str,
                                                                   where: tuple[str, ...]) -> None:
    (problem,) = path_problems(load_workflow(_load_save(image, prefix)), catalog)
    assert all(part in problem for part in where), problem


def test_every_file_widget_is_checked_the_engine_types_as_a_file_name(catalog: NodeCatalog) -> None:
    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "../../../models/x.safetensors"}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": "/tmp/m.png", "channel": "alpha"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "../../ is just text here", "clip": ["1", 1]}},
    }
    problems = path_problems(workflow, catalog)
    assert len(problems) == 2
    assert "ckpt_name" in problems[0] and "node 2 (LoadImageMask)" in problems[1]


def test_an_unknown_catalog_still_knows_the_engines_loaders() -> None:
    (problem,) = path_problems(_load_save("../x.png"), NodeCatalog({}))
    assert "node 1 (LoadImage)" in problem


def test_plain_names_publish(catalog: NodeCatalog) -> None:
    assert path_problems(_load_save("example.png", "portraits/%date:yyyy%"), catalog) == []


def test_a_long_value_is_shown_by_a_short_prefix(catalog: NodeCatalog) -> None:
    (problem,) = path_problems(_load_save("../" + "x" * 5000), catalog)
    assert len(problem) < 300


@pytest.mark.parametrize(("prefix", "confined"), [
    ("../other-run/x", "runs/r1/other-run/x"),
    ("../../../../etc/x", "runs/r1/etc/x"),
    ("/abs/x", "runs/r1/abs/x"),
    ("..\\..\\x", "runs/r1/x"),
    ("C:\\Windows\\x", "runs/r1/Windows/x"),
    ("./a/./b", "runs/r1/a/b"),
    ("..", "runs/r1/ComfyUI"),
    ("portraits/%date:yyyy%", "runs/r1/portraits/%date:yyyy%"),
])
def test_a_run_prefix_cannot_leave_the_runs_folder(catalog: NodeCatalog, prefix: str, confined: str) -> None:
    isolated = isolate_outputs(_load_save("example.png", prefix), catalog, "r1")
    assert isolated["3"]["inputs"]["filename_prefix"] == confined
    assert confine(prefix) == confined.removeprefix("runs/r1/")
