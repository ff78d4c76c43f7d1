"""A deployment recorded straight into an app server's database, as a finished deploy records it."""

from __future__ import annotations

from typing import Any

from tests.support.server import AppServer


def record_live_deployment(server: AppServer, slug: str, url: str, settings: dict[str, Any] | None = None, *,
                           provider: str = "modal") -> None:
    """What a deploy records once the provider answered (Modal's or RunPod's cloud cannot be reached from here)."""
    from db import crud_apps, crud_deployments
    from db.models import DeploymentStatus
    from db.session import create_db_engine, make_session_factory

    engine = create_db_engine(f"sqlite:///{server.data_dir / 'publisher.db'}")
    with make_session_factory(engine)() as session:
        app = crud_apps.get_app(session, slug=slug)
        assert app is not None
        version = crud_apps.get_version(session, app_id=app.id, number=None)
        deployment = crud_deployments.create_deployment(session, app_id=app.id, version_id=version.id,
                                                        provider=provider, settings=settings or {},
                                                        app_name=f"cp-{slug}")
        crud_deployments.finish_deployment(session, deployment_id=deployment.id, status=DeploymentStatus.LIVE.value,
                                           url=url)
    engine.dispose()
