"""Answers from memory (app.runs.inflight) for a job's own key: a job queued, running or ended in the last minute,
and its small outputs' bytes. A status poll and the download that follows its end then need no database trip. Only
what the database path would answer the same is answered here; anything else (a public app's job, a key not verified
lately, a refusal) goes to the database, which also words every refusal."""

from __future__ import annotations

from app.auth.keys import identify_recent
from app.runs.inflight import InFlightRuns
from db.crud_runs import NewArtifact


def may_read_here(api_key_id: int | None, slug: str | None, app_slug: str | None, authorization: str | None) -> bool:
    """A job of a key, read by that key or an admin's (verified lately), at its own app's base URL (`app_slug`) or
    the server's (None)."""
    if api_key_id is None or (app_slug is not None and app_slug != slug):
        return False
    caller = identify_recent(authorization)
    return caller is not None and (caller.admin or caller.key_id == api_key_id)


def recent_output(in_flight: InFlightRuns, asset_id: str, app_slug: str | None,
                  authorization: str | None) -> tuple[NewArtifact, bytes] | None:
    """An output of a job that ended lately, and its bytes, if kept in memory and this caller may read them."""
    found = in_flight.recent_output(asset_id)
    if found is None:
        return None
    ended, index = found
    data = ended.data[index]
    if data is None or not may_read_here(ended.api_key_id, ended.slug, app_slug, authorization):
        return None
    return ended.artifacts[index], data
