#!/usr/bin/env python3
"""Comfy Publisher: serve the API (and studio) on one port, with the ComfyUI engine(s) it manages.

    python launch.py [--host 127.0.0.1] [--port 7860] [--data-dir DIR] [--db URL] [--no-browser]
                     [--comfyui-url URL | --comfyui-path DIR] [--workers N] [--auth USER:PASS] [--share]
    python launch.py [--data-dir DIR] keys create NAME [--admin] | keys list | keys revoke ID
    python launch.py publish workflow.json --name NAME --input 6.text=prompt --input 3.seed
    python launch.py deploy SLUG [--version N] [--gpu L4 ...] [--show-files] [--teardown] [--runtime modal]
    python launch.py deploy SLUG --target runpod --image REGISTRY/NAME:TAG [--build] [--gpu-pools ADA_24 ...]
                     [--show-files] [--teardown] [--runtime runpod] [--serve-locally --port 8000]
    python launch.py install-extension --comfyui-path DIR [--app-url URL]   # File > Publish… in your ComfyUI
    python launch.py [--data-dir DIR] nodes install GIT_URL@COMMIT|REGISTRY_ID@VERSION | list | remove NAME
    python launch.py plan --exec-s 3.5 --overhead-s 0.9 --cold-start-s 15 --users 10 --think 1-5 --gpu A10G [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import webbrowser
from pathlib import Path

# Light imports only up to the engines' start (main): the web app's own (gradio, fastapi, the database) load
# while the engines start, not before.
from app import cli
from app.engines import EngineStatus
from app.settings import (
    DEFAULT_MAX_IMAGE_PIXELS,
    Settings,
    default_data_dir,
    parse_credentials,
    positive_days,
    positive_int,
)
from runtimes.engine.extension import check_app_url
from runtimes.engine.install import default_engine_home
from runtimes.engine.manager import EngineSettings
from runtimes.engine.process import port_is_free

DEFAULT_PORT = 7860


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="launch.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for the LAN)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port for the studio and the API")
    parser.add_argument("--data-dir", type=Path,
                        default=default_data_dir(),
                        help="holds the database, outputs, uploads and logs")
    parser.add_argument("--db", default=os.environ.get("DATABASE_URL"),
                        help="database URL (default: SQLite in DATA_DIR; DATABASE_URL works too)")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--comfyui-url", help="use a ComfyUI you already run (e.g. http://127.0.0.1:8188)")
    engine.add_argument("--comfyui-path", type=Path, help="launch your own ComfyUI install (folder of main.py)")
    parser.add_argument("--comfyui-python", type=Path, help="Python for --comfyui-path (default: its venv)")
    parser.add_argument("--models-dir", dest="url_models_dir", type=Path, metavar="DIR",
                        help="with --comfyui-url: that ComfyUI's models folder, when this machine sees it (the app "
                             "then fetches model files into it and checks runs against it)")
    parser.add_argument("--engine-home", type=Path, default=default_engine_home(),
                        help="where the bundled engine is installed, once per user (~5 GB)")
    parser.add_argument("--workers", type=int, help="engine processes (default: one per GPU, one on CPU)")
    parser.add_argument("--engine-port", type=int, help="port of the engine (single worker; default: free)")
    parser.add_argument("--disable-api-nodes", action="store_true",
                        help="hide ComfyUI's paid cloud-API nodes (they need an account and the internet)")
    parser.add_argument("--max-queue", dest="max_queue", type=int, default=10_000,
                        help="queued runs accepted before answering 429")
    parser.add_argument("--sync-wait", type=float, default=60.0,
                        help="seconds POST .../run waits for the result before answering 202")
    parser.add_argument("--max-upload-mb", type=float, default=20, help="largest accepted upload")
    parser.add_argument("--keep-outputs", type=positive_days, metavar="DAYS",
                        help="remove the output files of runs older than this (their records stay and say so)")
    parser.add_argument("--keep-inputs", type=positive_days, metavar="DAYS",
                        help="remove the uploaded input files of runs older than this, and expire uploaded v2 "
                             "assets after it")
    parser.add_argument("--max-image-pixels", type=positive_int,
                        default=os.environ.get("COMFY_PUBLISHER_MAX_IMAGE_PIXELS") or DEFAULT_MAX_IMAGE_PIXELS,
                        help="most pixels (width x height) of one uploaded image "
                             "(env COMFY_PUBLISHER_MAX_IMAGE_PIXELS)")
    parser.add_argument("--allow-private-webhooks", action="store_true",
                        help="let webhooks call loopback/private addresses (local set-ups)")
    parser.add_argument("--metrics-open", action="store_true",
                        help="serve GET /metrics without an admin key (a Prometheus scraper on a trusted network)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--auth", default=os.environ.get("COMFY_PUBLISHER_AUTH"), metavar="USER:PASS",
                        help="password-protect the studio and private forms (env COMFY_PUBLISHER_AUTH)")
    parser.add_argument("--editor-origin", action="append", default=[], metavar="URL",
                        help="a ComfyUI editor on another machine whose File > Publish… may send workflows here, "
                             "e.g. http://gpu-box:8188 (repeat; this app's engines and any loopback one may always)")
    parser.add_argument("--share", action="store_true",
                        help="also make a public Gradio share link (needs the internet; the LAN URL always works)")
    commands = parser.add_subparsers(dest="command",
                                     metavar="{keys,publish,deploy,models,nodes,plan,loadtest,install-extension}")
    cli.add_commands(commands)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = args.data_dir.expanduser().resolve()
    db_url = args.db or f"sqlite:///{data_dir / 'publisher.db'}"
    if args.command == "plan":  # a computation only: no database; the data dir is only read (its GPU prices)
        return cli.run_command(args, db_url)
    if args.command:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cli.run_command(args, db_url)
    try:
        studio_auth = parse_credentials(args.auth)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for origin in args.editor_origin:
        try:
            check_app_url(origin)
        except ValueError as exc:
            print(f"error: --editor-origin: {exc}", file=sys.stderr)
            return 2
    if args.url_models_dir is not None and not args.comfyui_url:
        print("error: --models-dir goes with --comfyui-url; the engines this app starts read "
              "DATA_DIR/comfyui/models.", file=sys.stderr)
        return 2
    if args.share and studio_auth is None:
        print("error: --share exposes the studio to the internet: pass --auth USER:PASS with it.", file=sys.stderr)
        return 2
    if not port_is_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is in use. Stop what uses it or pass --port N.",
              file=sys.stderr)
        return 2
    engines = EngineStatus(EngineSettings(
        data_dir=data_dir,
        comfyui_url=args.comfyui_url,
        comfyui_path=args.comfyui_path,
        comfyui_python=args.comfyui_python,
        engine_home=args.engine_home,
        workers=args.workers,
        engine_port=args.engine_port,
        disable_api_nodes=args.disable_api_nodes,
        editor_app_url=local_url(args.host, args.port),  # the editor's Publish… command calls the app here
        url_models_dir=args.url_models_dir.expanduser().resolve() if args.url_models_dir else None,
    ))
    engines.start_in_background()  # first: an engine takes seconds to start, the web app's imports as long
    # Before gradio is imported (it reads these once): no telemetry calls, temp files in the data dir.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_TEMP_DIR", str(data_dir / "gradio-tmp"))
    try:
        _serve(args, engines, data_dir, db_url, studio_auth)
    finally:
        engines.stop()  # whatever ended the server (a clean exit stopped them already)
    return 0


def _serve(args: argparse.Namespace, engines: EngineStatus, data_dir: Path, db_url: str,
           studio_auth: tuple[str, str] | None) -> None:
    import uvicorn

    from app.server import create_app
    from app.studio.share import ShareLink

    share = ShareLink()
    app = create_app(Settings(data_dir=data_dir, db_url=db_url, sync_wait_s=args.sync_wait,
                              max_queue=args.max_queue, max_upload_bytes=int(args.max_upload_mb * 2**20),
                              max_image_pixels=args.max_image_pixels,
                              allow_private_webhooks=args.allow_private_webhooks, studio_auth=studio_auth,
                              editor_origins=tuple(args.editor_origin), metrics_open=args.metrics_open,
                              self_url=local_url(args.host, args.port), keep_outputs_days=args.keep_outputs,
                              keep_inputs_days=args.keep_inputs),
                     engines, share)
    url = local_url(args.host, args.port) + "/"
    print(f"Comfy Publisher studio: {url}studio/\n  forms: {url}apps/<name>/  API docs: {url}docs  "
          f"data: {data_dir}", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1") and studio_auth is None:
        print("warning: the studio is reachable from the network without a password: pass --auth USER:PASS",
              file=sys.stderr, flush=True)
    if args.share:
        share.open_in_background(args.port)
    if not args.no_browser:
        threading.Thread(target=_open_when_up, args=(url,), daemon=True).start()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


def local_url(host: str, port: int) -> str:
    """The app's address as a browser on this machine reaches it (a wildcard bind answers on loopback)."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _open_when_up(url: str) -> None:
    import httpx

    for _ in range(100):
        try:
            if httpx.get(f"{url}healthz", timeout=1, trust_env=False).status_code == 200:
                webbrowser.open(url)
                return
        except httpx.HTTPError:
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
