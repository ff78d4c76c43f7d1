"""The engines' models folder (runtimes.models.store): where a file goes, folders the engine reads as one, what it
holds, and names that would leave it."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.models import ModelRef
from runtimes.models.needs import needed_models
from runtimes.models.store import ModelPathError, list_models, present_path, target_path


def test_a_file_in_a_folder_the_engine_reads_as_the_same_is_present(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "t5.safetensors").write_bytes(b"x")
    assert present_path(tmp_path, "text_encoders", "t5.safetensors") == (tmp_path / "clip/t5.safetensors").resolve()
    assert present_path(tmp_path, "checkpoints", "t5.safetensors") is None


def test_the_listing_holds_files_in_sub_folders_not_partial_downloads_or_placeholders(tmp_path: Path) -> None:
    for name in ("checkpoints/sd/a.safetensors", "checkpoints/b.safetensors.part", "checkpoints/put_checkpoints_here",
                 "loras/l.safetensors"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"12")
    assert [(m.folder, m.name, m.size) for m in list_models(tmp_path)] == [
        ("checkpoints", "sd/a.safetensors", 2), ("loras", "l.safetensors", 2)]


@pytest.mark.parametrize(("folder", "name"), [("checkpoints", "../x"), ("../x", "y"), ("checkpoints", "/abs"),
                                               ("checkpoints", "a\\..\\b"), ("", "x"), ("a/b", "x")])
def test_names_that_leave_their_folder_are_refused(tmp_path: Path, folder: str, name: str) -> None:
    with pytest.raises(ModelPathError):
        target_path(tmp_path, folder, name)


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "out").symlink_to(tmp_path)
    with pytest.raises(ModelPathError):
        target_path(tmp_path / "models", "loras", "out/x.safetensors")


def test_needs_are_one_per_file_with_their_nodes_and_a_hint(tmp_path: Path) -> None:
    refs = [ModelRef("1", "ckpt_name", "checkpoints", "a.safetensors", False),
            ModelRef("2", "ckpt_name", "checkpoints", "a.safetensors", False, "hf://o/r/a.safetensors"),
            ModelRef("3", "x", "unknown", "b.onnx", False)]
    needs = needed_models(refs, tmp_path, {"a.safetensors": "ab" * 32})
    assert [(n.key, n.nodes, n.source, n.sha256, n.present) for n in needs] == [
        ("checkpoints/a.safetensors", ("1", "2"), "hf://o/r/a.safetensors", "ab" * 32, False),
        ("unknown/b.onnx", ("3",), None, None, False)]
    assert "hf://o/r/a.safetensors" in needs[0].hint() and "custom node" in needs[1].hint()


def test_a_published_apps_needs_carry_the_hash_its_spec_keeps(tmp_path: Path) -> None:
    ref = ModelRef("1", "vae_name", "vae", "v.safetensors", False, "hf://o/r/v.safetensors", sha256="cd" * 32)
    [need] = needed_models([ref], tmp_path)
    assert need.sha256 == "cd" * 32  # so that `models pull SLUG` and the Apps tab check it
