"""`ferry postgres attach|detach`: a database and user for an app, and its ``DATABASE_URL``.

Attaching ``my-app`` to cluster ``db`` (Fly's behaviour, without Flycast yet):

1. refuses when ``my-app`` does not exist or already has a ``DATABASE_URL`` secret;
2. on the primary, in one psql script fed on stdin (the new password is on no
   command line): records the attachment in the cluster's own table
   ``ferry_attachments`` (so ``destroy`` can refuse while apps are attached, even
   after a failover: the table is replicated), makes the role ``my_app`` with a
   fresh password (or gives a detached one its login back) and the database
   ``my_app`` owned by it;
3. sets ``DATABASE_URL=postgres://my_app:…@db.flycast:5432/my_app``
   as the app's secret, which rolls its machines: port 5432 of any member is its
   forwarder to the current primary, so the nearest started member will do. If
   that fails the psql step is undone (login revoked, attachment forgotten).

Detaching revokes the role's login, forgets the attachment and unsets the
secret; the database and its data stay, as on Fly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ferry.client import FerryClient
from ferry.errors import ConflictError, NotFoundError, UnavailableError
from ferry.postgres import manage, plan

__all__ = ["Attachment", "attach_app", "detach_app"]

URL_SECRET = "DATABASE_URL"


@dataclass(frozen=True)
class Attachment:
    app: str
    names: plan.AttachNames
    host: str  # the URL's host: ``<db>.flycast``


def attach_app(client: FerryClient, db: str, app: str, database: str | None = None) -> Attachment:
    """Attach ``app`` to cluster ``db`` (see the module's steps). Blocking: returns once
    the app's machines have its new secret. ``ConflictError`` when already attached."""
    names = plan.attach_names(app, database)
    client.get_app(app)  # an unknown app is the API's 404, before anything changes
    if any(s.name == URL_SECRET for s in client.list_secrets(app).secrets):
        raise ConflictError(
            f"{app} already has a {URL_SECRET} secret",
            hint=f"detach it first (`ferry postgres detach ... -a {app}`) "
            f"or `ferry secrets unset {URL_SECRET} -a {app}`",
        )
    password = secrets.token_urlsafe(24)
    try:
        manage.run_psql(client, db, plan.attach_sql(app, names, password))
    except UnavailableError as exc:
        if "ferry_attachments_pkey" in exc.message:
            raise ConflictError(
                f"{app} is already attached to {db}",
                hint=f"detach it first: `ferry postgres detach {db} -a {app}`",
            ) from None
        raise
    host = f"{db}.flycast"  # the edge sends it to a member's 5432, which reaches the primary
    url = plan.database_url(names.user, password, host, names.database)
    try:
        client.set_secrets(app, {URL_SECRET: url})
    except BaseException:
        manage.run_psql(client, db, plan.detach_sql(app))
        raise
    return Attachment(app=app, names=names, host=host)


def detach_app(client: FerryClient, db: str, app: str) -> None:
    """Revoke ``app``'s login on ``db``, forget the attachment, unset its ``DATABASE_URL``.
    ``NotFoundError`` (nothing changed) when ``app`` is not attached to ``db``."""
    if app not in [a for a, _, _ in manage.attached_apps(client, db)]:
        raise NotFoundError(
            f"{app} is not attached to {db}", hint=f"see `ferry postgres status {db}`"
        )
    manage.run_psql(client, db, plan.detach_sql(app))
    if any(s.name == URL_SECRET for s in client.list_secrets(app).secrets):
        client.unset_secrets(app, [URL_SECRET])
