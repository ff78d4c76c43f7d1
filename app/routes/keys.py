"""API keys: create (shown once), list, revoke. Admin only; the first admin key comes from the CLI."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from app.deps import AdminDep, SessionDep
from app.schemas import KeyCreate, KeyCreated, KeyOut
from db import crud_keys

router = APIRouter(prefix="/api/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(body: KeyCreate, session: SessionDep, _: AdminDep) -> KeyCreated:
    key, token = crud_keys.create_api_key(session, name=body.name, admin=body.admin)
    session.commit()
    return KeyCreated(**KeyOut.model_validate(key, from_attributes=True).model_dump(), key=token)


@router.get("")
def list_keys(session: SessionDep, _: AdminDep) -> list[KeyOut]:
    return [KeyOut.model_validate(k, from_attributes=True) for k in crud_keys.list_api_keys(session)]


@router.delete("/{key_id}")
def revoke_key(key_id: int, session: SessionDep, _: AdminDep) -> KeyOut:
    key = crud_keys.revoke_api_key(session, key_id=key_id)
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No API key {key_id}.")
    session.commit()
    return KeyOut.model_validate(key, from_attributes=True)
