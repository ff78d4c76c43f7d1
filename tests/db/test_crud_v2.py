"""The Comfy API v2's records: the internal app of ad-hoc workflows (hidden from every lookup of published apps),
its versions, the expiry of a job's Idempotency-Key, and keys with the "workflows" permission."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from db import crud_apps, crud_keys, crud_runs, crud_v2
from db.models import utcnow
from tests.db.factories import new_run, publish


def test_the_internal_app_is_no_published_app(session: Session) -> None:
    publish(session, "demo")
    app = crud_v2.internal_app(session)
    assert crud_v2.internal_app(session).id == app.id  # made once
    first = crud_v2.add_graph_version(session, app_id=app.id, graph_hash="a" * 64, spec={"workflow": {}})
    second = crud_v2.add_graph_version(session, app_id=app.id, graph_hash="b" * 64, spec={"workflow": {}})
    assert (first.number, second.number) == (1, 2) and second.spec[crud_v2.GRAPH_HASH] == "b" * 64
    assert [a.slug for a in crud_apps.list_apps(session)] == ["demo"]
    assert crud_apps.get_app(session, slug=crud_v2.INTERNAL_SLUG) is None
    assert crud_apps.get_app(session, slug=crud_v2.INTERNAL_SLUG, include_internal=True) is not None
    assert crud_apps.find_runnable(session, slug=crud_v2.INTERNAL_SLUG) is None  # the typed API cannot run it
    assert crud_apps.runnable_by_id(session, version_id=first.id) is not None  # its runs still run


def test_an_idempotency_key_is_freed_only_once_expired(session: Session) -> None:
    version = publish(session, "demo")
    recent = new_run(session, version, idempotency_scope="1:2:recent")
    assert crud_v2.release_scope(session, scope="1:2:unused", created_before=utcnow())
    assert not crud_v2.release_scope(session, scope="1:2:recent", created_before=utcnow() - timedelta(hours=24))
    assert crud_v2.release_scope(session, scope="1:2:recent", created_before=utcnow() + timedelta(seconds=1))
    reread = crud_runs.get_run(session, run_id=recent.id)
    assert reread is not None and reread.idempotency_scope is None


def test_a_key_may_be_given_the_workflows_permission(session: Session) -> None:
    _, plain = crud_keys.create_api_key(session, name="runner", admin=False)
    _, scripts = crud_keys.create_api_key(session, name="scripts", admin=False, workflows=True)
    assert crud_keys.verify_api_key(session, token=plain).workflows is False  # type: ignore[union-attr]
    assert crud_keys.verify_api_key(session, token=scripts).workflows is True  # type: ignore[union-attr]
