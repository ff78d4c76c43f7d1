"""`python launch.py loadtest SLUG --users N --spawn-rate R --duration S --out DIR`: a Locust load test of a published
app against this server (or the app's own Modal deployment), with a report; `--export-locustfile PATH` only writes
the locustfile. Only the options are defined at import (launch.py builds its parser before anything else)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from app.loadtest.locustfile import KEY_ENV


def add_loadtest_command(subparsers: argparse._SubParsersAction) -> None:
    load = subparsers.add_parser("loadtest", help="load test a published app with Locust: latency, failures, "
                                                  "throughput, queue, with a report and plots")
    load.add_argument("slug", help="the app (as GET /api/apps lists it)")
    load.add_argument("--users", type=int, metavar="N", help="simulated users at once (1-200); needed with --out")
    load.add_argument("--spawn-rate", type=float, default=1.0, metavar="R", help="users started per second")
    load.add_argument("--duration", type=float, metavar="SECONDS", help="how long (1-3600 s); needed with --out")
    load.add_argument("--think", default="1-5", metavar="MIN-MAX",
                      help="seconds a user waits between a result and its next run (uniform)")
    load.add_argument("--max-runs", type=int, metavar="N", help="stop after this many runs were submitted")
    load.add_argument("--target", choices=("local", "modal"), default="local",
                      help="local: this server's engines; modal: the app's own live Modal deployment")
    load.add_argument("--url", default=None, help="this server (default: COMFY_PUBLISHER_URL, else "
                                                  "http://127.0.0.1:PORT from --port)")
    load.add_argument("--key", default=None, help=f"an API key of the server (or set {KEY_ENV}); an admin key "
                                                  "for --target modal. Never printed or written.")
    out = load.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, metavar="DIR", help="where report.json, summary.md, the plots and the "
                                                             "locustfile go")
    out.add_argument("--export-locustfile", type=Path, metavar="PATH",
                     help="write the app's locustfile here and run nothing (run Locust yourself)")


def run_loadtest(args: argparse.Namespace) -> int:
    import asyncio

    from app.loadtest.errors import LoadTestError

    try:
        options = _options(args)
        url = (args.url or os.environ.get("COMFY_PUBLISHER_URL") or _local_url(args.host, args.port)).rstrip("/")
        key = args.key or os.environ.get(KEY_ENV, "")
        if args.export_locustfile:
            return asyncio.run(_export(options, url, key, args.export_locustfile))
        endpoint_key = _endpoint_key(args.data_dir, options.slug) if options.target == "modal" else None
        report = asyncio.run(_run(options, url, key, args.out, endpoint_key))
    except (ValueError, LoadTestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # asyncio.run cancelled the test: Locust and its children are stopped
        print("stopped", file=sys.stderr)
        return 130
    print((args.out / "summary.md").read_text())
    print(f"Report: {args.out / 'report.json'} (plots: {', '.join(report['plots'])})")
    return 0


def _options(args: argparse.Namespace) -> Any:
    from app.loadtest.options import LoadTestOptions
    from runtimes.planner.autoscaler import parse_think

    if args.out is not None and (args.users is None or args.duration is None):
        raise ValueError("a load test needs --users N and --duration SECONDS")
    think = parse_think(args.think)
    # An export runs nothing: users and duration only fill the command it suggests.
    users, duration = args.users or 10, args.duration or 60.0
    return LoadTestOptions(slug=args.slug, users=users, spawn_rate=args.spawn_rate, duration_s=duration,
                           think_min_s=think[0], think_max_s=think[1], target=args.target, max_runs=args.max_runs)


async def _run(options: Any, url: str, key: str, out_dir: Path, endpoint_key: str | None) -> dict[str, Any]:
    from app.loadtest.runner import run_load_test

    def progress(p: dict[str, Any]) -> None:
        p50 = "-" if p["p50_s"] is None else f"{p['p50_s']:.3f} s"
        print(f"{p['elapsed_s']:>7.1f} s  users {p['users']:>3}  runs {p['requests']:>5}  failures "
              f"{p['failures']:>4}  p50 {p50}", flush=True)

    print(f"Load test of '{options.slug}' at {url} ({options.target}): {options.users} users, "
          f"{options.duration_s:g} s", flush=True)
    return await run_load_test(options, base_url=url, api_key=key, out_dir=out_dir, on_progress=progress,
                               endpoint_key=endpoint_key)


async def _export(options: Any, url: str, key: str, path: Path) -> int:
    """The locustfile needs the app's inputs: they are read from the server (nothing is run). With --target modal,
    those of the version its live deployment serves, and the hint names that deployment's URL."""
    import httpx

    from app.loadtest.locustfile import render_locustfile
    from app.loadtest.target import resolve_target

    async with httpx.AsyncClient(base_url=url, timeout=15, trust_env=False) as http:
        target = await resolve_target(http, slug=options.slug, target=options.target, api_key=key)
    path.write_text(render_locustfile(target.app, options, submit_path=target.submit_path))
    needs = "the deployment's endpoint key" if options.target == "modal" else "a key of the server"
    print(f"Wrote {path}. Run it with {KEY_ENV} set to {needs}: locust -f {path} --host {target.url} --headless "
          f"-u {options.users} -r {options.spawn_rate:g} -t {options.duration_s:g}s -s 30")
    return 0


def _endpoint_key(data_dir: Path, slug: str) -> str:
    """A deployment's key is derived from the server's master key: this must be the server's --data-dir."""
    from app.auth.secrets import load_or_create_master_key
    from app.deploy.service import endpoint_key_of

    return endpoint_key_of(load_or_create_master_key(data_dir.expanduser().resolve()), slug)


def _local_url(host: str, port: int) -> str:
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"
