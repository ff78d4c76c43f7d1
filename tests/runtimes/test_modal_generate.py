"""Deploy settings and the generated modal_app.py, imported with the real `modal` package (no cloud)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import modal
import pytest

from runtimes.modal.host.generate import generate
from runtimes.modal.host.settings import GPU_PRICES, DeploySettings, DeploySettingsError, settings_schema
from tests.runtimes.modal_support import decorator_kwargs, demo_spec, import_bundle, txt2img_spec
from tests.support.paths import REPO


def test_defaults_are_valid_and_suit_an_image_workflow() -> None:
    settings = DeploySettings.from_dict({})
    assert (settings.gpu, settings.min_containers, settings.max_inputs, settings.memory_snapshot) == ("L4", 0, 1, True)
    assert settings.cost()["warm_pool_monthly_usd"] == 0


@pytest.mark.parametrize(("raw", "setting", "hint"), [
    ({"gpu": "GTX-1080"}, "gpu", "L4"),
    ({"min_containers": -1}, "min_containers", "negative"),
    ({"scaledown_window": 1}, "scaledown_window", "2-3600"),
    ({"scaledown_window": 4000}, "scaledown_window", "2-3600"),
    ({"max_inputs": 0}, "max_inputs", "at least 1"),
    ({"timeout_s": 0}, "timeout_s", "1-86400"),
    ({"min_containers": 5, "max_containers": 2}, "min_containers", "max_containers"),
    ({"gpu_snapshot": True, "memory_snapshot": False}, "gpu_snapshot", "memory_snapshot"),
    ({"gpu_count": "two"}, "gpu_count", "whole number"),
    ({"warm": 1}, "warm", "min_containers"),
])
def test_bad_settings_are_refused_naming_the_setting(raw: dict, setting: str, hint: str) -> None:
    with pytest.raises(DeploySettingsError) as caught:
        DeploySettings.from_dict(raw)
    (problem,) = caught.value.problems
    assert problem.startswith(setting) or f"'{setting}'" in problem
    assert hint in problem


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(DeploySettingsError) as caught:
        DeploySettings.from_dict({"gpu": "nope", "min_containers": -2, "max_inputs": 0})
    assert len(caught.value.problems) == 3


def test_schema_gives_every_field_its_default_help_and_cost() -> None:
    schema = settings_schema()
    names = [f["name"] for f in schema["fields"]]
    assert names[:3] == ["gpu", "gpu_count", "min_containers"]
    for field in schema["fields"]:
        assert field["help"] and field["cost"] and field["label"]
    gpu = next(f for f in schema["fields"] if f["name"] == "gpu")
    assert gpu["choices"] == list(GPU_PRICES) and gpu["default"] == "L4"
    warm = next(f for f in schema["fields"] if f["name"] == "min_containers")
    assert "around the clock" in warm["cost"]


def test_warm_pool_cost_follows_the_gpu_price() -> None:
    cost = DeploySettings(gpu="A100-80GB", min_containers=2).cost()
    assert cost["warm_pool_hourly_usd"] == pytest.approx(2 * GPU_PRICES["A100-80GB"])
    assert cost["warm_pool_monthly_usd"] == pytest.approx(2 * GPU_PRICES["A100-80GB"] * 730, rel=1e-3)


def test_generated_demo_app_imports_with_exactly_the_chosen_options(tmp_path: Path) -> None:
    settings = DeploySettings(gpu="A10", gpu_count=2, min_containers=1, max_containers=4, buffer_containers=2,
                              scaledown_window=120, max_inputs=3, timeout_s=900, region="eu")
    bundle = generate(demo_spec(), settings, slug="demo", version=3, title="Demo invert")
    module = import_bundle(bundle, tmp_path)
    assert isinstance(module.app, modal.App) and module.app.name == "comfy-publisher-demo"
    info = module.ComfyWorker._get_class_service_function().info()
    assert info.gpus == [("A10", 2)]
    assert info.timeout == 900
    assert info.concurrency_info.max_inputs == 3
    assert info.regions == ["eu"]
    assert info.method_names == ["run"]
    assert "/root/comfy/models" in info.volumes
    # min/max/buffer containers, scaledown and the snapshot flag are not exposed by modal offline: read the file.
    kwargs = decorator_kwargs(bundle.modal_app, "app.cls")
    assert {k: kwargs[k] for k in ("gpu", "min_containers", "max_containers", "buffer_containers",
                                   "scaledown_window", "timeout", "enable_memory_snapshot", "region")} == {
        "gpu": "A10:2", "min_containers": 1, "max_containers": 4, "buffer_containers": 2, "scaledown_window": 120,
        "timeout": 900, "enable_memory_snapshot": True, "region": "eu"}
    assert decorator_kwargs(bundle.modal_app, "modal.concurrent") == {"max_inputs": 3}
    assert "@modal.enter(snap=True)" in bundle.modal_app and "@modal.enter(snap=False)" in bundle.modal_app
    assert isinstance(module.api, modal.Function)
    assert "@modal.asgi_app()" in bundle.modal_app
    assert (tmp_path / "runtimes" / "execute.py").is_file() and (tmp_path / "app_spec.json").is_file()


def test_generated_txt2img_app_downloads_its_model_and_can_skip_the_snapshot(tmp_path: Path) -> None:
    settings = DeploySettings(memory_snapshot=False, max_containers=None)
    bundle = generate(txt2img_spec(), settings, slug="t2i", version=1, title="Tiny txt2img")
    module = import_bundle(bundle, tmp_path)
    assert module.MODELS == [("checkpoints", "sd15-random-tiny.safetensors", "Comfy-Org/stable-diffusion-v1-5-archive",
                              "v1-5-pruned-emaonly-fp16.safetensors", None, None)]
    kwargs = decorator_kwargs(bundle.modal_app, "app.cls")
    assert kwargs["enable_memory_snapshot"] is False and kwargs["max_containers"] is None
    assert "snap=True" not in bundle.modal_app and "@modal.enter()" in bundle.modal_app
    assert module.ComfyWorker._get_class_service_function().info().gpus == [("L4", 1)]
    assert bundle.warnings == []


def test_a_model_without_a_source_is_named_in_the_file(tmp_path: Path) -> None:
    spec = txt2img_spec()
    spec = type(spec)(**{**spec.__dict__, "models": (spec.models[0].__class__(**{**spec.models[0].__dict__,
                                                                                 "source": None}),)})
    bundle = generate(spec, DeploySettings(), slug="t2i", version=1, title="t")
    assert bundle.warnings and "sd15-random-tiny.safetensors" in bundle.warnings[0]
    assert "NOT DOWNLOADED" in bundle.modal_app
    import_bundle(bundle, tmp_path)


def test_bad_settings_generate_nothing() -> None:
    with pytest.raises(DeploySettingsError, match="gpu"):
        generate(demo_spec(), DeploySettings(gpu="NOT_A_GPU"), slug="demo", version=1, title="x")


# Imports the container side from the bundle alone: the project's own packages (installed editable) are taken off
# the import path first, so a module the container needs but the bundle lacks fails here as it would in the image.
_IMPORT_SHIPPED = """
import json, os, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(sys.argv[2])]
import runtimes.modal.container.endpoint, runtimes.modal.container.jobs, runtimes.modal.container.worker
print(json.dumps({name: module.__file__ for name, module in sys.modules.items()
                  if name.split(".")[0] in ("app", "db", "publisher", "runtimes")}))
"""


def test_the_bundle_ships_the_container_side_and_what_it_imports_only(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    generate(demo_spec(), DeploySettings(), slug="demo", version=1, title="Demo").write(bundle_dir)
    shipped = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}
    assert {"modal_app.py", "app_spec.json", "runtimes/modal/container/worker.py", "runtimes/serverless/wire.py",
            "runtimes/serverless/worker.py",
            "runtimes/contract.py", "runtimes/inputs.py", "publisher/apply.py", "runtimes/engine/lifeline.py",
            "runtimes/modal/container/snapshot_node/__init__.py"} <= shipped
    # The host side, the local pool and the web app stay on the user's machine.
    assert not [p for p in shipped if p.startswith(("runtimes/modal/host/", "app/", "db/"))]
    assert "runtimes/pool.py" not in shipped

    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", _IMPORT_SHIPPED, str(bundle_dir), str(REPO)], cwd=tmp_path, capture_output=True,
        text=True, check=True).stdout)
    assert "runtimes.modal.container.worker" in loaded
    assert all(Path(file).is_relative_to(bundle_dir) for file in loaded.values()), loaded
