from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from db import crud_keys
from db.migrate import upgrade_to_head
from db.models import ApiKey, utcnow
from db.session import create_db_engine, make_session_factory, sqlite_url


def test_created_token_is_shown_once_and_only_its_hash_is_kept(session: Session) -> None:
    key, token = crud_keys.create_api_key(session, name="ci", admin=False)
    other_key, other_token = crud_keys.create_api_key(session, name="ci", admin=True)
    assert token.startswith("cpk_") and len(token) >= 4 + 43  # 32 random bytes in url-safe base64
    assert token != other_token and key.key_hash != other_key.key_hash
    assert key.prefix == token[:12] and key.prefix != token
    assert key.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (key.name, key.admin, other_key.admin, key.revoked_at, key.last_used_at) == ("ci", False, True, None, None)
    # No column of any stored key holds a token.
    rows = session.execute(text("SELECT * FROM api_keys")).all()
    assert len(rows) == 2
    stored_text = repr(rows)
    assert token not in stored_text and other_token not in stored_text
    assert key.key_hash in stored_text


def test_token_never_reaches_the_sqlite_file(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade_to_head(url)
    engine = create_db_engine(url)
    try:
        with make_session_factory(engine)() as session:
            key, token = crud_keys.create_api_key(session, name="admin", admin=True)
            assert crud_keys.verify_api_key(session, token=token) is not None
        files = [p for p in tmp_path.iterdir() if p.name.startswith("publisher.db")]
        on_disk = b"".join(p.read_bytes() for p in files)  # the main file and the WAL
        # Reading the right bytes: the hash is there (in the WAL until a checkpoint).
        assert key.key_hash.encode() in on_disk
        assert token.encode() not in on_disk
        assert token[len(key.prefix) :].encode() not in on_disk  # not even the secret part alone
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        main_file = (tmp_path / "publisher.db").read_bytes()
        assert key.key_hash.encode() in main_file and token.encode() not in main_file
    finally:
        engine.dispose()


def test_verify_accepts_the_token_and_records_its_use(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        key, token = crud_keys.create_api_key(session, name="app", admin=False)
        before = utcnow()
        verified = crud_keys.verify_api_key(session, token=token)
    assert verified is not None and verified.id == key.id
    with session_factory() as session:
        stored = session.get(ApiKey, key.id)
    assert stored is not None and stored.last_used_at is not None
    assert before <= stored.last_used_at <= utcnow()


def test_last_use_is_written_at_most_once_a_minute(session: Session) -> None:
    key, token = crud_keys.create_api_key(session, name="app", admin=False)

    def last_used() -> datetime | None:
        session.expire_all()
        stored = session.get(ApiKey, key.id)
        assert stored is not None
        return stored.last_used_at

    crud_keys.verify_api_key(session, token=token)
    first = last_used()
    assert first is not None
    crud_keys.verify_api_key(session, token=token)
    assert last_used() == first
    two_minutes_ago = utcnow() - timedelta(minutes=2)
    session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=two_minutes_ago))
    session.commit()
    crud_keys.RECENT_KEYS.forget()  # two minutes on, the key's memory (RECENT_S) has long expired
    verified = crud_keys.verify_api_key(session, token=token)
    assert verified is not None and verified.id == key.id and not verified.admin
    refreshed = last_used()
    assert refreshed is not None and refreshed > two_minutes_ago + timedelta(minutes=1)


def test_a_key_verified_lately_is_answered_from_memory_until_revoked_here(session: Session) -> None:
    key, token = crud_keys.create_api_key(session, name="poller", admin=False)
    assert crud_keys.recently_verified(token) is None  # never verified yet: the database is asked
    assert crud_keys.verify_api_key(session, token=token) == crud_keys.VerifiedKey(id=key.id, admin=False)
    assert crud_keys.recently_verified(token) == crud_keys.VerifiedKey(id=key.id, admin=False)
    crud_keys.revoke_api_key(session, key_id=key.id)
    assert crud_keys.recently_verified(token) is None
    assert crud_keys.verify_api_key(session, token=token) is None


