"""`python launch.py plan --exec-s 3.5 --overhead-s 0.9 --cold-start-s 15 --users 10 --think 1-5 --gpu A10G ...`:
simulate Modal's autoscaler for a traffic pattern and print p50/p95 latency and cost (runtimes/planner/).

Only the options are defined at import (launch.py builds its parser before it starts the engines)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_plan_command(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser("plan", help="estimate latency and cost of Modal settings for a traffic pattern")
    app = plan.add_argument_group("the app (measured: run history or a load test)")
    app.add_argument("--exec-s", type=float, required=True, metavar="SECONDS",
                     help="the engine's own execution time per request (one container runs one prompt at a time)")
    app.add_argument("--overhead-s", type=float, default=0.0, metavar="SECONDS",
                     help="the rest of a request's time in the container (receiving, uploads, outputs); "
                          "concurrent inputs do not wait for each other's")
    app.add_argument("--cold-start-s", type=float, required=True, metavar="SECONDS",
                     help="from a container's start to its first input")
    traffic = plan.add_argument_group("the traffic (closed-loop users: submit, wait for the result, think)")
    traffic.add_argument("--users", type=int, required=True, metavar="N", help="users at once (after --ramp-s)")
    traffic.add_argument("--think", default="1-5", metavar="MIN-MAX",
                         help="seconds a user waits between a result and its next request (uniform)")
    traffic.add_argument("--ramp-s", type=float, default=0.0, metavar="SECONDS",
                         help="add the users one by one over this many seconds (default: all at once)")
    traffic.add_argument("--step", action="append", default=[], metavar="T:N",
                         help="from second T on, N users (a burst, or a drop; repeat)")
    modal = plan.add_argument_group("the Modal settings")
    price = modal.add_mutually_exclusive_group(required=True)
    price.add_argument("--gpu", metavar="TYPE",
                       help="price from the GPU price table (see --prices)")
    price.add_argument("--gpu-price", type=float, metavar="USD_PER_HOUR", help="a GPU's price per hour")
    modal.add_argument("--prices", type=Path, metavar="FILE",
                       help="with --gpu: a price table (JSON: checked, source, usd_per_hour) over the built-in one; "
                            "default: the data dir's gpu_prices.json when present (the Deploy tab saves it)")
    modal.add_argument("--max-inputs", type=int, default=1, metavar="N", help="concurrent inputs per container")
    modal.add_argument("--max-containers", type=int, default=100, metavar="N")
    modal.add_argument("--min-containers", type=int, default=0, metavar="N", help="the warm pool, always on")
    modal.add_argument("--idle-s", type=float, default=60.0, metavar="SECONDS",
                       help="an idle container stops after this (scaledown window)")
    modal.add_argument("--scale-up-delay-s", type=float, default=0.0, metavar="SECONDS",
                       help="how long an input waits for a free slot before a new container is started for it")
    sim = plan.add_argument_group("the simulation")
    sim.add_argument("--duration", type=float, default=600.0, metavar="SECONDS", help="simulated time")
    sim.add_argument("--seed", type=int, default=0, help="the same seed gives the same result")
    sim.add_argument("--json", action="store_true", help="print JSON")
    sim.add_argument("--series", action="store_true", help="with --json: add the per-second time series")


def run_plan(args: argparse.Namespace) -> int:
    from runtimes.planner.autoscaler import Deployment, Traffic, parse_think, simulate

    try:
        table = _price_table(args) if args.gpu or args.prices else None
        think_min, think_max = parse_think(args.think)
        steps = tuple(_step(text) for text in args.step)
        price = table.price(args.gpu) if table and args.gpu else args.gpu_price
        deployment = Deployment(exec_s=args.exec_s, overhead_s=args.overhead_s, cold_start_s=args.cold_start_s,
                                gpu_price_per_hour=price, max_inputs=args.max_inputs,
                                max_containers=args.max_containers, min_containers=args.min_containers,
                                idle_s=args.idle_s, scale_up_delay_s=args.scale_up_delay_s)
        traffic = Traffic(users=args.users, think_min_s=think_min, think_max_s=think_max, ramp_s=args.ramp_s,
                          steps=steps)
        plan = simulate(deployment, traffic, duration_s=args.duration, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {**plan.summary(), "gpu_price_per_hour": price}
    if table is not None and args.gpu:
        result["prices_checked"] = table.describe()  # the date and source of the price used
    if args.json:
        if args.series:
            result["series"] = plan.series
        print(json.dumps(result, indent=2))
        return 0
    for label, key, unit in (("p50 latency", "p50_s", "s"), ("p95 latency", "p95_s", "s"),
                             ("first requests (slowest)", "first_request_s", "s"),
                             ("cost", "cost_per_min", "$/min"), ("warm pool alone", "warm_cost_per_min", "$/min"),
                             ("peak containers", "peak_containers", ""), ("requests served", "requests", ""),
                             ("last scale-up at", "last_scale_up_s", "s"), ("GPU price", "gpu_price_per_hour", "$/h")):
        value = result[key]
        shown = f"{value:.4f}" if unit.startswith("$") else (f"{value:.2f}" if isinstance(value, float) else value)
        print(f"{label:<26}{shown} {unit}".rstrip())
    if "prices_checked" in result:
        print(f"{'prices checked':<26}{result['prices_checked']}")
    return 0


def _price_table(args: argparse.Namespace) -> Any:
    """--prices FILE, else the data dir's table when it has one, else the built-in one (PriceTableError: a
    ValueError naming the file)."""
    from runtimes.planner import prices

    if args.prices:
        if not args.prices.is_file():
            raise ValueError(f"--prices {args.prices}: no such file (a JSON price table, e.g. {{\"checked\": "
                             '"2026-11-30", "source": "my invoice", "usd_per_hour": {"A10": 1.0}})')
        return prices.load(args.prices)
    return prices.in_force(args.data_dir.expanduser())


def _step(text: str) -> tuple[float, int]:
    at, sep, users = text.partition(":")
    try:
        if sep:
            return float(at), int(users)
    except ValueError:
        pass
    raise ValueError(f"--step takes T:N (from second T on, N users), e.g. 120:50 (got '{text}')")
