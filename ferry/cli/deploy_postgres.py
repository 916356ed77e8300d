"""``ferry deploy``'s handling of fly.toml's ``[postgres]`` section (docs/postgres.md).

The section is sent to the control plane before the rollout, so a bad one (a database
that does not exist, or is no Ferry Postgres cluster) refuses the deploy with the API's
error before any machine changes. A section fly.toml dropped is removed.
"""

from __future__ import annotations

from ferry.cli import output
from ferry.client import FerryClient
from ferry.config import AppConfig
from ferry.errors import FerryError
from ferry.postgres import manage

__all__ = ["sync_postgres"]


def sync_postgres(client: FerryClient, app_name: str, app_config: AppConfig | None) -> None:
    """Send ``[postgres]`` (or remove a stored one fly.toml no longer has). Raises the API's
    ``FerryError`` for a section it refuses; warns when the app is not attached to the
    database (its replicas follow the app all the same)."""
    if app_config is None:
        return
    policy = app_config.postgres
    if policy is None:
        if client.delete_follow_policy(app_name):
            output.say("Postgres follow policy removed: fly.toml has no [postgres] section")
        return
    client.put_follow_policy(app_name, policy)
    mode = "follow the app" if policy.follows else "stay as they are"
    output.say(f"[postgres] sent: the replicas of {policy.database} {mode}")
    try:
        attached = [a for a, _, _ in manage.attached_apps(client, policy.database)]
    except FerryError as exc:
        output.say(f"could not check the attachment to {policy.database}: {exc}", style="yellow")
        return
    if app_name not in attached:
        output.say(
            f"{app_name} is not attached to {policy.database}: "
            f"run `ferry postgres attach {policy.database} -a {app_name}` for a DATABASE_URL",
            style="yellow",
        )
