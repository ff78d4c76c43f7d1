"""Deployment records across a restart: a deploy cut short is failed with the reason, the others are kept."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db import crud_apps, crud_deployments
from db.models import DeploymentStatus


def test_a_deploy_cut_short_by_a_restart_is_failed_with_the_reason(session: Session) -> None:
    version = crud_apps.publish_version(session, slug="a", name="A", description="", public=False, spec={})
    made = [crud_deployments.create_deployment(session, app_id=version.app_id, version_id=version.id,
                                               provider="modal", settings={}, app_name="cp-a") for _ in range(3)]
    live, running, failed = (d.id for d in made)
    crud_deployments.finish_deployment(session, deployment_id=live, status=DeploymentStatus.LIVE.value,
                                       url="https://x.modal.run")
    crud_deployments.finish_deployment(session, deployment_id=failed, status=DeploymentStatus.FAILED.value,
                                       error="no GPU")

    assert crud_deployments.fail_unfinished(session, reason="the app stopped") == 1
    rows = {d.id: d for d in crud_deployments.list_deployments(session, app_id=version.app_id)}
    assert (rows[running].status, rows[running].error) == ("failed", "the app stopped")
    assert (rows[live].status, rows[failed].error) == ("live", "no GPU")
    assert crud_deployments.fail_unfinished(session, reason="again") == 0
