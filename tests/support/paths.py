"""Where tests keep heavy artefacts between runs: keyed by version, so an upgrade never reuses stale ones."""

import os
from pathlib import Path

from runtimes.engine.install import INSTALL_KEY

CACHE_DIR = Path(os.environ.get("COMFY_PUBLISHER_CACHE", Path.home() / ".cache" / "comfy-publisher"))
ENGINE_HOME = CACHE_DIR / "engine"
CHECKPOINT = CACHE_DIR / "fixtures" / f"sd15-random-tiny-taesd-seed0-{INSTALL_KEY}.safetensors"
CHECKPOINT_NAME = "sd15-random-tiny.safetensors"  # how the test engines list it
REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
OUTPUT_DIR = REPO / "tests" / "output"
