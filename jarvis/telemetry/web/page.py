"""The status page's routes: ``GET /``, the login form, and the forms that change things.

`HttpServer` adds these routes when it is given a `PageBackend`. Reading
needs the read or the admin token (a bearer header, or a login that sets an
HttpOnly, SameSite=Strict session cookie); engaging or releasing the kill
switch, resetting a quarantine and an override (restart, roll back, scale:
`jarvis.telemetry.web.overrides`) need a session of the admin token and the
session's CSRF token in the form. Every login and every change, refused ones
included, goes through the same `Auditor` as the admin API; a backend that fails is
said on the page by its type only, and logged as the admin API logs it
(`jarvis.telemetry.outages`: an outage in one line naming the server). Templates
autoescape everything, and the Content-Security-Policy allows only this
server's own script, so a hostile resource name renders as inert text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from jarvis.telemetry.admin import BadRequestError, flip_request, state_json
from jarvis.telemetry.audit import Auditor
from jarvis.telemetry.auth import Credentials, Identity, bearer_token
from jarvis.telemetry.outages import log_failure
from jarvis.telemetry.web.overrides import page_action
from jarvis.telemetry.web.sessions import (
    COOKIE,
    SESSION_SECONDS,
    LoginThrottle,
    Notice,
    Session,
    Sessions,
)
from jarvis.telemetry.web.view import BudgetView, PageBackend, event_json, gather

if TYPE_CHECKING:
    import jinja2

__all__ = ["StatusPage"]

_HERE: Final = Path(__file__).parent
_STATIC: Final = {"page.css": "text/css", "page.js": "text/javascript"}
_SECURITY: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
DISABLED: Final = "status page disabled: set JARVIS_READ_TOKEN or JARVIS_ADMIN_TOKEN"
MAX_LIVE_EVENTS: Final = 100
#: Event ids are 64-bit integers in both databases.
_MAX_EVENT_ID: Final = 2**63 - 1

Viewer = Session | Identity
Form = MultiDictProxy[str | bytes | bytearray | FileField]


class StatusPage:
    """The page's handlers; one per `HttpServer`."""

    def __init__(
        self,
        *,
        backend: PageBackend,
        credentials: Credentials,
        auditor: Auditor,
        healthy: Callable[[], tuple[bool, str]],
        budget: Callable[[], BudgetView | None] | None,
    ) -> None:
        self._backend = backend
        self._credentials = credentials
        self._audit = auditor
        self._healthy = healthy
        self._budget = budget
        self._sessions = Sessions()
        self._throttle = LoginThrottle()
        self._environment: jinja2.Environment | None = None

    @property
    def _templates(self) -> jinja2.Environment:
        """The page templates, loaded at the first page served.

        Not at start: every CLI command imports this module through the
        daemon's, and jinja2 (~0.1 s) is not needed before the first tick or
        for ``/readyz``; only a person opening the page needs it.
        """
        if self._environment is None:
            import jinja2  # noqa: PLC0415

            self._environment = jinja2.Environment(
                loader=jinja2.FileSystemLoader(_HERE / "templates"),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
            )
        return self._environment

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_post("/ui/killswitch", self._flip)
        app.router.add_post("/ui/retries/reset", self._reset)
        app.router.add_post("/ui/override", self._override)
        app.router.add_get("/ui/events", self._events)
        app.router.add_get("/ui/static/{name}", self._static)

    # -- reading ------------------------------------------------------------------

    def _viewer(self, request: web.Request) -> Viewer | None:
        session = self._sessions.get(request.cookies.get(COOKIE))
        if session is not None:
            return session
        return self._credentials.identify(bearer_token(request))

    async def _index(self, request: web.Request) -> web.Response:
        if not self._credentials.enabled:
            # No link back: the page it would lead to is this one.
            context = {"title": "Disabled", "message": DISABLED, "back": False}
            return self._html("message.html", context, 403)
        viewer = self._viewer(request)
        if viewer is None:
            return self._html("login.html", {"error": None}, 401)
        context = await gather(self._backend, self._healthy, self._budget)
        session = viewer if isinstance(viewer, Session) else None
        identity = viewer.identity if isinstance(viewer, Session) else viewer
        context |= {
            "identity": identity,
            "csrf": session.csrf if session else "",
            "can_change": identity.may_change and session is not None,
            "flash": session.take_flash() if session else [],
        }
        return self._html("status.html", context)

    async def _events(self, request: web.Request) -> web.Response:
        if self._viewer(request) is None:
            return web.json_response({"error": "log in first"}, status=401, headers=_SECURITY)
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            error = {"error": "after: not a number"}
            return web.json_response(error, status=400, headers=_SECURITY)
        if abs(after) > _MAX_EVENT_ID:
            # The database would refuse it (OverflowError), read below as the store being away.
            error = {"error": f"after: at most {_MAX_EVENT_ID}"}
            return web.json_response(error, status=400, headers=_SECURITY)
        try:
            events = await self._backend.recent_events(after_id=after, limit=MAX_LIVE_EVENTS)
        except Exception as exc:  # noqa: BLE001 - the page says updates paused; the log says why
            self._failed("reading the events", exc)
            error = {"error": f"events unavailable ({exc.__class__.__name__})"}
            return web.json_response(error, status=503, headers=_SECURITY)
        ok, detail = self._healthy()
        body: dict[str, Any] = {
            "events": [event_json(e) for e in events],
            "health": {"ok": ok, "detail": detail},
        }
        try:
            body["killswitch"] = state_json(await self._backend.killswitch_status())
        except Exception:  # noqa: BLE001 - shown as unknown; the page says so
            body["killswitch"] = None
        return web.json_response(body, headers=_SECURITY)

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound  # answered as every unknown path is (`http._json_errors`)
        body = (_HERE / "static" / name).read_bytes()
        return web.Response(body=body, content_type=_STATIC[name], headers=_SECURITY)

    # -- logging in ---------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if isinstance(form, web.Response):
            return form
        remote = self._audit.client(request)
        if self._throttle.blocked(remote):
            message = "Too many failed logins from this address; wait a minute."
            await self._audit.record(request, result="forbidden", status=429, detail=message)
            return self._html("login.html", {"error": message}, 429)
        token = form.get("token")
        identity = self._credentials.identify(token if isinstance(token, str) else None)
        if identity is None:
            self._throttle.failed(remote)
            await self._audit.record(request, result="unauthorized", status=401, detail="login")
            return self._html("login.html", {"error": "That token is not valid."}, 401)
        session = self._sessions.create(identity)
        await self._audit.record(
            request, result="ok", status=303, detail=f"login as {identity.actor}"
        )
        response = _see_other()
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            path="/",
            # Secure only when the browser's connection is TLS, to us or to a
            # trusted proxy that says so: over plain HTTP (a port forward, a
            # private network) a browser drops a Secure cookie, and without
            # `http.trusted_proxies` a TLS proxy cannot be told from no proxy.
            secure=self._audit.secure(request),
        )
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        session = await self._form_session(request, need_change=False)
        if isinstance(session, web.Response):
            return session
        self._sessions.drop(session.id)
        await self._audit.record(request, result="ok", status=303, detail="logout")
        response = _see_other()
        response.del_cookie(COOKIE, path="/")
        return response

    # -- changing -----------------------------------------------------------------

    async def _form_session(
        self, request: web.Request, *, need_change: bool
    ) -> Session | web.Response:
        """The session a form acts for, or the (audited) refusal to send."""
        session = self._sessions.get(request.cookies.get(COOKIE))
        form = await self._form(request)
        if isinstance(form, web.Response):
            return form
        csrf = form.get("csrf")
        if session is None or not session.csrf_ok(csrf if isinstance(csrf, str) else None):
            message = "not logged in" if session is None else "stale or missing CSRF token"
            await self._audit.record(request, result="forbidden", status=403, detail=message)
            context = {"title": "Refused", "message": f"Refused: {message}. Reload the page."}
            return self._html("message.html", context, 403)
        if need_change and not session.identity.may_change:
            message = (
                f"{session.identity.actor} may not change anything; log in with the admin token"
            )
            await self._audit.record(request, result="forbidden", status=403, detail=message)
            session.flash.append(Notice(message, ok=False))
            return _see_other()
        return session

    async def _form(self, request: web.Request) -> Form | web.Response:
        """The posted form, or the (audited) refusal of a body too large or malformed to read."""
        try:
            return await request.post()
        # aiohttp raises LookupError for an unknown charset, RuntimeError for an
        # unknown Content-Transfer-Encoding or Content-Encoding of a part, and
        # RequestPayloadError for a body that does not decode as its Content-Encoding.
        except (
            web.HTTPException,
            web.RequestPayloadError,
            ValueError,
            LookupError,
            RuntimeError,
        ) as exc:
            status = exc.status if isinstance(exc, web.HTTPException) else 400
            message = f"form: unreadable ({exc.__class__.__name__})"
            await self._audit.record(request, result="bad_request", status=status, detail=message)
            return self._html("message.html", {"title": "Refused", "message": message}, status)

    async def _flip(self, request: web.Request) -> web.Response:
        session = await self._form_session(request, need_change=True)
        if isinstance(session, web.Response):
            return session
        form = await request.post()
        engaged = {"engage": True, "release": False}.get(str(form.get("action", "")))
        try:
            req = flip_request(engaged, form.get("reason", ""))
        except BadRequestError as exc:
            return await self._done(request, session, "bad_request", str(exc))
        actor = session.identity.actor
        try:
            await self._backend.set_killswitch(engaged=req.engaged, actor=actor, reason=req.reason)
        except Exception as exc:  # noqa: BLE001 - said on the page, never a traceback
            return await self._done(
                request, session, "error", self._failed("setting the kill switch", exc)
            )
        verb = "engaged" if req.engaged else "released"
        detail = f"killswitch {verb} by {actor}" + (f": {req.reason}" if req.reason else "")
        return await self._done(request, session, "ok", detail)

    async def _reset(self, request: web.Request) -> web.Response:
        session = await self._form_session(request, need_change=True)
        if isinstance(session, web.Response):
            return session
        resource = str((await request.post()).get("resource", "")).strip()
        actor = session.identity.actor
        try:
            rows = await self._backend.reset_retries(resource=resource, actor=actor)
        except LookupError:
            return await self._done(
                request, session, "bad_request", f"{resource}: not in the ledger"
            )
        except Exception as exc:  # noqa: BLE001 - said on the page, never a traceback
            return await self._done(
                request, session, "error", self._failed("resetting a quarantine", exc)
            )
        return await self._done(request, session, "ok", f"reset {rows} record(s) for {resource}")

    async def _override(self, request: web.Request) -> web.Response:
        """Restart, roll back or scale a resource through the daemon's next tick and guard."""
        session = await self._form_session(request, need_change=True)
        if isinstance(session, web.Response):
            return session
        form = await request.post()
        actor = session.identity.actor
        try:
            action = page_action(form, actor)
        except ValueError as exc:
            return await self._done(request, session, "bad_request", f"override refused: {exc}")
        try:
            result = await self._backend.override(action)
        except Exception as exc:  # noqa: BLE001 - said on the page, never a traceback
            return await self._done(
                request, session, "error", self._failed("queueing an override", exc)
            )
        # Audited as "ok" when applied, like the page's other changes; otherwise what stopped it.
        state = "ok" if result.ok else result.state
        return await self._done(request, session, state, f"override: {result.detail}")

    async def _done(
        self, request: web.Request, session: Session, result: str, detail: str
    ) -> web.Response:
        """Audit a form's outcome, show it once on the page, and go back to it."""
        await self._audit.record(request, result=result, status=303, detail=detail)
        session.flash.append(Notice(self._audit.redact(detail), ok=result == "ok"))
        return _see_other()

    def _failed(self, doing: str, exc: Exception) -> str:
        """Log what the backend could not do (an outage in its one line naming the server,
        anything else with its traceback); what the page says of it, the type only, as the
        exception's text may carry connection strings."""
        log_failure(self._backend.outage, exc, "admin.backend_failed", doing=doing)
        return f"the daemon could not do that right now ({exc.__class__.__name__})"

    def _html(self, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
        body = self._templates.get_template(template).render(**context)
        return web.Response(text=body, status=status, content_type="text/html", headers=_SECURITY)


def _see_other() -> web.Response:
    # Post/redirect/get: a reload never re-submits a form.
    return web.Response(status=303, headers={**_SECURITY, "Location": "/"})
