"""One typed settings object for the web app, built from the command line (or env) and shared."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtimes.inputs import ImageLimits

DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096  # as runtimes.inputs' (a deployment's), kept light to import at start-up


def default_data_dir() -> Path:
    """Where the app keeps its data unless --data-dir says otherwise: COMFY_PUBLISHER_DATA, else the user's data
    folder."""
    import platformdirs

    return Path(os.environ.get("COMFY_PUBLISHER_DATA") or platformdirs.user_data_dir("comfy-publisher"))


def data_dir_flag(data_dir: Path) -> str:
    """" --data-dir D" for a command printed to the user, or "" on the default data dir."""
    return "" if data_dir.resolve() == default_data_dir().resolve() else f" --data-dir {data_dir}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str
    sync_wait_s: float = 60.0  # POST .../run waits this long for the result, then answers 202 with the run id
    max_queue: int = 10_000  # queued runs past this answer 429 with Retry-After
    max_upload_bytes: int = 20 * 2**20
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # per uploaded image: the engine's memory pays pixels, not bytes
    allow_private_webhooks: bool = False  # webhooks to loopback/private addresses (local set-ups, tests)
    studio_auth: tuple[str, str] | None = None  # (user, password) for the studio; None: the studio is open
    metrics_open: bool = False  # GET /metrics without an admin key (a scraper on a trusted network)
    editor_origins: tuple[str, ...] = ()  # other ComfyUI editors whose Publish… may send drafts (app.editor.origins)
    self_url: str | None = None  # this server as a client on this machine reaches it (the studio's load tests)
    # Retention (--keep-outputs / --keep-inputs DAYS): a run's output files, and its uploaded inputs, are removed
    # this long after it was created, and its record says so. None: kept until deleted.
    keep_outputs_days: float | None = None
    keep_inputs_days: float | None = None

    @property
    def image_limits(self) -> ImageLimits:
        from runtimes.inputs import ImageLimits  # Pillow: imported when the first run comes, not at start-up

        return ImageLimits(self.max_upload_bytes, self.max_image_pixels)

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def editor_drafts_dir(self) -> Path:
        return self.data_dir / "editor-drafts"

    @property
    def test_runs_dir(self) -> Path:
        return self.data_dir / "test-runs"

    @property
    def loadtests_dir(self) -> Path:
        return self.data_dir / "loadtests"


def positive_int(text: str) -> int:
    """An argparse type: --max-image-pixels (or COMFY_PUBLISHER_MAX_IMAGE_PIXELS) as a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, e.g. {DEFAULT_MAX_IMAGE_PIXELS}, "
                                         f"got {text[:40]!r}")
    return value


def positive_days(text: str) -> float:
    """An argparse type: --keep-outputs / --keep-inputs DAYS, a number above 0 (0.5: twelve hours)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of days above 0, e.g. 30 or 0.5, got {text[:40]!r}")
    return value


def parse_credentials(value: str | None) -> tuple[str, str] | None:
    """--auth 'user:pass' -> (user, pass); ValueError naming the fix for anything else."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth (or COMFY_PUBLISHER_AUTH) must be 'user:password', both non-empty")
    return user, password
