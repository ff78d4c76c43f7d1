"""`--build` of a RunPod deploy: the local docker builds the generated bundle's image for RunPod's machines
(linux/amd64) and pushes it, its output streamed into the deploy log. Checked before anything is recorded: no
docker, or its daemon not running, is a clear error that says how to build and push by hand."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from app.deploy.target import Note
from runtimes.serverless.errors import DeployError

CHECK_TIMEOUT_S = 10.0
BUILD_TIMEOUT_S = 90 * 60.0  # a first build downloads CUDA, torch and the models baked in
TAIL_LINES = 30


class DockerError(DeployError):
    pass


def by_hand(image: str, directory: Path) -> str:
    return (f"Build and push it by hand: `docker build --platform linux/amd64 -t {image} {directory}` then "
            f"`docker push {image}` (on a machine with docker), and deploy again without --build.")


async def check_docker(image: str, directory: Path, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Fail within seconds when the local docker cannot build: not installed, or its daemon not answering."""
    docker = shutil.which("docker")
    if docker is None:
        raise DockerError(f"--build needs docker, and there is none on this machine (no `docker` on PATH). "
                          f"{by_hand(image, directory)}")
    proc = await asyncio.create_subprocess_exec(docker, "info", "--format", "{{.ServerVersion}}",
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DockerError(f"--build: docker's daemon did not answer within {timeout:g} s (`docker info`). Start "
                          f"it (e.g. `sudo systemctl start docker`), or: {by_hand(image, directory)}") from None
    if proc.returncode != 0:
        reason = out.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise DockerError(f"--build: docker's daemon is not running ({reason[0]}). Start it (e.g. `sudo systemctl "
                          f"start docker`), or: {by_hand(image, directory)}")


async def build_and_push(image: str, directory: Path, note: Note, timeout: float = BUILD_TIMEOUT_S) -> None:
    # A gated model baked in needs the HF token at build time: a BuildKit secret docker reads from its own env (never
    # on the command line, never in the image).
    secret = ["--secret", "id=hf_token,env=HF_TOKEN"] if os.environ.get("HF_TOKEN") else []
    await _stream(["docker", "build", "--platform", "linux/amd64", *secret, "-t", image, str(directory)], note,
                  timeout)
    await _stream(["docker", "push", image], note, timeout)


async def _stream(cmd: list[str], note: Note, timeout: float) -> None:
    """Run one docker command, each line of its output noted; a failure says which command and its last lines."""
    await note("$ " + " ".join(cmd))
    env = {**os.environ, "BUILDKIT_PROGRESS": "plain", "DOCKER_CLI_HINTS": "false"}
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    tail: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                raw = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                raise DockerError(f"`{' '.join(cmd[:2])}` did not finish within {timeout:g} s; it was stopped.") \
                    from None
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                tail = [*tail[-(TAIL_LINES - 1):], line]
                await note(line)
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if code != 0:
        raise DockerError(f"`{' '.join(cmd[:2])}` failed (exit {code}). Last output:\n" + "\n".join(tail))
