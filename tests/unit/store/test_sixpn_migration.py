"""Migration 13: a store from before 6PN gains network, host and machine addresses in place."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from ferry.model import DesiredState, MachineConfig
from ferry.net import sixpn
from ferry.store import SqliteStore
from ferry.store.migrations import MIGRATIONS, current_version

from .factories import T0, make_host

_MACHINE = (
    "INSERT INTO machines (id, name, app_name, region, host_id, instance_id, private_ip, "
    "config, image_ref, desired_state, state, revision, resource_version, created_at, "
    "updated_at) VALUES (:id, :id, :app, 'ams', :host, 'i-' || :id, :ip, :config, '{}', "
    "'started', :state, 1, 2, :t, :t)"
)


def _database_before_sixpn(path: Path) -> None:
    """As a Ferry of migration 12 left it: three orgs, two hosts, live and destroyed machines."""
    engine = create_engine(f"sqlite:///{path}")
    config = MachineConfig(image="registry.local/web:1").model_dump_json()
    with engine.begin() as conn:
        current_version(conn)
        for number, statements in MIGRATIONS:
            if number > 12:
                break
            for statement in statements:
                assert isinstance(statement, str)
                conn.execute(text(statement))
            conn.execute(text("INSERT INTO schema_version VALUES (:v, 0)"), {"v": number})
        for slug in ("acme", "globex"):
            conn.execute(text("INSERT INTO orgs (slug, name) VALUES (:s, :s)"), {"s": slug})
        for app, org in (("web", "personal"), ("api", "acme"), ("db", "globex")):
            conn.execute(
                text(
                    "INSERT INTO apps (name, id, org_slug, status, network, created_at) "
                    "VALUES (:a, 'id-' || :a, :o, 'deployed', 'default', 0)"
                ),
                {"a": app, "o": org},
            )
        for host in ("ams-1", "ams-2"):
            conn.execute(
                text(
                    "INSERT INTO hosts VALUES (:h, 'ams', '10.0.0.2', 4, 4096, '10.1.0.0/24', "
                    "'up', 0, 0)"
                ),
                {"h": host},
            )
        machines = [
            ("m1", "web", "ams-1", "10.1.0.2", "destroyed"),
            ("m2", "web", "ams-1", "10.1.0.2", "started"),
            ("m3", "api", "ams-1", "10.1.0.3", "stopped"),
            ("m4", "db", "ams-2", "10.1.0.2", "started"),
        ]
        for at, (mid, app, host, ip, state) in enumerate(machines):
            conn.execute(
                text(_MACHINE),
                {
                    "id": mid,
                    "app": app,
                    "host": host,
                    "ip": ip,
                    "config": config,
                    "state": state,
                    "t": T0.timestamp() + at,
                },
            )
    engine.dispose()


def test_an_old_store_gets_6pn_numbers_and_addresses(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _database_before_sixpn(path)
    store = SqliteStore(path)
    try:
        networks = {org.slug: org.sixpn_network for org in store.list_orgs()}
        assert networks == {"personal": 1, "acme": 2, "globex": 3}
        assert {h.id: h.sixpn_host for h in store.list_hosts()} == {"ams-1": 1, "ams-2": 2}
        by_id = {m.id: m for m in store.list_machines()}
        # The host-local IPv4 is kept as host_ip; private_ip is the 6PN address.
        assert {mid: m.host_ip for mid, m in by_id.items()} == {
            "m1": "10.1.0.2",
            "m2": "10.1.0.2",
            "m3": "10.1.0.3",
            "m4": "10.1.0.2",
        }
        assert by_id["m1"].private_ip == ""  # destroyed before: it holds no address
        assert by_id["m2"].private_ip == str(sixpn.machine_address(1, 1, 1))
        assert by_id["m3"].private_ip == str(sixpn.machine_address(2, 1, 2))
        assert by_id["m4"].private_ip == str(sixpn.machine_address(3, 2, 1))
        assert store.get_app("api").organization.sixpn_network == 2
        # New rows go on from there: the next org, a new host, a re-registered one.
        assert store.create_org("initech", "Initech", at=T0).sixpn_network == 4
        assert store.upsert_host(make_host("iad-1", "iad")).sixpn_host == 3
        assert store.upsert_host(make_host("ams-2", "ams")).sixpn_host == 2
        # An address survives a machine write that does not change it.
        m2 = by_id["m2"]
        store.update_machine("m2", m2.revision, desired_state=DesiredState.STOPPED)
        assert store.get_machine("m2").private_ip == m2.private_ip
    finally:
        store.close()
