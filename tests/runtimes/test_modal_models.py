"""The generated image's model step (fetch_models in modal_app.py), run in a fresh process as the image build runs
it, with the real huggingface_hub against a loopback Hub: stored under the workflow's name, checked against the
Hub's size and sha256, a file already there kept."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from runtimes.modal.host.generate import generate
from runtimes.modal.host.settings import DeploySettings
from tests.runtimes.modal_support import txt2img_spec
from tests.support.hub_server import HubServer

REPO_ID = "someone/tiny-models"
IN_REPO = "split_files/checkpoints/v1-5-pruned-emaonly-fp16.safetensors"
WORKFLOW_NAME = "sd15/tiny.safetensors"  # what the workflow calls it: not the repository's name
CONTENT = os.urandom(3000) * 7

RUN = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import modal_app
modal_app.fetch_models(Path(sys.argv[2]))
"""


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as running:
        yield running


def fetch(hub: HubServer, tmp_path: Path, declared: str | None = None) -> subprocess.CompletedProcess[str]:
    spec = txt2img_spec()
    ref = replace(spec.models[0], filename=WORKFLOW_NAME, source=f"hf://{REPO_ID}/{IN_REPO}", sha256=declared)
    bundle_dir = tmp_path / "bundle"
    generate(replace(spec, models=(ref,)), DeploySettings(), slug="t", version=1, title="t").write(bundle_dir)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_TOKEN", None)
    return subprocess.run([sys.executable, "-c", RUN, str(bundle_dir), str(tmp_path / "models")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_a_model_is_stored_under_the_workflows_name_and_checked(hub: HubServer, tmp_path: Path) -> None:
    hub.add(REPO_ID, IN_REPO, CONTENT)
    done = fetch(hub, tmp_path)
    assert done.returncode == 0, done.stderr
    stored = tmp_path / "models" / "checkpoints" / WORKFLOW_NAME
    assert len(hub.gets()) == 1
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(CONTENT).digest()
    assert [p.name for p in stored.parent.iterdir()] == ["tiny.safetensors"]  # no .part left


def test_a_download_whose_sha256_differs_from_the_hubs_is_not_stored(hub: HubServer, tmp_path: Path) -> None:
    corrupted = bytes([CONTENT[0] ^ 1]) + CONTENT[1:]
    hub.add(REPO_ID, IN_REPO, corrupted)
    sha = hub.lying_etag = hashlib.sha256(CONTENT).hexdigest()  # the Hub announces the right file's sha256
    done = fetch(hub, tmp_path)
    assert done.returncode != 0
    assert f"hf://{REPO_ID}/{IN_REPO}" in done.stderr and sha in done.stderr and "not stored" in done.stderr
    assert not list((tmp_path / "models").rglob("*.safetensors*"))


def test_a_file_already_there_at_the_hubs_size_is_kept(hub: HubServer, tmp_path: Path) -> None:
    hub.add(REPO_ID, IN_REPO, CONTENT)
    stored = tmp_path / "models" / "checkpoints" / WORKFLOW_NAME
    stored.parent.mkdir(parents=True)
    stored.write_bytes(CONTENT)
    done = fetch(hub, tmp_path)
    assert done.returncode == 0, done.stderr
    assert hub.gets() == []  # asked the Hub for the size only


def test_a_download_whose_sha256_differs_from_the_one_the_workflow_declares_is_not_stored(
        hub: HubServer, tmp_path: Path) -> None:
    hub.add(REPO_ID, IN_REPO, CONTENT)  # the Hub's own sha256 matches what it sends: only the declared one differs
    declared = hashlib.sha256(b"the file the workflow was made with").hexdigest()
    done = fetch(hub, tmp_path, declared)
    assert done.returncode != 0
    assert declared in done.stderr and "declared" in done.stderr and "not stored" in done.stderr
    assert not list((tmp_path / "models").rglob("*.safetensors*"))
    assert fetch(hub, tmp_path, hashlib.sha256(CONTENT).hexdigest()).returncode == 0  # the right one is stored