def test_a_key_revoked_by_another_process_is_refused_once_its_memory_expires(
        session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    key, token = crud_keys.create_api_key(session, name="poller", admin=True)
    assert crud_keys.verify_api_key(session, token=token) is not None
    # The CLI revokes it in its own process: this one's memory is not told.
    session.execute(update(ApiKey).where(ApiKey.id == key.id).values(revoked_at=utcnow()))
    session.commit()
    assert crud_keys.verify_api_key(session, token=token) is not None  # within RECENT_S: still remembered
    monkeypatch.setattr(crud_keys, "RECENT_S", 0.0)  # ...RECENT_S later
    assert crud_keys.recently_verified(token) is None
    assert crud_keys.verify_api_key(session, token=token) is None


@pytest.mark.parametrize("wrong", ["", "cpk_", "cpk_not-a-key", "Bearer x", "{token}x", "{token_no_prefix}"])
def test_verify_refuses_unknown_tokens(session: Session, wrong: str) -> None:
    _, token = crud_keys.create_api_key(session, name="app", admin=False)
    candidate = wrong.format(token=token, token_no_prefix=token.removeprefix("cpk_"))
    assert crud_keys.verify_api_key(session, token=candidate) is None


def test_revoked_key_is_refused(session: Session) -> None:
    key, token = crud_keys.create_api_key(session, name="leaked", admin=True)
    _, kept_token = crud_keys.create_api_key(session, name="kept", admin=True)
    revoked = crud_keys.revoke_api_key(session, key_id=key.id)
    assert revoked is not None and revoked.id == key.id and revoked.revoked_at is not None
    assert crud_keys.verify_api_key(session, token=token) is None
    assert crud_keys.verify_api_key(session, token=kept_token) is not None


def test_revoke_by_prefix(session: Session) -> None:
    key, token = crud_keys.create_api_key(session, name="by-prefix", admin=False)
    other, other_token = crud_keys.create_api_key(session, name="other", admin=False)
    revoked = crud_keys.revoke_api_key(session, prefix=key.prefix)
    assert revoked is not None and revoked.id == key.id
    assert crud_keys.verify_api_key(session, token=token) is None
    assert crud_keys.verify_api_key(session, token=other_token) is not None
    assert crud_keys.revoke_api_key(session, prefix="cpk_nothere") is None
    assert crud_keys.revoke_api_key(session, key_id=other.id + 100) is None


def test_revoking_twice_keeps_the_first_time(session: Session) -> None:
    key, _ = crud_keys.create_api_key(session, name="k", admin=False)
    first = crud_keys.revoke_api_key(session, key_id=key.id)
    assert first is not None
    revoked_at = first.revoked_at
    again = crud_keys.revoke_api_key(session, prefix=key.prefix)
    assert again is not None and again.id == key.id and again.revoked_at == revoked_at


def test_revoke_needs_exactly_one_selector_and_refuses_an_ambiguous_prefix(session: Session) -> None:
    a, _ = crud_keys.create_api_key(session, name="a", admin=False)
    b, _ = crud_keys.create_api_key(session, name="b", admin=False)
    with pytest.raises(ValueError):
        crud_keys.revoke_api_key(session)
    with pytest.raises(ValueError):
        crud_keys.revoke_api_key(session, key_id=a.id, prefix=a.prefix)
    session.execute(update(ApiKey).where(ApiKey.id == b.id).values(prefix=a.prefix))  # a 1-in-2^48 collision
    session.commit()
    with pytest.raises(ValueError, match="revoke by id"):
        crud_keys.revoke_api_key(session, prefix=a.prefix)
    assert session.scalars(select(ApiKey.revoked_at)).all() == [None, None]


def test_list_keys_includes_revoked_ones_oldest_first(session: Session) -> None:
    names = ["first", "second", "third"]
    keys = [crud_keys.create_api_key(session, name=n, admin=False)[0] for n in names]
    crud_keys.revoke_api_key(session, key_id=keys[1].id)
    listed = crud_keys.list_api_keys(session)
    assert [k.name for k in listed] == names
    assert [k.revoked_at is not None for k in listed] == [False, True, False]
