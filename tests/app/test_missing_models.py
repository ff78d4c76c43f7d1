"""A local run whose model file is missing is refused before it is recorded or reaches the engine, naming the file,
its folder, its source and the command that fetches it; publishing says the same as a warning."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from app.errors import explain
from app.runs.model_check import MissingModels, ModelFiles, loaded_models
from publisher import AppInput, AppOutput, AppSpec, ModelRef
from tests.support.paths import REPO
from tests.support.prompts import shipped
from tests.support.server import AppServer

MISSING = "not-here-v1.safetensors"
SOURCE = "hf://someone/models/sd/not-here-v1.safetensors@main"


def spec_loading(filename: str, folder: str = "checkpoints", *, class_type: str = "CheckpointLoaderSimple",
                 input_name: str = "ckpt_name", dynamic: bool = False, source: str | None = None) -> AppSpec:
    workflow = {"4": {"class_type": class_type, "inputs": {input_name: filename}}}
    inputs = (AppInput(node="4", input=input_name, type="choice", name="model"),) if dynamic else ()
    return AppSpec(workflow=workflow, inputs=inputs, outputs=(AppOutput("4", "image", "out"),),
                   models=(ModelRef("4", input_name, folder, filename, False, source),))


def no_engine() -> None:
    return None


def test_a_file_in_the_models_folder_passes_and_a_missing_one_is_named_with_its_folder_source_and_command(
        tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / "here.safetensors").write_bytes(b"x")
    files = ModelFiles(lambda: models, no_engine, " --data-dir /d")
    files.check(spec_loading("here.safetensors"), {}, "demo")

    with pytest.raises(MissingModels) as refused:
        files.check(spec_loading(MISSING, source=SOURCE), {}, "demo")
    assert refused.value.status_code == 409
    [problem] = refused.value.problems
    assert problem["file"] == MISSING and problem["folder"] == "checkpoints" and problem["source"] == SOURCE
    assert problem["fetch"] == "python launch.py --data-dir /d models pull demo"
    assert "models/checkpoints/" in problem["message"] and SOURCE in problem["message"]
    assert "node 4 (CheckpointLoaderSimple) input ckpt_name" in problem["message"]
    assert problem["fetch"] in refused.value.message
    # A form or the studio shows it as text: the message, then each problem's own message.
    assert explain(refused.value) == f"{refused.value.message}\n- {problem['message']}"


def test_without_a_known_source_the_command_asks_for_one(tmp_path: Path) -> None:
    files = ModelFiles(lambda: tmp_path, no_engine)
    with pytest.raises(MissingModels) as refused:
        files.check(spec_loading(MISSING), {}, "demo")
    [problem] = refused.value.problems
    assert problem["source"] is None
    assert problem["fetch"] == f"python launch.py models pull demo --source {MISSING}=hf://OWNER/REPO/PATH"
    assert "names no source" in problem["message"]


def test_the_folders_the_engine_reads_a_kind_from_all_count(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "t5.safetensors").write_bytes(b"x")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "sub").mkdir()
    (tmp_path / "unet" / "sub" / "flux.safetensors").write_bytes(b"x")
    files = ModelFiles(lambda: tmp_path, no_engine)
    files.check(spec_loading("t5.safetensors", "text_encoders", class_type="CLIPLoader", input_name="clip_name"),
                {}, "demo")
    files.check(spec_loading("sub/flux.safetensors", "diffusion_models", class_type="UNETLoader",
                             input_name="unet_name"), {}, "demo")


def test_a_name_that_climbs_out_of_the_folder_is_never_found_there(tmp_path: Path) -> None:
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "secret.safetensors").write_bytes(b"x")
    files = ModelFiles(lambda: tmp_path / "models", no_engine)
    with pytest.raises(MissingModels):
        files.check(spec_loading("../../secret.safetensors"), {}, "demo")


def test_a_published_input_that_picks_the_model_is_checked_with_the_runs_value(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "here.safetensors").write_bytes(b"x")
    spec = spec_loading(MISSING, dynamic=True, source=SOURCE)
    files = ModelFiles(lambda: tmp_path, no_engine)
    files.check(spec, {"model": "here.safetensors"}, "demo")  # the run loads the present one, not the default
    with pytest.raises(MissingModels) as refused:
        files.check(spec, {"model": "other.safetensors"}, "demo")
    [problem] = refused.value.problems
    assert problem["file"] == "other.safetensors" and problem["source"] is None  # the default's source is not its
    assert [m.filename for m in loaded_models(spec, {})] == [MISSING]


def test_a_file_not_on_disk_that_the_engine_lists_passes(tmp_path: Path, engine_url: str,
                                                          sd15_checkpoint: str) -> None:
    """Files the engine reads from elsewhere (a ComfyUI's extra_model_paths.yaml, an engine given by URL) count."""
    files = ModelFiles(lambda: tmp_path, lambda: engine_url)
    files.check(spec_loading(sd15_checkpoint), {}, "demo")
    with pytest.raises(MissingModels):
        files.check(spec_loading(MISSING), {}, "demo")


def test_with_an_engine_given_by_url_that_does_not_answer_nothing_is_refused_on_a_guess() -> None:
    files = ModelFiles(lambda: None, lambda: "http://127.0.0.1:9")  # nothing listens on port 9
    files.check(spec_loading(MISSING), {}, "demo")


# --- over HTTP: the real app and engine -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(shared_app: AppServer) -> AppServer:
    return shared_app


def txt2img_loading(checkpoint: str) -> dict:
    workflow = shipped("txt2img_sd15.json")
    workflow["4"]["inputs"]["ckpt_name"] = checkpoint
    workflow["5"]["inputs"].update(width=64, height=64)
    workflow["3"]["inputs"]["steps"] = 1
    return workflow


def test_publishing_warns_and_a_run_is_refused_before_it_is_recorded(http: httpx.Client, admin: dict[str, str],
                                                                     data_dir: Path) -> None:
    slug = f"missing-{uuid.uuid4().hex[:6]}"
    published = http.post("/api/apps", headers=admin, json={
        "name": "Missing checkpoint", "slug": slug, "workflow": txt2img_loading(MISSING),
        "inputs": [{"node": "6", "input": "text", "name": "prompt"}], "model_sources": {MISSING: SOURCE}})
    assert published.status_code == 201, published.text
    [warning] = published.json()["warnings"]
    assert MISSING in warning and "models/checkpoints/" in warning and SOURCE in warning
    # The session's engine is given by URL, without its models folder: the command fills that ComfyUI's own.
    assert f"python launch.py --data-dir {data_dir} models pull {slug} --models-dir " in warning
    fetch = http.post(f"/api/apps/{slug}/models/fetch", headers=admin)
    assert fetch.status_code == 409 and "--models-dir" in fetch.json()["detail"], fetch.text

    for path in (f"/api/apps/{slug}/run", f"/api/apps/{slug}/runs"):
        refused = http.post(path, headers=admin, json={"inputs": {"prompt": "a cat"}})
        assert refused.status_code == 409, refused.text
        [problem] = refused.json()["detail"]["problems"]
        assert (problem["node"], problem["input"], problem["file"]) == ("4", "ckpt_name", MISSING)
        assert problem["source"] == SOURCE and f"models pull {slug} --models-dir" in problem["fetch"]
    runs = http.get("/api/runs", params={"app": slug}, headers=admin)
    assert runs.status_code == 200 and runs.json()["runs"] == []


def test_an_app_whose_models_are_here_publishes_without_warnings_and_runs(http: httpx.Client,
                                                                          admin: dict[str, str],
                                                                          sd15_checkpoint: str) -> None:
    slug = f"present-{uuid.uuid4().hex[:6]}"
    published = http.post("/api/apps", headers=admin, json={
        "name": "Present checkpoint", "slug": slug, "workflow": txt2img_loading(sd15_checkpoint),
        "inputs": [{"node": "6", "input": "text", "name": "prompt"}]})
    assert published.status_code == 201, published.text
    assert published.json()["warnings"] == []
    run = http.post(f"/api/apps/{slug}/run", headers=admin, json={"inputs": {"prompt": "a cat"}})
    assert run.status_code == 200, run.text
    assert run.json()["status"] == "succeeded"


@pytest.fixture(scope="module")
def data_dir(server: AppServer) -> Path:
    return server.data_dir


def test_a_models_folder_is_given_only_for_an_engine_given_by_url(tmp_path: Path) -> None:
    refused = subprocess.run([sys.executable, "launch.py", "--data-dir", str(tmp_path), "--models-dir",
                              str(tmp_path / "models"), "--no-browser"], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "--models-dir goes with --comfyui-url" in refused.stderr
