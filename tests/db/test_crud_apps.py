from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db import crud_apps, crud_deployments, crud_runs
from db.models import AppVersion, DeploymentStatus
from tests.db.factories import new_run, publish, spec


def test_first_publish_creates_the_app_with_version_1(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        version = publish(session, slug="txt2img", name="Text to image", description="SD 1.5", public=True)
    with session_factory() as session:  # committed: visible to another session
        app = crud_apps.get_app(session, slug="txt2img")
        assert app is not None
        assert (app.name, app.description, app.public, app.deleted_at) == ("Text to image", "SD 1.5", True, None)
        stored = crud_apps.get_version(session, app_id=app.id, number=1)
        assert stored is not None
        assert (stored.id, stored.number, stored.spec) == (version.id, 1, spec())


def test_each_publish_adds_the_next_number_and_updates_the_app(session: Session) -> None:
    numbers = [publish(session, slug="demo", name=f"Demo {i}", spec=spec(f"v{i}")).number for i in (1, 2, 3)]
    assert numbers == [1, 2, 3]
    app = crud_apps.get_app(session, slug="demo")
    assert app is not None and app.name == "Demo 3"
    assert [(v.number, v.spec["title"]) for v in crud_apps.list_versions(session, app_id=app.id)] == [
        (1, "v1"),
        (2, "v2"),
        (3, "v3"),
    ]


def test_numbers_are_per_app(session: Session) -> None:
    publish(session, slug="a")
    publish(session, slug="a")
    assert publish(session, slug="b").number == 1


def test_get_version_latest_or_pinned(session: Session) -> None:
    publish(session, slug="demo", spec=spec("first"))
    latest = publish(session, slug="demo", spec=spec("second"))
    other = publish(session, slug="other")
    app_id = latest.app_id
    newest = crud_apps.get_version(session, app_id=app_id)
    assert newest is not None and newest.id == latest.id
    pinned = crud_apps.get_version(session, app_id=app_id, number=1)
    assert pinned is not None and pinned.spec["title"] == "first"
    assert crud_apps.get_version(session, app_id=app_id, number=3) is None
    assert crud_apps.get_version(session, app_id=other.app_id, number=2) is None  # numbers do not leak across apps
    assert crud_apps.get_version(session, app_id=12345) is None


def test_unpublish_hides_the_app_and_keeps_its_runs(session: Session) -> None:
    version = publish(session, slug="gone")
    publish(session, slug="stays")
    run = new_run(session, version)
    crud_apps.unpublish(session, app_id=version.app_id)

    assert crud_apps.get_app(session, slug="gone") is None
    hidden = crud_apps.get_app(session, slug="gone", include_deleted=True)
    assert hidden is not None and hidden.deleted_at is not None
    assert [a.slug for a in crud_apps.list_apps(session)] == ["stays"]
    assert crud_runs.get_run(session, run_id=run.id) is not None
    assert [v.number for v in crud_apps.list_versions(session, app_id=version.app_id)] == [1]


def test_unpublish_twice_keeps_the_first_time_and_unknown_app_is_a_no_op(session: Session) -> None:
    version = publish(session, slug="x")
    crud_apps.unpublish(session, app_id=version.app_id)
    app = crud_apps.get_app(session, slug="x", include_deleted=True)
    assert app is not None
    first = app.deleted_at
    crud_apps.unpublish(session, app_id=version.app_id)
    crud_apps.unpublish(session, app_id=999)
    assert app.deleted_at == first


def test_publishing_an_unpublished_slug_revives_it_with_the_next_number(session: Session) -> None:
    publish(session, slug="phoenix")
    old = publish(session, slug="phoenix")
    crud_apps.unpublish(session, app_id=old.app_id)
    revived = publish(session, slug="phoenix", name="Reborn", public=True)

    assert (revived.app_id, revived.number) == (old.app_id, 3)
    app = crud_apps.get_app(session, slug="phoenix")
    assert app is not None
    assert (app.deleted_at, app.name, app.public) == (None, "Reborn", True)
    assert [a.slug for a in crud_apps.list_apps(session)] == ["phoenix"]


def test_list_apps_is_sorted_by_slug(session: Session) -> None:
    for slug in ("zeta", "alpha", "mid"):
        publish(session, slug=slug)
    assert [a.slug for a in crud_apps.list_apps(session)] == ["alpha", "mid", "zeta"]


def test_updated_at_moves_on_republish(session: Session) -> None:
    publish(session, slug="t")
    app = crud_apps.get_app(session, slug="t")
    assert app is not None
    created, first_update = app.created_at, app.updated_at
    publish(session, slug="t")
    assert app.created_at == created
    assert app.updated_at > first_update


def test_duplicate_number_is_refused_by_the_database(session: Session) -> None:
    version = publish(session, slug="race")
    session.add(AppVersion(app_id=version.app_id, number=1, spec={}, created_at=version.created_at))
    with pytest.raises(IntegrityError):
        session.commit()


def test_find_runnable_latest_or_pinned_and_never_an_unpublished_app(session: Session) -> None:
    first = publish(session, slug="demo", public=True)
    second = publish(session, slug="demo", public=True)
    other = publish(session, slug="other")
    latest = crud_apps.find_runnable(session, slug="demo")
    assert latest == crud_apps.RunnableVersion(app_id=second.app_id, slug="demo", public=True,
                                               version_id=second.id, number=2)
    pinned = crud_apps.find_runnable(session, slug="demo", number=1)
    assert pinned is not None and (pinned.version_id, pinned.number) == (first.id, 1)
    assert crud_apps.find_runnable(session, slug="demo", number=3) is None
    assert crud_apps.find_runnable(session, slug="missing") is None
    private = crud_apps.find_runnable(session, slug="other")
    assert private is not None and (private.public, private.version_id) == (False, other.id)

    crud_apps.unpublish(session, app_id=first.app_id)
    assert crud_apps.find_runnable(session, slug="demo") is None
    assert crud_apps.find_runnable(session, slug="demo", number=1) is None
    # Runs accepted before the unpublish still find their version by id (they run after a restart).
    by_id = crud_apps.runnable_by_id(session, version_id=first.id)
    assert by_id is not None and (by_id.slug, by_id.number) == ("demo", 1)
    assert crud_apps.runnable_by_id(session, version_id=12345) is None


def test_find_runnable_names_the_deployment_serving_the_app(session: Session) -> None:
    v1 = publish(session, slug="demo")
    v2 = publish(session, slug="demo")
    deployments = [crud_deployments.create_deployment(session, app_id=v1.app_id, version_id=v1.id,
                                                      provider="modal", settings={}, app_name=f"cp-demo-{i}")
                   for i in range(2)]
    live, deploying = (d.id for d in deployments)
    crud_deployments.finish_deployment(session, deployment_id=live, status=DeploymentStatus.LIVE.value,
                                       url="https://cp-demo.modal.run")
    found = crud_apps.find_runnable(session, slug="demo", number=1)
    assert found is not None and found.deployment_url is None  # live, but runs are not switched to it yet

    crud_deployments.set_serving(session, app_id=v1.app_id, deployment_id=live)
    pinned = crud_apps.find_runnable(session, slug="demo", number=1)
    assert pinned is not None
    assert (pinned.deployment_version_id, pinned.deployment_url, pinned.deployment_app_name) == (
        v1.id, "https://cp-demo.modal.run", "cp-demo-0")
    # The latest version is not the deployed one: the caller sees the deployment serves another version.
    latest = crud_apps.find_runnable(session, slug="demo")
    assert latest is not None and latest.version_id == v2.id and latest.deployment_version_id == v1.id

    crud_deployments.set_serving(session, app_id=v1.app_id, deployment_id=deploying)  # not live: not a route
    routed = crud_apps.find_runnable(session, slug="demo", number=1)
    assert routed is not None and routed.deployment_url is None
