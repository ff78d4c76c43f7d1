"""Who may open the studio and the private forms: a signed session cookie from /login.

Two ways in: the studio's user and password (`--auth user:pass` or COMFY_PUBLISHER_AUTH), or an API key
(an admin key opens the studio too; any live key opens private forms). Without studio credentials the
studio is open to whoever reaches the port (the default host is 127.0.0.1), and so are private forms.
The REST API is not behind this: it keeps its Bearer keys. Failed logins are throttled per client address
(app.auth.throttle): after a few, /login answers 429 with Retry-After without checking anything.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.orm import Session, sessionmaker

from app.auth.throttle import LoginThrottle
from app.v2.errors import V2_PATH
from db import crud_keys
from db.models import ApiKey

COOKIE = "comfy_publisher_session"
SESSION_DAYS = 14
_KEY_CHECK_TTL_S = 10.0  # a revoked key's cookie stops working within this long


@dataclass
class Who:
    studio: bool  # may use the studio (publish, manage)
    key_id: int | None = None


@dataclass
class WebAuth:
    credentials: tuple[str, str] | None
    secret: bytes
    sessions: sessionmaker[Session]
    is_public_app: Callable[[str], bool] = lambda slug: True
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    _keys: dict[int, tuple[float, ApiKey | None]] = field(default_factory=dict)

    # --- cookies ---------------------------------------------------------------------------------------

    def sign(self, subject: str) -> str:
        payload = f"{subject}|{int(time.time()) + SESSION_DAYS * 86400}"
        mac = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
        return base64.urlsafe_b64encode(f"{payload}|{mac}".encode()).decode()

    def _subject(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            payload, _, mac = base64.urlsafe_b64decode(cookie.encode()).decode().rpartition("|")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
        subject, _, expires = payload.rpartition("|")
        if not hmac.compare_digest(mac, expected) or not expires.isdigit() or int(expires) < time.time():
            return None
        return subject

    def _key(self, key_id: int) -> ApiKey | None:
        checked_at, key = self._keys.get(key_id, (0.0, None))
        if time.monotonic() - checked_at > _KEY_CHECK_TTL_S:
            with self.sessions() as session:
                key = session.get(ApiKey, key_id)
                if key is not None:
                    session.expunge(key)
            self._keys[key_id] = (time.monotonic(), key)
        return key if key is not None and key.revoked_at is None else None

    def who(self, cookies: dict[str, str]) -> Who:
        subject = self._subject(cookies.get(COOKIE)) or ""
        if self.credentials is None or subject == f"studio:{self.credentials[0]}":
            who = Who(studio=True)
        else:
            who = Who(studio=False)
        if subject.startswith("key:") and subject[4:].isdigit():
            key = self._key(int(subject[4:]))
            if key is not None:
                who = Who(studio=who.studio or key.admin, key_id=key.id)
        return who

    def login(self, user: str, password: str, token: str) -> str | None:
        """The cookie value for good credentials or a live key; None otherwise."""
        if token.strip():
            with self.sessions() as session:
                key = crud_keys.verify_api_key(session, token=token.strip())
            return self.sign(f"key:{key.id}") if key is not None else None
        if self.credentials is not None and hmac.compare_digest(f"{user}:{password}",
                                                                f"{self.credentials[0]}:{self.credentials[1]}"):
            return self.sign(f"studio:{user}")
        return None

    # --- the guard -------------------------------------------------------------------------------------

    def allowed(self, path: str, cookies: dict[str, str]) -> bool | None:
        """None: not a guarded path; else whether this visitor may have it."""
        if path == "/studio" or path.startswith("/studio/"):
            return self.who(cookies).studio
        if path.startswith("/apps/"):
            slug = path[len("/apps/"):].split("/", 1)[0]
            if self.is_public_app(slug):
                return True
            who = self.who(cookies)
            return who.studio or who.key_id is not None
        return None


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            jar = {}
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                jar[key] = val
            return jar
    return {}


class Guard:
    """Pure ASGI middleware: only /studio and /apps/* pay for the check (the REST API does not)."""

    def __init__(self, app: Callable[..., Awaitable[None]], auth: WebAuth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        # An app's Comfy API v2 (/apps/{slug}/api/v2/...) is an API: its keys are checked by its routes.
        if scope["type"] in ("http", "websocket") and path.startswith(("/studio", "/apps/")) and V2_PATH not in path:
            # In a thread: a visitor logged in with a key may need it looked up in the database.
            allowed = await asyncio.to_thread(self.auth.allowed, path, _cookies(scope))
            if allowed is False:
                await self._deny(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _deny(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        path = scope["path"]
        # A page (/studio, /apps/x, with or without the slash, or any link a browser follows: it asks for HTML)
        # goes to the login; the page's own requests get 401.
        accepts_html = any(name == b"accept" and b"text/html" in value for name, value in scope.get("headers", ()))
        is_page = scope.get("method") == "GET" and (path.endswith("/") or path == "/studio" or accepts_html
                                                    or (path.startswith("/apps/") and path.count("/") == 2))
        if is_page:
            response = RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        else:
            response = JSONResponse({"detail": "Log in first: open /login (studio password or an API key)."},
                                    status_code=401)
        await response(scope, receive, send)


def key_id_of(auth: WebAuth | None, request: Any) -> int | None:
    """The API key a form's visitor logged in with (recorded with their runs). `request` is anything with
    `.cookies` (a Starlette or a gr.Request). May read the key from the database: call it from a thread."""
    if auth is None or request is None:
        return None
    return auth.who(dict(request.cookies or {})).key_id


# --- /login and /logout -----------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    """A path on this server, else the studio: never another site. Browsers read `/\\evil.com` as
    `//evil.com` and drop tabs and newlines, so backslashes, control characters and `//` are refused too."""
    parts = urlsplit(target)
    local = target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc
    return target if local and "\\" not in target and target.isprintable() else "/studio/"


def _login_page(next_url: str, error: str = "", has_password: bool = True) -> str:
    error_html = f"<p class='error'>{html.escape(error)}</p>" if error else ""
    password = """<label>User <input name='user' autocomplete='username' autofocus></label>
<label>Password <input name='password' type='password' autocomplete='current-password'></label>
<p class='or'>or</p>""" if has_password else ""
    return f"""<!doctype html><html><head><meta charset='utf-8'><title>Log in · Comfy Publisher</title>
<meta name='viewport' content='width=device-width'>
<style>body{{font-family:system-ui,sans-serif;background:#f5f6fa;color:#1e1f29;display:grid;place-items:center;
min-height:100vh;margin:0}}form{{background:#fff;padding:2rem 2.2rem;border-radius:14px;width:340px;
box-shadow:0 6px 30px #0001}}h1{{font-size:1.3rem;margin:0 0 1.2rem}}label{{display:block;font-size:.85rem;
margin:.7rem 0;color:#555}}input{{display:block;width:100%;box-sizing:border-box;padding:.55rem .7rem;
margin-top:.3rem;border:1px solid #ccd;border-radius:8px;font-size:1rem}}button{{margin-top:1.2rem;width:100%;
padding:.65rem;border:0;border-radius:8px;background:#4f46e5;color:#fff;font-size:1rem;cursor:pointer}}
.or{{text-align:center;color:#999;margin:.4rem 0}}.error{{color:#b00020}}</style></head><body>
<form method='post' action='/login'><h1>Comfy Publisher</h1>{error_html}
<input type='hidden' name='next' value='{html.escape(next_url)}'>{password}
<label>API key <input name='key' type='password' placeholder='cp_…'></label>
<button type='submit'>Log in</button></form></body></html>"""


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/studio/") -> str:
    auth: WebAuth = request.app.state.web_auth
    return _login_page(_safe_next(next), has_password=auth.credentials is not None)


@router.post("/login", response_model=None)
def login(request: Request, user: str = Form(""), password: str = Form(""), key: str = Form(""),
          next: str = Form("/studio/")) -> HTMLResponse | RedirectResponse:
    auth: WebAuth = request.app.state.web_auth
    client = request.client.host if request.client else "unknown"
    wait = auth.throttle.retry_after(client)
    if wait is not None:  # nothing is checked while the address is locked out: no guess can succeed
        return HTMLResponse(_login_page(_safe_next(next), f"Too many failed logins from this address; try again "
                                                          f"in {wait} s.", auth.credentials is not None),
                            status_code=429, headers={"Retry-After": str(wait)})
    cookie = auth.login(user, password, key)
    if cookie is None:
        auth.throttle.failed(client)
        return HTMLResponse(_login_page(_safe_next(next), "Wrong user, password or API key.",
                                        auth.credentials is not None), status_code=401)
    auth.throttle.succeeded(client)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=SESSION_DAYS * 86400, httponly=True, samesite="lax")
    return response


@router.get("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
