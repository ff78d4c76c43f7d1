"""`python launch.py deploy SLUG ...`: deploy an app version to Modal or RunPod from the command line (straight on
the DB, like `keys`), show the generated files, tear down, switch the app's runtime, or (RunPod) serve the
generated handler locally.

Only the options are defined at import: launch.py builds its parser before it starts the engines, and what the
command needs (the database, the provider SDKs) is imported when it runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtimes.modal.host.settings import FIELD_INFO
from runtimes.runpod.host.settings import RUNPOD_FIELD_INFO

if TYPE_CHECKING:
    from app.deploy.service import DeploymentService

TARGETS = ("modal", "runpod")


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# setting -> (option strings, argparse options); gpu_count is both targets' (the target's help is shown).
_MODAL_FLAGS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "gpu": (("--gpu",), {"metavar": "TYPE"}),
    "gpu_count": (("--gpu-count",), {"type": int, "metavar": "N"}),
    "min_containers": (("--min-containers",), {"type": int, "metavar": "N"}),
    "max_containers": (("--max-containers",), {"type": int, "metavar": "N"}),
    "buffer_containers": (("--buffer-containers",), {"type": int, "metavar": "N"}),
    "scaledown_window": (("--scaledown-window",), {"type": int, "metavar": "SECONDS"}),
    "max_inputs": (("--max-inputs",), {"type": int, "metavar": "N"}),
    "timeout_s": (("--timeout-s",), {"type": int, "metavar": "SECONDS"}),
    "region": (("--region",), {"metavar": "REGION"}),
    "memory_snapshot": (("--memory-snapshot",), {"action": argparse.BooleanOptionalAction}),
    "gpu_snapshot": (("--gpu-snapshot",), {"action": argparse.BooleanOptionalAction}),
}
_RUNPOD_FLAGS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "gpu_pools": (("--gpu-pools",), {"type": _csv, "metavar": "POOL,POOL"}),
    "gpu_count": _MODAL_FLAGS["gpu_count"],
    "active_workers": (("--active-workers",), {"type": int, "metavar": "N"}),
    "max_workers": (("--max-workers",), {"type": int, "metavar": "N"}),
    "idle_timeout_s": (("--idle-timeout", "--idle-timeout-s"), {"type": int, "metavar": "SECONDS"}),
    "flashboot": (("--flashboot",), {"action": argparse.BooleanOptionalAction}),
    "execution_timeout_s": (("--execution-timeout", "--execution-timeout-s"), {"type": int, "metavar": "SECONDS"}),
    "models": (("--models",), {"choices": ("image", "volume")}),
    "network_volume_id": (("--network-volume", "--network-volume-id"), {"metavar": "ID"}),
    "data_centers": (("--data-centers",), {"type": _csv, "metavar": "ID,ID"}),
    "container_disk_gb": (("--container-disk", "--container-disk-gb"), {"type": int, "metavar": "GB"}),
}


def add_deploy_command(subparsers: argparse._SubParsersAction) -> None:
    deploy = subparsers.add_parser("deploy", help="deploy an app version to Modal or RunPod (serverless GPUs)")
    deploy.add_argument("slug", help="the app to deploy")
    deploy.add_argument("--target", choices=TARGETS, default="modal", help="where to deploy")
    deploy.add_argument("--version", type=int, help="app version (default: the latest)")
    modal = deploy.add_argument_group("Modal settings (--target modal)")
    for name, (flags, options) in _MODAL_FLAGS.items():
        info = FIELD_INFO[name]
        modal.add_argument(*flags, dest=name, help=f"{info.help} {info.cost}", **options)
    runpod = deploy.add_argument_group("RunPod settings (--target runpod)",
                                       "--gpu-count above is RunPod's too: GPUs per worker.")
    for name, (flags, options) in _RUNPOD_FLAGS.items():
        if name in _MODAL_FLAGS:
            continue  # one flag for both targets
        info = RUNPOD_FIELD_INFO[name]
        runpod.add_argument(*flags, dest=name, help=f"{info.help} {info.cost}", **options)
    runpod.add_argument("--image", metavar="REGISTRY/NAME:TAG",
                        help="the worker image RunPod pulls (required for a RunPod deploy): built from the generated "
                             "files and pushed by you, or by --build")
    runpod.add_argument("--build", action="store_true",
                        help="build the image with the local docker (linux/amd64) and push it before deploying")
    runpod.add_argument("--serve-locally", action="store_true",
                        help="run the generated handler under the runpod SDK's local API server, against a local "
                             "engine (deploys nothing)")
    runpod.add_argument("--port", type=int, default=8000, help="with --serve-locally: the local API server's port")
    deploy.add_argument("--show-files", action="store_true", help="print the generated files; deploy nothing")
    deploy.add_argument("--teardown", action="store_true", help="stop the app's deployment on the target")
    deploy.add_argument("--runtime", choices=("local", *TARGETS),
                        help="after deploying (or alone): route the app's runs to a deployment or back to local "
                             "engines")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The target's settings given as flags; another target's is an error (it would be silently ignored)."""
    own, other = (_RUNPOD_FLAGS, _MODAL_FLAGS) if args.target == "runpod" else (_MODAL_FLAGS, _RUNPOD_FLAGS)
    stray = [flags[0] for name, (flags, _) in other.items() if name not in own and getattr(args, name) is not None]
    if args.target == "modal":
        stray += [flag for flag, given in (("--image", args.image), ("--build", args.build),
                                           ("--serve-locally", args.serve_locally)) if given]
    if stray:
        raise ValueError(f"{', '.join(stray)}: not a setting of --target {args.target}; see `deploy --help`")
    return {name: getattr(args, name) for name in own if getattr(args, name) is not None}


