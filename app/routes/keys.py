"""API keys: create (shown once), list, revoke. Admin only; the first admin key comes from the CLI."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from app.deps import AdminDep, DbInt, ServicesDep
from app.errors import NotFound, error_responses
from app.routes.schemas import KeyCreate, KeyCreated, KeyOut
from db import crud_keys

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=error_responses(400, 401, 403, 404, 413, 422))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, services: ServicesDep, _: AdminDep) -> KeyCreated:
    def create(session: Session) -> KeyCreated:
        key, token = crud_keys.create_api_key(session, name=body.name, admin=body.admin,
                                                 workflows=body.workflows)
        session.commit()
        return KeyCreated(**KeyOut.model_validate(key, from_attributes=True).model_dump(), key=token)

    return await services.db(create)


@router.get("")
async def list_keys(services: ServicesDep, _: AdminDep) -> list[KeyOut]:
    def listed(session: Session) -> list[KeyOut]:
        return [KeyOut.model_validate(k, from_attributes=True) for k in crud_keys.list_api_keys(session)]

    return await services.db(listed)


@router.delete("/{key_id}")
async def revoke_key(key_id: DbInt, services: ServicesDep, _: AdminDep) -> KeyOut:
    def revoke(session: Session) -> KeyOut:
        key = crud_keys.revoke_api_key(session, key_id=key_id)
        if key is None:
            raise NotFound(f"No API key {key_id}.")
        session.commit()
        return KeyOut.model_validate(key, from_attributes=True)

    return await services.db(revoke)
