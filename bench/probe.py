"""A second client, in its own process: GETs one URL at a low steady rate (closed loop, one at a time) and prints
the latencies as JSON. The load generator's own event loop, busy with hundreds of requests and streams, adds its
lag to every latency it measures; this probe's does not, so the two apart tell the server's delay from the
client's.

    python -m bench.probe URL --seconds 60 [--rate 10] [--header 'Authorization: Bearer ...']
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import httpx


def probe(url: str, seconds: float, rate: float, headers: dict[str, str]) -> list[float]:
    latencies = []
    with httpx.Client(timeout=120.0, trust_env=False, headers=headers) as http:
        end = time.perf_counter() + seconds
        while (started := time.perf_counter()) < end:
            http.get(url).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    return latencies


def start(url: str, seconds: float, headers: dict[str, str], rate: float = 10.0) -> subprocess.Popen[str]:
    """The probe as a child process; `collect` reads its latencies when it is done."""
    flags = [arg for name, value in headers.items() for arg in ("--header", f"{name}: {value}")]
    return subprocess.Popen([sys.executable, "-m", "bench.probe", url, "--seconds", str(seconds), "--rate",
                             str(rate), *flags], stdout=subprocess.PIPE, text=True)


def collect(process: subprocess.Popen[str]) -> list[float]:
    out, _ = process.communicate(timeout=600)
    return list(json.loads(out)) if process.returncode == 0 else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--rate", type=float, default=10.0, help="requests a second at most (default 10)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    args = parser.parse_args(argv)
    headers = dict(h.split(": ", 1) for h in args.header)
    print(json.dumps(probe(args.url, args.seconds, args.rate, headers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
