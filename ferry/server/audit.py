"""The audit trail's recorder: ASGI middleware around every API route.

It sees each call's final status (errors, refusals and crashes included),
asks ``ferry.server.audit_policy`` whether to record it and under which
organization, and appends one ``AuditEntry`` to the store before the answer
leaves (so a client that got its answer finds the record). Request bodies are
never read; an error's sentence is taken from the (small) error body.

The caller is ``request.state.principal`` (set by the ``authorize``
dependency; absent when authentication failed). The route template and path
parameters are those the router matched. A route may add what only it knows
with ``note_audit`` (the organization of an app it created, the invitee who
accepted an invitation).

Cost per recorded call: one insert and, unless ``authorize`` already looked it
up (for every caller but the operator), one indexed read of the named app's
organization. The insert runs on the event loop when the store's write lock is
free (a thread hand-off costs more than the insert, the more so on a busy
machine) and in the threadpool otherwise, so a busy store never stalls the
loop. A call that may delete or move its app reads the organization first. A
failed insert is logged and the answer still goes out: the change has happened
by then, and refusing to answer would not undo it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, unquote

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferry.errors import FerryError
from ferry.model.audit import AuditEntry
from ferry.server.audit_policy import (
    Target,
    actor_of,
    is_infrastructure,
    might_record,
    outcome_text,
    record_org,
    should_record,
)
from ferry.server.authz import Principal
from ferry.server.clock import Clock
from ferry.server.route_path import route_template
from ferry.store import StateStore

__all__ = ["AuditMiddleware", "note_audit"]

log = logging.getLogger("ferry.server.audit")

_APPS = "/v1/apps/"
_ORGS = "/v1/orgs/{slug}"
_NOTE = "audit_note"


def note_audit(
    request: Request, *, org: str | None = None, actor: str | None = None, **target: str
) -> None:
    """Tell the recorder what this call touched beyond its path (never a secret).

    ``org``: the organization whose trail shows the call; ``actor``: who made it
    when no token did (an invitation's invitee); ``target``: more named things.
    Later notes add to earlier ones.
    """
    state: dict[str, Any] = request.scope.setdefault("state", {})
    note: dict[str, Any] = state.setdefault(_NOTE, {})
    if org is not None:
        note["org"] = org
    if actor is not None:
        note["actor"] = actor
    note.setdefault("target", {}).update(target)


def _may_remove_app(method: str, path: str) -> bool:
    """``DELETE /v1/apps/{name}`` and ``POST /v1/apps/{name}/move``."""
    if not path.startswith(_APPS):
        return False
    rest = path[len(_APPS) :].rstrip("/").split("/")
    return (method == "DELETE" and len(rest) == 1) or (
        method == "POST" and len(rest) == 2 and rest[1] == "move"
    )


class AuditMiddleware:
    """Records the calls ``audit_policy.should_record`` selects, in ``store``."""

    def __init__(self, app: ASGIApp, store: StateStore, clock: Clock) -> None:
        self.app = app
        self.store = store
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/") or is_infrastructure(path):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        method: str = scope["method"]
        # Resolved before the call when it may delete or move the app (afterwards the
        # app no longer tells); other calls resolve it off the event loop, at the end.
        early_org = self._app_org_of_path(path) if _may_remove_app(method, path) else None
        call = _Call(self, scope, state, send, early_org)
        try:
            await self.app(scope, receive, call.send)
        except Exception:
            if not call.recorded:
                await call.finish(500, b"")
            raise

    def _app_org_of_path(self, path: str) -> str | None:
        if not path.startswith(_APPS):
            return None
        name = unquote(path[len(_APPS) :].split("/", 1)[0])
        return self.store.app_org(name) if name else None

    def _org_exists(self, slug: str) -> bool:
        try:
            self.store.get_org(slug)
        except FerryError:
            return False
        return True

    def _target(
        self, scope: Scope, state: dict[str, Any], params: dict[str, str], early_org: str | None
    ) -> Target:
        app_name = params.get("app_name")
        app_org = early_org
        if app_name is not None and app_org is None:
            # ``authorize`` looked it up for any caller but the operator: no second read.
            found = state.get("app_org") if "app_org" in state else self.store.app_org(app_name)
            app_org = found if isinstance(found, str) else None
        route = route_template(scope) or ""
        slug = params.get("slug") if route.startswith(_ORGS) else None
        if slug is None and app_name is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            slug = (query.get("org_slug") or [None])[0] or None
        if slug is not None and not self._org_exists(slug):
            slug = None
        return Target(app_name=app_name, app_org=app_org, org_slug=slug)

    def entry(
        self, scope: Scope, state: dict[str, Any], status: int, body: bytes, early_org: str | None
    ) -> AuditEntry | None:
        """The record of a finished call, or ``None`` when it is not recorded. Reads the store."""
        template = route_template(scope)
        if template is None or is_infrastructure(template):
            return None  # no route matched: nothing could have changed
        found = state.get("principal")
        principal = found if isinstance(found, Principal) else None
        params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
        target = self._target(scope, state, params, early_org)
        method: str = scope["method"]
        if not should_record(method, status, principal, target):
            return None
        note: dict[str, Any] = state.get(_NOTE, {})
        if "org" in note and self._org_exists(note["org"]):
            target = replace(target, noted_org=note["org"])
        client = scope.get("client")
        return AuditEntry(
            at=self.clock.now(),
            org_slug=record_org(principal, target),
            actor=actor_of(principal, note.get("actor")),
            token_id=None if principal is None else principal.token_id,
            method=method,
            route=template,
            target={**params, **note.get("target", {})},
            source=str(client[0]) if client else "",
            status=status,
            outcome=outcome_text(status, body),
        )


class _Call:
    """One call's passage through the recorder: holds back an error answer until
    its sentence is read, records, then lets the answer go."""

    def __init__(
        self,
        recorder: AuditMiddleware,
        scope: Scope,
        state: dict[str, Any],
        send: Send,
        early_org: str | None,
    ) -> None:
        self.recorder = recorder
        self.scope = scope
        self.state = state
        self.downstream = send
        self.early_org = early_org
        self.recorded = False
        self.held: list[Message] = []
        self.body = b""

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status = int(message["status"])
            if status < 400:
                await self.finish(status, b"")
                await self.downstream(message)
                return
            self.held.append(message)
            return
        if self.held and kind == "http.response.body":
            self.held.append(message)
            self.body += message.get("body", b"")
            if message.get("more_body", False):
                return
            held, self.held = self.held, []
            await self.finish(int(held[0]["status"]), self.body)
            for queued in held:
                await self.downstream(queued)
            return
        await self.downstream(message)

    async def finish(self, status: int, body: bytes) -> None:
        """Record the call if the policy may select it; never raises."""
        self.recorded = True
        found = self.state.get("principal")
        principal = found if isinstance(found, Principal) else None
        if not might_record(self.scope["method"], status, principal):
            return  # the common read: decided without touching the store
        store = self.recorder.store
        try:
            entry = self.recorder.entry(self.scope, self.state, status, body, self.early_org)
            # Inserted here, on the loop, when no other write is under way (tens of µs);
            # else in the threadpool, so a busy store never stalls the loop.
            if entry is not None and store.try_append_audit(entry) is None:
                await anyio.to_thread.run_sync(store.append_audit, entry)
        except Exception:
            log.exception(
                "could not record %s %s in the audit trail",
                self.scope.get("method"),
                self.scope.get("path"),
            )
