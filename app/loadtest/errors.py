"""The one error a load test raises before or instead of a report."""

from __future__ import annotations


class LoadTestError(Exception):
    """The load test cannot run (bad slug, key or target; Locust failed): the message says what to fix."""
