"""Deployments of app versions to a serverless provider (Modal, RunPod): recorded when a deploy starts, updated
as it goes, switched on as the app's runtime. Write functions commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from db.models import Deployment, DeploymentStatus, utcnow

# The deployment an app's runs are switched to: at most one per app, and only while it is live.
SERVING = and_(Deployment.serving.is_(True), Deployment.status == DeploymentStatus.LIVE.value)

LOG_LIMIT = 200_000  # characters of deploy log kept per deployment (the tail)


def create_deployment(session: Session, *, app_id: int, version_id: int, provider: str, settings: dict[str, Any],
                      app_name: str) -> Deployment:
    now = utcnow()
    deployment = Deployment(app_id=app_id, version_id=version_id, provider=provider, settings=settings,
                            app_name=app_name, status=DeploymentStatus.DEPLOYING.value, log="", created_at=now,
                            updated_at=now)
    session.add(deployment)
    session.commit()
    return deployment


def get_deployment(session: Session, *, deployment_id: int) -> Deployment | None:
    return session.get(Deployment, deployment_id)


def list_deployments(session: Session, *, app_id: int) -> list[Deployment]:
    """Newest first."""
    return list(session.scalars(select(Deployment).where(Deployment.app_id == app_id)
                                .order_by(Deployment.id.desc())))


def append_log(session: Session, *, deployment_id: int, lines: list[str]) -> None:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None or not lines:
        return
    deployment.log = (deployment.log + "".join(f"{line}\n" for line in lines))[-LOG_LIMIT:]
    session.commit()


def finish_deployment(session: Session, *, deployment_id: int, status: str, url: str | None = None,
                      error: str | None = None) -> Deployment | None:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        return None
    deployment.status = status
    if url is not None:
        deployment.url = url
    deployment.error = error
    if status != DeploymentStatus.LIVE.value:
        deployment.serving = False
    deployment.updated_at = utcnow()
    session.commit()
    return deployment


def fail_unfinished(session: Session, *, reason: str) -> int:
    """At start-up: a deploy still `deploying` was cut short when the app stopped; it is failed with `reason`."""
    result = session.execute(update(Deployment).where(Deployment.status == DeploymentStatus.DEPLOYING.value)
                             .values(status=DeploymentStatus.FAILED.value, error=reason, serving=False,
                                     updated_at=utcnow()))
    session.commit()
    return result.rowcount  # type: ignore[attr-defined]


def mark_stopped(session: Session, *, app_id: int, app_name: str, provider: str = "modal") -> int:
    """Every live deployment of that provider app is stopped (a teardown stops them all); returns how many."""
    result = session.execute(update(Deployment).where(
        Deployment.app_id == app_id, Deployment.app_name == app_name, Deployment.provider == provider,
        Deployment.status.in_([DeploymentStatus.LIVE.value, DeploymentStatus.DEPLOYING.value]))
        .values(status=DeploymentStatus.STOPPED.value, serving=False, updated_at=utcnow()))
    session.commit()
    return result.rowcount  # type: ignore[attr-defined]


def set_serving(session: Session, *, app_id: int, deployment_id: int | None) -> None:
    """Route the app's runs to this deployment (None: back to the local engines)."""
    session.execute(update(Deployment).where(Deployment.app_id == app_id).values(serving=False))
    if deployment_id is not None:
        session.execute(update(Deployment).where(Deployment.id == deployment_id).values(serving=True))
    session.commit()


def serving_deployment(session: Session, *, app_id: int) -> Deployment | None:
    return session.scalar(select(Deployment).where(Deployment.app_id == app_id, SERVING))


def superseded(session: Session, *, app_id: int, app_name: str, keep_id: int, provider: str = "modal") -> None:
    """A redeploy replaces the provider app: older live deployments of it (on that provider) are stopped."""
    session.execute(update(Deployment).where(
        Deployment.app_id == app_id, Deployment.app_name == app_name, Deployment.provider == provider,
        Deployment.id != keep_id,
        Deployment.status == DeploymentStatus.LIVE.value).values(status=DeploymentStatus.STOPPED.value,
                                                                  serving=False))
    session.commit()
