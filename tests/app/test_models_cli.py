"""`python launch.py models pull FILE` and `models list`, end to end in a subprocess, against a loopback server that
speaks the Hugging Face Hub's download protocol (HF_ENDPOINT pointed at it, HF_HOME a tmp dir)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub_server import HubServer
from tests.support.paths import REPO
from tests.support.prompts import shipped

CONTENT = os.urandom(2_500_000)
HUB_URL = "https://huggingface.co/owner/models/resolve/main/sub/weights.safetensors?download=true"


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        server.add("owner/models", "sub/weights.safetensors", CONTENT)
        server.add("corp/gated", "g.safetensors", CONTENT, gated_tokens=frozenset({"hf_good"}))
        yield server


def ui_workflow(*, name: str = "fetched.safetensors", sha256: str | None = None) -> dict[str, Any]:
    """A UI-format file as the editor saves it: a checkpoint loader declaring where its file comes from."""
    entry = {"name": name, "url": HUB_URL, "directory": "checkpoints",
             **({"hash": sha256, "hash_type": "SHA256"} if sha256 else {})}
    return {"last_node_id": 4, "last_link_id": 0, "links": [], "version": 0.4, "nodes": [
        {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": [name],
         "properties": {"Node name for S&R": "CheckpointLoaderSimple", "models": [entry]},
         "inputs": [], "outputs": []},
        {"id": 5, "type": "LoraLoader", "mode": 4, "widgets_values": ["bypassed.safetensors", 1.0, 1.0],
         "inputs": [], "outputs": []}]}


def models_cli(data_dir: Path, hub: HubServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    environment.update(HF_ENDPOINT=hub.url, HF_HOME=str(data_dir.parent / "hf-home"), **env)
    return subprocess.run([sys.executable, "launch.py", "--data-dir", str(data_dir), "models", *args], cwd=REPO,
                          capture_output=True, text=True, env=environment, timeout=120)


def test_pull_fetches_a_ui_files_declared_model_under_its_name_then_skips_it(hub: HubServer,
                                                                            tmp_path: Path) -> None:
    workflow = tmp_path / "flow.json"
    workflow.write_text(json.dumps(ui_workflow(sha256=hashlib.sha256(CONTENT).hexdigest())))
    data = tmp_path / "data"
    first = models_cli(data, hub, "pull", str(workflow))
    assert first.returncode == 0, first.stdout + first.stderr
    assert (data / "comfyui" / "models" / "checkpoints" / "fetched.safetensors").read_bytes() == CONTENT
    assert "✓ checkpoints/fetched.safetensors (fetched" in first.stdout
    assert "bypassed" not in first.stdout  # a bypassed node's file is not needed
    assert "checkpoints/fetched.safetensors: 100% of 2.5 MB" in first.stderr  # the progress (no terminal: lines)
    again = models_cli(data, hub, "pull", str(workflow))
    assert again.returncode == 0 and "(present" in again.stdout
    assert len(hub.gets()) == 1
    listed = models_cli(data, hub, "list")
    assert listed.returncode == 0 and "checkpoints/fetched.safetensors" in listed.stdout


def test_pull_takes_a_source_from_the_command_line(hub: HubServer, tmp_path: Path) -> None:
    workflow = tmp_path / "api.json"
    workflow.write_text(json.dumps(shipped("txt2img_sd15.json")))  # API format: no sources of its own
    data = tmp_path / "data"
    without = models_cli(data, hub, "pull", str(workflow))
    assert without.returncode == 1
    assert "put it in models/checkpoints/v1-5-pruned-emaonly.safetensors" in without.stdout
    given = models_cli(data, hub, "pull", str(workflow), "--source",
                       "v1-5-pruned-emaonly.safetensors=hf://owner/models/sub/weights.safetensors")
    assert given.returncode == 0, given.stdout + given.stderr
    assert (data / "comfyui/models/checkpoints/v1-5-pruned-emaonly.safetensors").read_bytes() == CONTENT


def test_pull_says_what_failed_per_file(hub: HubServer, tmp_path: Path) -> None:
    workflow = tmp_path / "api.json"
    workflow.write_text(json.dumps(shipped("txt2img_sd15.json")))
    data = tmp_path / "data"
    gated = models_cli(data, hub, "pull", str(workflow), "--source",
                       "v1-5-pruned-emaonly.safetensors=hf://corp/gated/g.safetensors")
    assert gated.returncode == 1 and "is gated" in gated.stdout and "HF_TOKEN" in gated.stdout
    with_token = models_cli(data, hub, "pull", str(workflow), "--source",
                            "v1-5-pruned-emaonly.safetensors=hf://corp/gated/g.safetensors", HF_TOKEN="hf_good")
    assert with_token.returncode == 0, with_token.stdout + with_token.stderr
    assert "hf_good" not in with_token.stdout + with_token.stderr
    wrong = models_cli(data, hub, "pull", str(workflow), "--source", "other.safetensors=hf://a/b/c.safetensors")
    assert wrong.returncode == 1 and "'other.safetensors' is not a model file this workflow uses" in wrong.stderr
    malformed = models_cli(data, hub, "pull", str(workflow), "--source", "nothing")
    assert malformed.returncode == 1 and "write FILE=hf://" in malformed.stderr


def test_pull_of_an_unknown_app_names_it(hub: HubServer, tmp_path: Path) -> None:
    result = models_cli(tmp_path / "data", hub, "pull", "no-such-app")
    assert result.returncode == 1 and "No app 'no-such-app'" in result.stderr