def run_deploy(args: argparse.Namespace, db_url: str) -> int:
    from app.auth.secrets import load_or_create_master_key
    from app.deploy.service import DeploymentService, DeployPlanError
    from db.migrate import upgrade_to_head
    from db.session import create_db_engine, make_session_factory
    from runtimes.serverless.errors import DeployError
    from runtimes.serverless.settings import DeploySettingsError

    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    data_dir = args.data_dir.expanduser().resolve()
    service = DeploymentService(data_dir=data_dir, sessions=make_session_factory(engine),
                                master_key=load_or_create_master_key(data_dir))
    try:
        if args.serve_locally:
            return _serve_locally(args, service, settings)
        return asyncio.run(_run(args, service, settings))
    except (DeploySettingsError, DeployPlanError, DeployError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, DeploySettingsError | DeployPlanError) else 1
    finally:
        engine.dispose()


async def _run(args: argparse.Namespace, service: DeploymentService, settings: dict[str, Any]) -> int:
    from app.deploy.service import DeployOptions
    from db import crud_deployments

    label = service.target(args.target).label
    if args.teardown:
        stopped = await service.teardown(args.slug, args.target)
        print(f"Stopped the {label} deployment of '{args.slug}' ({stopped} deployment record(s)); its runs go to the "
              "local engines.")
        return 0
    if args.show_files or args.runtime is None or settings or args.version is not None or args.image:
        plan = service.plan(args.slug, args.version, settings, args.target,
                            DeployOptions(image=args.image, build=args.build))
        if args.show_files:
            for path, text in plan.bundle.files.items():
                print(f"# ===== {path} =====")
                print(text)
            print("# ===== also shipped: the container side of runtimes/ and what it imports, publisher/ included "
                  "(Comfy Publisher's worker code) =====")
            for warning in plan.bundle.warnings:
                print(f"warning: model not downloaded: {warning}", file=sys.stderr)
            return 0
        print(f"Deploying '{args.slug}' version {plan.version.number} to {label} as {plan.app_name} "
              f"({_summary(plan.target, plan.settings)})", flush=True)
        deployment = await service.start(plan)
        queue = service.listen(deployment.id)
        while (line := await queue.get()) is not None:
            print(line, flush=True)
        await service.wait(deployment.id)
        with service.sessions() as session:
            final = crud_deployments.get_deployment(session, deployment_id=deployment.id)
            assert final is not None
            if final.status != "live":
                print(f"error: the deploy failed: {final.error}", file=sys.stderr)
                return 1
            print(f"Deployment {final.id} is live at {final.url}")
    if args.runtime is not None:
        chosen = service.set_runtime(args.slug, args.runtime)
        where = f"{service.target(chosen.provider).label} ({chosen.url})" if chosen else "the local engines"
        print(f"Runs of '{args.slug}' now go to {where}")
    return 0


def _summary(target: str, settings: Any) -> str:
    if target == "modal":
        return f"{settings.gpu_spec}; warm pool ${settings.cost()['warm_pool_hourly_usd']}/h"
    return (f"GPU pools {', '.join(settings.gpu_pools)}; workers {settings.active_workers}-{settings.max_workers}, "
            f"{settings.active_workers} always on")


def _serve_locally(args: argparse.Namespace, service: DeploymentService, settings: dict[str, Any]) -> int:
    from app.deploy import runpod_local
    from publisher import AppSpec
    from runtimes.engine.errors import EngineError
    from runtimes.engine.install import EngineInstallError
    from runtimes.engine.manager import EngineManager, EngineSettings

    if args.target != "runpod":
        raise ValueError("--serve-locally serves RunPod's handler: add --target runpod")
    if args.comfyui_url:
        raise ValueError("--serve-locally starts its own engine: leave out --comfyui-url (the bundled engine is "
                         "used, or --comfyui-path DIR)")
    plan = service.plan(args.slug, args.version, settings, "runpod")
    directory = service.write_bundle(plan)
    engine = EngineSettings(data_dir=service.data_dir, comfyui_path=args.comfyui_path,
                            comfyui_python=args.comfyui_python, engine_home=args.engine_home)
    try:
        install = EngineManager(engine).resolve_install()
    except (EngineError, EngineInstallError) as exc:
        raise ValueError(f"no local engine to serve with: {exc}") from None
    models_dir = engine.models_dir or engine.base_dir / "models"  # the local engines' models: fetched once
    return runpod_local.serve(directory, AppSpec.from_dict(plan.version.spec), install,
                              Path(service.data_dir) / "runpod-local" / args.slug, models_dir,
                              host="127.0.0.1", port=args.port)
