"""Command-line tasks beside serving: API keys (straight on the DB) and publishing (through a running server).

    python launch.py [--data-dir DIR] keys create NAME [--admin | --workflows]    # the key is the last line printed
    python launch.py [--data-dir DIR] keys list
    python launch.py [--data-dir DIR] keys revoke ID_OR_PREFIX
    python launch.py publish workflow.json --name NAME --input 6.text=prompt --input 3.seed [--public]
                     [--spec spec.json] [--output 9] [--url http://127.0.0.1:7860] [--key KEY]
    python launch.py [--data-dir DIR] deploy SLUG [--version N] [--gpu L4 ...] [--show-files] [--teardown]
    python launch.py [--data-dir DIR] deploy SLUG --target runpod --image REGISTRY/NAME:TAG [--build] [--show-files]
                     [--teardown] [--runtime runpod] [--serve-locally --port 8000]
    python launch.py [--data-dir DIR] models pull WORKFLOW_FILE|SLUG [--source FILE=hf://owner/repo/path[@rev]]...
                     [--force]
    python launch.py [--data-dir DIR] models list
    python launch.py install-extension --comfyui-path DIR [--app-url http://127.0.0.1:7860]
    python launch.py [--data-dir DIR] nodes install GIT_URL@COMMIT|REGISTRY_ID@VERSION | list | remove NAME
    python launch.py [--data-dir DIR] loadtest SLUG --users N --duration S (--out DIR | --export-locustfile PATH)
    python launch.py plan --exec-s 3.5 --overhead-s 0.9 --cold-start-s 15 --users 10 --think 1-5 --gpu A10G [--json]

launch.py builds its parser before it starts the engines: what a command needs is imported when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from app.deploy.cli import add_deploy_command
from app.loadtest.cli import add_loadtest_command
from app.models.cli import add_models_command
from app.packs.cli import add_nodes_command
from app.planner.cli import add_plan_command


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser("create", help="create a key; it is printed once, as the last line")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="may publish and manage apps (not only run them)")
    create.add_argument("--workflows", action="store_true",
                        help="may run any API-format workflow (the Comfy API v2's POST /api/v2/jobs)")
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key", help="the key's id or its prefix (as `keys list` shows)")

    publish = subparsers.add_parser("publish", help="publish a workflow through a running server")
    publish.add_argument("workflow", type=Path,
                         help="workflow JSON: API format (Export (API)) or the UI format ComfyUI saves")
    publish.add_argument("--name", help="app name (required unless the spec file has one)")
    publish.add_argument("--slug", help="URL name (default: from the name)")
    publish.add_argument("--description", default=None)
    publish.add_argument("--input", action="append", default=[], metavar="NODE.INPUT[=NAME]",
                         help="an input to make dynamic, e.g. 6.text=prompt or 3.seed (repeat; default: those "
                              "the file marks in ComfyUI's App Mode, else none)")
    publish.add_argument("--output", action="append", default=None, metavar="NODE",
                         help="output node to publish (repeat; default: those App Mode marks, else the save "
                              "nodes)")
    publish.add_argument("--spec", type=Path, help="JSON file with any of: name, slug, description, inputs "
                                                   "(list of {node, input, name, label, default, min, max, ...}), "
                                                   "outputs, public, timeout_s")
    publish.add_argument("--public", action="store_true", help="anyone may run it without a key")
    publish.add_argument("--url", default=os.environ.get("COMFY_PUBLISHER_URL", "http://127.0.0.1:7860"),
                         help="the running server")
    publish.add_argument("--key", default=os.environ.get("COMFY_PUBLISHER_API_KEY"),
                         help="an admin key (or set COMFY_PUBLISHER_API_KEY)")

    add_deploy_command(subparsers)
    add_models_command(subparsers)
    add_nodes_command(subparsers)
    add_plan_command(subparsers)
    add_loadtest_command(subparsers)

    extension = subparsers.add_parser("install-extension",
                                      help="add File > Publish… to the editor of your own ComfyUI")
    extension.add_argument("--comfyui-path", dest="extension_comfyui_path", type=Path, metavar="DIR",
                           help="your ComfyUI: the folder of its main.py (or ComfyUI Desktop's base folder)")
    extension.add_argument("--app-url", default=os.environ.get("COMFY_PUBLISHER_URL", "http://127.0.0.1:7860"),
                           help="where this app answers, as the editor's browser reaches it")


def run_command(args: argparse.Namespace, db_url: str) -> int:
    if args.command == "keys":
        return _keys(args, db_url)
    if args.command == "deploy":
        from app.deploy.cli import run_deploy

        return run_deploy(args, db_url)
    if args.command == "models":
        from app.models.cli import run_models

        return run_models(args, db_url)
    if args.command == "plan":
        from app.planner.cli import run_plan

        return run_plan(args)
    if args.command == "loadtest":
        from app.loadtest.cli import run_loadtest

        return run_loadtest(args)
    if args.command == "install-extension":
        return _install_extension(args)
    if args.command == "nodes":
        from app.packs.cli import run_nodes

        return run_nodes(args)
    return _publish(args)


def _keys(args: argparse.Namespace, db_url: str) -> int:
    from db import crud_keys
    from db.migrate import upgrade_to_head
    from db.session import create_db_engine, make_session_factory

    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    with make_session_factory(engine)() as session:
        if args.keys_action == "create":
            key, token = crud_keys.create_api_key(session, name=args.name, admin=args.admin,
                                                    workflows=args.workflows)
            session.commit()
            print(f"Created {'admin ' if key.admin else ''}key {key.id} '{key.name}' ({key.prefix}...). "
                  "It is shown only now; store it:")
            print(token)
        elif args.keys_action == "list":
            for key in crud_keys.list_api_keys(session):
                state = "revoked" if key.revoked_at else ("admin" if key.admin else
                                                         "workflows" if key.workflows else "run")
                print(f"{key.id:>4}  {key.prefix:<16} {state:<8} {key.name}")
        else:
            ident = args.key
            key = crud_keys.revoke_api_key(session, key_id=int(ident) if ident.isdigit() else None,
                                           prefix=None if ident.isdigit() else ident)
            if key is None:
                print(f"error: no API key '{ident}' (see `keys list`)", file=sys.stderr)
                return 1
            session.commit()
            print(f"Revoked key {key.id} '{key.name}' (a server running now refuses it within 2 s).")
    engine.dispose()
    return 0


def _install_extension(args: argparse.Namespace) -> int:
    from runtimes.engine.extension import ExtensionInstallError, custom_nodes_of, install_extension

    comfyui = args.extension_comfyui_path or args.comfyui_path
    if comfyui is None:
        print("error: name your ComfyUI: install-extension --comfyui-path DIR (the folder of its main.py)",
              file=sys.stderr)
        return 2
    try:
        installed = install_extension(custom_nodes_of(comfyui), args.app_url)
    except (ExtensionInstallError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Installed the editor extension into {installed}.\n"
          f"Restart that ComfyUI, then choose File > Publish… in its editor: the workflow opens in the studio at "
          f"{args.app_url.rstrip('/')}/studio/.\nA ComfyUI on another machine must be let in: start this app with "
          f"--editor-origin <that ComfyUI's URL>.")
    return 0


def publish_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /api/apps body from the command line and an optional spec file (flags win)."""
    spec: dict[str, Any] = json.loads(args.spec.read_text()) if args.spec else {}
    body: dict[str, Any] = {**spec, "workflow": json.loads(args.workflow.read_text())}
    inputs = list(spec.get("inputs", []))
    for item in args.input:
        target, _, name = item.partition("=")
        node, dot, node_input = target.partition(".")
        if not dot or not node or not node_input:
            raise SystemExit(f"error: --input {item!r}: write NODE.INPUT or NODE.INPUT=NAME, e.g. 6.text=prompt")
        inputs.append({"node": node, "input": node_input, **({"name": name} if name else {})})
    if inputs or "inputs" in spec:  # none given: the server publishes those the file marks in App Mode
        body["inputs"] = inputs
    for field, value in (("name", args.name), ("slug", args.slug), ("description", args.description),
                         ("outputs", args.output)):
        if value is not None:
            body[field] = value
    if args.public:
        body["public"] = True
    if not body.get("name"):
        raise SystemExit("error: give the app a --name (or a name in --spec)")
    return body


def _publish(args: argparse.Namespace) -> int:
    import httpx

    if not args.key:
        print("error: publishing needs an admin key: --key KEY or COMFY_PUBLISHER_API_KEY "
              "(create one with `python launch.py keys create NAME --admin`)", file=sys.stderr)
        return 2
    body = publish_body(args)
    base = args.url.rstrip("/")
    try:
        response = httpx.post(f"{base}/api/apps", json=body, headers={"Authorization": f"Bearer {args.key}"},
                              timeout=60, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the server at {base} ({exc}); start it with `python launch.py`",
              file=sys.stderr)
        return 1
    if response.status_code != 201:
        detail = response.json().get("detail") if "json" in response.headers.get("content-type", "") else None
        print(f"error: HTTP {response.status_code}", file=sys.stderr)
        print(json.dumps(detail, indent=2) if detail else response.text, file=sys.stderr)
        return 1
    app = response.json()
    print(f"Published {app['name']} as '{app['slug']}' version {app['version']}")
    for label, path in app["endpoints"].items():
        print(f"  {label:<12} {base}{path}")
    print(f"  {'docs':<12} {base}/docs")
    for warning in app.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0
