"""The part of migration 13 that SQL cannot say: 6PN addresses for existing machines.

Run inside the migration's transaction, after the organizations and hosts got
their 6PN numbers. Each live machine gets the lowest free machine number on
its host (oldest machine first) and the address those numbers make
(``ferry.net.sixpn.machine_address``), stored in ``private_ip``. Machines
already destroyed keep an empty ``private_ip``: they never had an address
and hold none.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from ferry.net.sixpn import lowest_free, machine_address

__all__ = ["address_existing_machines"]

_LIVE_MACHINES = text(
    "SELECT machines.id AS id, machines.host_id AS host_id, "
    "hosts.sixpn_host AS host_number, orgs.sixpn_network AS network "
    "FROM machines "
    "JOIN apps ON apps.name = machines.app_name "
    "JOIN orgs ON orgs.slug = apps.org_slug "
    "LEFT JOIN hosts ON hosts.id = machines.host_id "
    "WHERE machines.state != 'destroyed' "
    "ORDER BY machines.created_at, machines.id"
)


def address_existing_machines(conn: Connection) -> None:
    """Give every live machine of a known app its 6PN address. Idempotent on a fresh
    column; a machine whose host never registered (no number) gets host number 0."""
    taken: dict[str, set[int]] = {}
    for row in conn.execute(_LIVE_MACHINES).all():
        used = taken.setdefault(row.host_id, set())
        number = lowest_free(used)
        used.add(number)
        address = machine_address(int(row.network), int(row.host_number or 0), number)
        conn.execute(
            text("UPDATE machines SET private_ip = :ip WHERE id = :id"),
            {"ip": str(address), "id": row.id},
        )
