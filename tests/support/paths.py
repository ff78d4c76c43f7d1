"""Where tests keep heavy artefacts between runs: keyed by version, so an upgrade never reuses stale ones."""

import os
from pathlib import Path

import platformdirs

from runtimes.engine.install import INSTALL_KEY, default_engine_home

_cache = os.environ.get("COMFY_PUBLISHER_CACHE")  # set it for a cold start: nothing shared with the app
CACHE_DIR = Path(_cache) if _cache else Path(platformdirs.user_cache_dir("comfy-publisher"))
# The engine is ~5 GB: by default the tests share the one the app installs (same version key).
ENGINE_HOME = CACHE_DIR / "engine" if _cache else default_engine_home()
CHECKPOINT = CACHE_DIR / "fixtures" / f"sd15-random-tiny-taesd-seed0-{INSTALL_KEY}.safetensors"
CHECKPOINT_NAME = "sd15-random-tiny.safetensors"  # how the test engines list it
REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
OUTPUT_DIR = REPO / "tests" / "output"
