"""Fetching a model file with huggingface_hub's real client from a loopback server speaking the Hub's protocol."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtimes.engine.process import free_port
from runtimes.models.hub_fetch import ModelFetchError, fetch_model
from runtimes.models.store import list_models
from tests.support.hub_server import HubServer

MiB = 1024 * 1024
SMALL = os.urandom(3_000_000)
REPO = "owner/models"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add(REPO, "sub/weights.safetensors", SMALL, revisions=("main", "v1"))
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # never the developer's token or cache
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_IMPLICIT_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        yield server


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_a_file_lands_under_the_name_the_workflow_uses_with_progress(hub: HubServer, models: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    outcome = fetch_model(f"hf://{REPO}/sub/weights.safetensors@v1", models, "checkpoints", "mine.safetensors",
                          progress=lambda done, total: seen.append((done, total)))
    assert outcome.fetched and outcome.path == (models / "checkpoints" / "mine.safetensors").resolve()
    assert outcome.path.read_bytes() == SMALL
    assert seen[-1] == (len(SMALL), len(SMALL))
    assert [(m.folder, m.name) for m in list_models(models)] == [("checkpoints", "mine.safetensors")]
    assert not list((models / "checkpoints").glob("*.part"))


def test_a_cut_connection_resumes_with_a_range_request(hub: HubServer, models: Path) -> None:
    big = os.urandom(25 * MiB)
    hub.add(REPO, "big.safetensors", big)
    hub.cut_after = 15 * MiB  # after huggingface_hub wrote its first 10 MiB chunk
    outcome = fetch_model(f"hf://{REPO}/big.safetensors", models, "loras", "big.safetensors")
    assert outcome.path.read_bytes() == big
    assert [g.range for g in hub.gets()] == [None, f"bytes={10 * MiB}-"]


def test_a_partial_file_from_an_earlier_run_is_resumed(hub: HubServer, models: Path) -> None:
    part = models / "vae" / "v.safetensors.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(SMALL[:1_000_000])
    seen: list[tuple[int, int | None]] = []
    outcome = fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "vae", "v.safetensors",
                          progress=lambda done, total: seen.append((done, total)))
    assert outcome.path.read_bytes() == SMALL and not part.exists()
    assert [g.range for g in hub.gets()] == ["bytes=1000000-"]
    assert seen[0] == (1_000_000, len(SMALL))


def test_a_file_already_there_is_not_downloaded_again_unless_forced(hub: HubServer, models: Path) -> None:
    source = f"hf://{REPO}/sub/weights.safetensors"
    fetch_model(source, models, "checkpoints", "a.safetensors")
    again = fetch_model(source, models, "checkpoints", "a.safetensors")
    assert not again.fetched and len(hub.gets()) == 1
    assert fetch_model(source, models, "checkpoints", "a.safetensors", force=True).fetched
    assert len(hub.gets()) == 2


def test_a_file_there_with_other_bytes_is_fetched_again(hub: HubServer, models: Path) -> None:
    target = models / "checkpoints" / "a.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(bytes(len(SMALL)))  # same size, another content
    assert fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "a.safetensors").fetched
    assert target.read_bytes() == SMALL


@pytest.mark.parametrize(("source", "kind", "says"), [
    ("hf://nobody/nothing/x.safetensors", "repo_not_found", "no repository nobody/nothing"),
    (f"hf://{REPO}/missing.safetensors", "file_not_found", "'missing.safetensors'"),
    (f"hf://{REPO}/sub/weights.safetensors@v9", "revision_not_found", "'v9'"),
])
def test_what_the_hub_does_not_have_is_named(hub: HubServer, models: Path, source: str, kind: str,
                                             says: str) -> None:
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(source, models, "checkpoints", "x.safetensors")
    assert caught.value.kind == kind and says in str(caught.value)
    assert hub.gets() == [] and list_models(models) == []


def test_a_gated_repo_needs_a_token_then_serves_with_one(hub: HubServer, models: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add("corp/gated", "g.safetensors", SMALL, gated_tokens=frozenset({"hf_good"}))
    source = "hf://corp/gated/g.safetensors"
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(source, models, "checkpoints", "g.safetensors")
    assert caught.value.kind == "gated"
    assert "accept its terms" in str(caught.value) and "HF_TOKEN" in str(caught.value)
    monkeypatch.setenv("HF_TOKEN", "hf_other")
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(source, models, "checkpoints", "g.safetensors")
    assert caught.value.kind == "no_access" and "hf_other" not in str(caught.value)
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    assert fetch_model(source, models, "checkpoints", "g.safetensors").path.read_bytes() == SMALL
    assert all(r.authorized for r in hub.gets())


def test_a_download_whose_hash_differs_is_refused_and_removed(hub: HubServer, models: Path) -> None:
    hub.lying_etag = "0" * 64
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "h.safetensors")
    assert caught.value.kind == "hash_mismatch"
    assert not any((models / "checkpoints").iterdir())  # neither the file nor its .part


def test_a_declared_hash_other_than_the_hubs_is_refused_before_any_byte(hub: HubServer, models: Path) -> None:
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "h.safetensors",
                    sha256="ab" * 32)
    assert caught.value.kind == "hash_mismatch" and hub.gets() == []
    right = hashlib.sha256(SMALL).hexdigest().upper()  # the editor writes it in either case
    assert fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "h.safetensors",
                       sha256=right).fetched


def test_an_unreachable_hub_fails_at_once(hub: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "u.safetensors")
    assert caught.value.kind == "unreachable" and "cannot reach" in str(caught.value)


@pytest.mark.parametrize(("folder", "name"), [("checkpoints", "../../escape.safetensors"),
                                               ("..", "x.safetensors"), ("checkpoints", "/etc/x.safetensors"),
                                               ("unknown", "x.safetensors")])
def test_names_that_leave_the_models_folder_are_refused(hub: HubServer, models: Path, folder: str,
                                                        name: str) -> None:
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, folder, name)
    assert caught.value.kind == "bad_path" and hub.requests == []


def test_a_source_that_is_not_hf_is_refused(hub: HubServer, models: Path) -> None:
    with pytest.raises(ModelFetchError) as caught:
        fetch_model("https://example.com/x.safetensors", models, "checkpoints", "x.safetensors")
    assert caught.value.kind == "bad_source" and "hf://owner/repo" in str(caught.value)


def test_a_file_being_fetched_elsewhere_is_not_fetched_twice(hub: HubServer, models: Path) -> None:
    from filelock import FileLock

    from runtimes.models.store import LOCKS

    lock_file = models / LOCKS / "checkpoints" / "busy.safetensors.lock"
    lock_file.parent.mkdir(parents=True)
    with FileLock(str(lock_file)), pytest.raises(ModelFetchError) as caught:  # held as another process would
        fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "busy.safetensors")
    assert caught.value.kind == "busy" and hub.gets() == []
    assert fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "busy.safetensors").fetched


def test_a_file_already_there_stays_usable_offline(hub: HubServer, models: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "o.safetensors")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    outcome = fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "o.safetensors")
    assert not outcome.fetched and not outcome.verified
    with pytest.raises(ModelFetchError):  # --force means fetch: it cannot
        fetch_model(f"hf://{REPO}/sub/weights.safetensors", models, "checkpoints", "o.safetensors", force=True)


def test_a_checked_file_is_not_hashed_again_until_it_changes(hub: HubServer, models: Path) -> None:
    source = f"hf://{REPO}/sub/weights.safetensors"
    target = fetch_model(source, models, "checkpoints", "k.safetensors").path
    before = target.stat()
    target.write_bytes(bytes(len(SMALL)))  # other bytes, same size and time: the remembered check stands
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not fetch_model(source, models, "checkpoints", "k.safetensors").fetched
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1))  # touched: hashed again, fetched again
    assert fetch_model(source, models, "checkpoints", "k.safetensors").fetched
    assert target.read_bytes() == SMALL
