"""`python launch.py [--data-dir D] nodes install PIN | list | remove NAME`: the custom node packs of this app's
managed engines, in the data dir's comfyui/custom_nodes/. Works without a running server: the engines load the
change when they start again (restart the app, or install through the API or the studio, which restart them)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.packs.service import NodePacks



def restart_hint(change: str) -> str:
    return (f"Restart the app (python launch.py) to {change} it: the engines load custom nodes only when they start "
            "(installing through the API or the studio's Engine tab restarts them itself).")


def add_nodes_command(subparsers: argparse._SubParsersAction) -> None:
    nodes = subparsers.add_parser("nodes", help="install, list and remove custom node packs of the managed engine")
    actions = nodes.add_subparsers(dest="nodes_action", required=True)
    install = actions.add_parser("install", help="install a pack at a pin into the data dir's custom_nodes/")
    install.add_argument("pin", help="GIT_URL@COMMIT (a full 40-hex commit) or REGISTRY_ID@VERSION (x.y.z)")
    actions.add_parser("list", help="the installed packs: name, pin, loaded or failed at the engine's last start")
    remove = actions.add_parser("remove", help="remove a pack (its folder under custom_nodes/)")
    remove.add_argument("name", help="the pack's folder name, as `nodes list` shows it")


def run_nodes(args: argparse.Namespace) -> int:
    from app.packs.service import NodePacks
    from runtimes.engine.manager import EngineSettings
    from runtimes.engine.node_packs import PackError

    packs = NodePacks(EngineSettings(data_dir=args.data_dir.expanduser().resolve(), comfyui_url=args.comfyui_url,
                                     comfyui_path=args.comfyui_path, comfyui_python=args.comfyui_python,
                                     engine_home=args.engine_home))
    try:
        if args.nodes_action == "install":
            installed = packs.install(args.pin)
            for note in installed.notes:
                print(f"note: {note}")
            print(f"Installed {installed.name} ({installed.pin}). {restart_hint('load')}")
        elif args.nodes_action == "remove":
            packs.remove(args.name)
            print(f"Removed {args.name}. {restart_hint('unload')}")
        else:
            _print_list(packs)
    except PackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_list(packs: NodePacks) -> None:
    described = packs.describe()
    if not described:
        print(f"No node packs in {packs.custom_nodes}.")
        return
    for pack in described:
        print(f"{pack['name']:<32} {pack['state']:<11} {pack['pin'] or '(not installed by this app)'}")
        for line in pack["log"]:
            print(f"    {line}")
