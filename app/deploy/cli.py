"""`python launch.py deploy SLUG ...`: deploy an app version to Modal from the command line (straight on the DB,
like `keys`), show the generated files, tear down, or switch the app's runtime.

Only the options are defined at import: launch.py builds its parser before it starts the engines, and what the
command needs (the database, the modal SDK) is imported when it runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from runtimes.modal.host.settings import FIELD_INFO

if TYPE_CHECKING:
    from app.deploy.service import DeploymentService

_FLAGS: dict[str, dict[str, Any]] = {
    "gpu": {"metavar": "TYPE"},
    "gpu_count": {"type": int, "metavar": "N"},
    "min_containers": {"type": int, "metavar": "N"},
    "max_containers": {"type": int, "metavar": "N"},
    "buffer_containers": {"type": int, "metavar": "N"},
    "scaledown_window": {"type": int, "metavar": "SECONDS"},
    "max_inputs": {"type": int, "metavar": "N"},
    "timeout_s": {"type": int, "metavar": "SECONDS"},
    "region": {"metavar": "REGION"},
}


def add_deploy_command(subparsers: argparse._SubParsersAction) -> None:
    deploy = subparsers.add_parser("deploy", help="deploy an app version to Modal (serverless GPUs)")
    deploy.add_argument("slug", help="the app to deploy")
    deploy.add_argument("--version", type=int, help="app version (default: the latest)")
    for name, options in _FLAGS.items():
        info = FIELD_INFO[name]
        deploy.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{info.help} {info.cost}", **options)
    for name in ("memory_snapshot", "gpu_snapshot"):
        info = FIELD_INFO[name]
        deploy.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction,
                            help=f"{info.help} {info.cost}")
    deploy.add_argument("--show-files", action="store_true", help="print the generated files; deploy nothing")
    deploy.add_argument("--teardown", action="store_true", help="stop the app's Modal deployment")
    deploy.add_argument("--runtime", choices=("local", "modal"),
                        help="after deploying (or alone): route the app's runs to Modal or back to local engines")


def run_deploy(args: argparse.Namespace, db_url: str) -> int:
    from app.auth.secrets import load_or_create_master_key
    from app.deploy.service import DeploymentService, DeployPlanError
    from db.migrate import upgrade_to_head
    from db.session import create_db_engine, make_session_factory
    from runtimes.modal.host.deploy import DeployError
    from runtimes.modal.host.settings import DeploySettingsError

    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    service = DeploymentService(data_dir=args.data_dir.expanduser().resolve(),
                                sessions=make_session_factory(engine),
                                master_key=load_or_create_master_key(args.data_dir.expanduser().resolve()))
    try:
        return asyncio.run(_run(args, service))
    except (DeploySettingsError, DeployPlanError, DeployError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, DeploySettingsError | DeployPlanError) else 1
    finally:
        engine.dispose()


async def _run(args: argparse.Namespace, service: DeploymentService) -> int:
    from db import crud_deployments

    if args.teardown:
        stopped = await service.teardown(args.slug)
        print(f"Stopped the Modal app of '{args.slug}' ({stopped} deployment record(s)); its runs go to the local "
              "engines.")
        return 0
    settings = {name: getattr(args, name) for name in (*_FLAGS, "memory_snapshot", "gpu_snapshot")
                if getattr(args, name) is not None}
    if args.show_files or args.runtime is None or settings or args.version is not None:
        plan = service.plan(args.slug, args.version, settings)
        if args.show_files:
            for path, text in plan.bundle.files.items():
                print(f"# ===== {path} =====")
                print(text)
            print("# ===== also shipped: the container side of runtimes/ and what it imports, publisher/ included "
                  "(Comfy Publisher's worker code) =====")
            for warning in plan.bundle.warnings:
                print(f"warning: model not downloaded: {warning}", file=sys.stderr)
            return 0
        cost = plan.settings.cost()
        print(f"Deploying '{args.slug}' version {plan.version.number} to Modal as {plan.bundle.app_name} "
              f"({plan.settings.gpu_spec}; warm pool ${cost['warm_pool_hourly_usd']}/h)")
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
        print(f"Runs of '{args.slug}' now go to " + (f"Modal ({chosen.url})" if chosen else "the local engines"))
    return 0
