"""Debian's chromium, headless, driven by Playwright (no browser download: executable_path)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage"]


@contextmanager
def chromium() -> Iterator[Browser]:
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))  # a fresh user-data-dir each time
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1360, "height": 900})
            try:
                yield context  # type: ignore[misc]  # a persistent context has new_page() like a browser
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
