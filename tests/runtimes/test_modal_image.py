"""What a generated Modal image installs, read from modal's own layer definitions (offline): the local engine's pins
on every pip install, each node pack at its pin, and app versions whose packs or model names cannot go in refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from publisher import AppSpec
from runtimes.engine.install import ENGINE_CONSTRAINTS
from runtimes.modal.host.generate import WORKER_REQUIREMENTS, generate
from runtimes.modal.host.packs import BundleInputError
from runtimes.modal.host.settings import DeploySettings
from tests.runtimes.modal_support import ImageLayer, demo_spec, image_layers, import_bundle, txt2img_spec

CONSTRAINTS = "/root/engine-constraints.txt"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
GIT_PACK = {"repo": "https://github.com/someone/ComfyUI-Tiny.git", "commit": COMMIT}
REGISTRY_PACK = {"registry": "comfyui-tiny-registry", "version": "1.4.2"}


def with_packs(spec: AppSpec, *packs: object) -> AppSpec:
    return replace(spec, custom_nodes=tuple(packs))  # type: ignore[arg-type]


def pins() -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in ENGINE_CONSTRAINTS.read_text().splitlines())
    return {canonicalize_name(name): version for name, version in (line.split("==") for line in lines if line)}


def runs(layers: list[ImageLayer]) -> list[str]:
    return [command for layer in layers for command in layer.commands if command.startswith("RUN ")]


def built(spec: AppSpec, tmp_path: Path) -> tuple[list[ImageLayer], list[ImageLayer]]:
    module = import_bundle(generate(spec, DeploySettings(), slug="tiny", version=1, title="Tiny"), tmp_path)
    return image_layers(module.image), image_layers(module.api_image)


def test_every_pip_install_of_both_images_holds_to_the_engines_pins(tmp_path: Path) -> None:
    for layers in built(txt2img_spec(), tmp_path):
        copied = [i for i, layer in enumerate(layers) if CONSTRAINTS in layer.files]
        assert copied and not layers[copied[0]].mount  # copied into a layer: build steps follow it
        assert layers[copied[0]].files[CONSTRAINTS].read_text() == ENGINE_CONSTRAINTS.read_text()
        ours = [layer for layer in layers[copied[0] + 1:] if any("pip install" in c for c in layer.commands)]
        assert ours
        for layer in ours:
            for command in layer.commands:
                if "pip install" in command and "--no-deps" not in command:  # the engine-code wheel has no deps
                    assert command.endswith(f"-c {CONSTRAINTS}"), command
        # modal refuses a build step above a mount layer at deploy time; the files it mounts come last.
        first_mount = next(i for i, layer in enumerate(layers) if layer.mount)
        assert all(layer.mount for layer in layers[first_mount:])


def test_the_worker_requirements_admit_the_pinned_versions() -> None:
    pinned = pins()
    for line in WORKER_REQUIREMENTS:
        requirement = Requirement(line)
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is None or requirement.specifier.contains(version), (line, version)


def test_each_pack_is_installed_at_its_pin_under_the_constraints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setenv("COMFY_REGISTRY_URL", "http://127.0.0.1:8765/")
    layers, api_layers = built(with_packs(demo_spec(), GIT_PACK, REGISTRY_PACK), tmp_path)
    commands = runs(layers)
    installer = "/root/pack_install.py"
    prefix = f"RUN python {installer} /root/comfy/custom_nodes {CONSTRAINTS} "
    assert prefix + f"ComfyUI-Tiny git {GIT_PACK['repo']} {COMMIT}" in commands
    assert prefix + "comfyui-tiny-registry registry comfyui-tiny-registry 1.4.2 http://127.0.0.1:8765" in commands
    shipped = next(layer.files[installer] for layer in layers if installer in layer.files)
    assert shipped.read_text() == (Path(__file__).parents[2] / "runtimes/serverless/pack_install.py").read_text()
    # The packs come after the engine's packages, so their requirements meet the pins already installed.
    engine = next(i for i, c in enumerate(commands) if "ComfyUI/requirements.txt" in c)
    assert all(i > engine for i, c in enumerate(commands) if installer in c)
    assert not [c for c in runs(api_layers) if installer in c]  # the endpoint runs no nodes


def test_an_app_without_packs_gets_no_pack_step(tmp_path: Path) -> None:
    layers, _ = built(demo_spec(), tmp_path)
    assert not [layer for layer in layers if "/root/pack_install.py" in layer.files]


@pytest.mark.parametrize(("entry", "says"), [
    ("https://github.com/a/b", "give exactly"),
    ({"repo": "https://github.com/a/b"}, "give exactly"),
    ({"repo": "https://github.com/a/b", "commit": COMMIT, "branch": "main"}, "give exactly"),
    ({"repo": "https://github.com/a/b", "commit": "0123456"}, "full 40-hex commit"),
    ({"repo": "https://github.com/a/b", "commit": "main"}, "full 40-hex commit"),
    ({"repo": "file:///home/me/pack", "commit": COMMIT}, "not reachable from Modal"),
    ({"repo": "https://github.com/a/b; rm -rf /", "commit": COMMIT}, "https:// git URL"),
    ({"registry": "../../etc", "version": "1.0.0"}, "a registry id has no '/'"),
    ({"registry": "comfyui tiny", "version": "1.0.0"}, "is not a Comfy Registry id"),
    ({"registry": "comfyui-tiny", "version": ">=1.0"}, "must be x.y.z"),
    ({"registry": "comfyui-tiny", "version": "latest"}, "must be x.y.z"),
])
def test_a_bad_pack_entry_is_refused_saying_what_to_give(entry: object, says: str) -> None:
    with pytest.raises(BundleInputError) as caught:
        generate(with_packs(demo_spec(), entry), DeploySettings(), slug="tiny", version=1, title="t")
    (problem,) = caught.value.problems
    assert problem.startswith("custom_nodes[0]") and says in problem


def test_every_bad_entry_is_reported_at_once_and_two_packs_cannot_share_a_folder() -> None:
    twin = {"repo": "https://gitlab.com/other/comfyui-tiny", "commit": COMMIT}
    spec = with_packs(demo_spec(), GIT_PACK, {"registry": "x"}, twin)
    with pytest.raises(BundleInputError) as caught:
        generate(spec, DeploySettings(), slug="tiny", version=1, title="t")
    first, second = caught.value.problems
    assert first.startswith("custom_nodes[1]")
    assert second.startswith("custom_nodes[2]") and "custom_nodes/comfyui-tiny" in second


@pytest.mark.parametrize("filename", ["../../../etc/passwd.safetensors", "/abs/model.safetensors",
                                      "sub/../../model.safetensors", "..\\model.safetensors"])
def test_a_model_name_that_would_leave_models_is_refused(filename: str) -> None:
    spec = txt2img_spec()
    spec = replace(spec, models=(replace(spec.models[0], filename=filename),))
    with pytest.raises(BundleInputError) as caught:
        generate(spec, DeploySettings(), slug="tiny", version=1, title="t")
    assert filename in caught.value.problems[0] and "models/" in caught.value.problems[0]


def test_a_model_in_a_sub_folder_is_kept_under_its_name(tmp_path: Path) -> None:
    spec = txt2img_spec()
    spec = replace(spec, models=(replace(spec.models[0], filename="SD1.5/tiny.safetensors"),))
    module = import_bundle(generate(spec, DeploySettings(), slug="tiny", version=1, title="t"), tmp_path)
    assert module.MODELS[0][:2] == ("checkpoints", "SD1.5/tiny.safetensors")
