"""Every machine's ``private_ip`` is its 6PN address, as on Fly (``ferry.net.sixpn``).

Organizations get 6PN network numbers when created, hosts their host numbers
at first registration; the API hands a machine ``fdaa:<network>:<host>:<machine>::2``
and keeps it across stop, start, updates and agent restarts (re-registration).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ferry.net import sixpn

from .conftest import Api, bearer, org_with_admin


def _numbers(machine: dict[str, Any]) -> tuple[int, int, int]:
    found = sixpn.parse(machine["private_ip"])
    assert machine["private_ip"] == str(found.address)  # the machine's ::2, canonical
    return found.network, found.host, found.machine


def test_hosts_are_numbered_at_first_registration_and_keep_it(api: Api) -> None:
    assert api.register_host("ams-1", "ams")["sixpn_host"] == 1
    assert api.register_host("iad-1", "iad", subnet="10.2.0.0/24")["sixpn_host"] == 2
    # An agent restart registers the same id again: same number.
    assert api.register_host("ams-1", "ams")["sixpn_host"] == 1
    listed = api.client.get("/v1/hosts").json()
    assert {h["id"]: h["sixpn_host"] for h in listed} == {"ams-1": 1, "iad-1": 2}


def test_organizations_get_distinct_network_numbers(api: Api) -> None:
    org_with_admin(api, "acme", "a@acme.test")
    org_with_admin(api, "globex", "b@globex.test")
    shown = {o["slug"]: o["sixpn_network"] for o in api.client.get("/v1/orgs").json()}
    assert shown == {"acme": 2, "globex": 3, "personal": 1}
    assert api.client.get("/v1/orgs/acme").json()["sixpn_network"] == 2
    # A destroyed organization's number is free for the next one.
    assert api.client.delete("/v1/orgs/globex").status_code == 200
    created = api.client.post("/v1/orgs", json={"slug": "initech"})
    assert created.json()["sixpn_network"] == 3


def test_private_ip_is_the_6pn_address_of_org_host_and_machine(api: Api) -> None:
    api.register_host("ams-1", "ams")
    api.register_host("iad-1", "iad", subnet="10.2.0.0/24")
    api.create_app()
    alice = org_with_admin(api, "acme", "a@acme.test")
    made = api.client.post("/v1/apps", json={"app_name": "rocket"}, headers=bearer(alice))
    assert made.status_code == 201
    first = api.create_machine(region="ams")
    second = api.create_machine(region="ams")
    in_iad = api.create_machine(region="iad")
    theirs = api.create_machine("rocket", region="ams")
    assert _numbers(first) == (1, 1, 1)
    assert _numbers(second) == (1, 1, 2)
    assert _numbers(in_iad) == (1, 2, 1)
    assert _numbers(theirs) == (2, 1, 3)  # machine numbers are per host, of every org
    assert ipaddress.IPv6Address(first["private_ip"]) in sixpn.org_prefix(1)
    assert ipaddress.IPv6Address(theirs["private_ip"]) not in sixpn.org_prefix(1)
    # The host-local IPv4 the edge uses is still there, under its own name.
    assert (first["host_ip"], second["host_ip"]) == ("10.1.0.2", "10.1.0.3")
    listed = api.client.get("/v1/apps/web/machines?summary=true").json()
    assert {m["id"]: m["private_ip"] for m in listed} == {
        m["id"]: m["private_ip"] for m in (first, second, in_iad)
    }


def test_a_machine_number_comes_back_only_after_destroy(api: Api) -> None:
    api.register_host()
    api.create_app()
    first = api.create_machine(skip_launch=True)
    second = api.create_machine(skip_launch=True)
    assert api.client.delete(f"/v1/apps/web/machines/{first['id']}").status_code == 200
    # Destroy asked, not yet done: the number is still held.
    assert _numbers(api.create_machine(skip_launch=True))[2] == 3
    api.report(first, "destroyed", "destroy")
    again = api.create_machine(skip_launch=True)
    assert again["private_ip"] == first["private_ip"]
    assert again["private_ip"] != second["private_ip"]


def test_private_ip_stays_across_stop_start_update_and_agent_restart(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    address = machine["private_ip"]
    api.report(machine, "started")
    base = f"/v1/apps/web/machines/{machine['id']}"
    assert api.client.post(f"{base}/stop").status_code == 200
    api.report(machine, "stopped", "stop")
    assert api.client.post(f"{base}/start").status_code == 200
    updated = api.client.post(base, json={"config": {"image": "registry.local/web:2"}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["private_ip"] == address
    api.register_host()  # the agent restarted and registered again
    snapshot = api.client.get("/v1/hosts/ams-1/machines").json()
    assert [m["private_ip"] for m in snapshot["machines"]] == [address]
    assert api.client.get(base).json()["private_ip"] == address


def test_a_moved_app_s_new_machines_are_in_its_new_organization_s_network(api: Api) -> None:
    api.register_host()
    api.create_app()
    before = api.create_machine(skip_launch=True)  # warms placement's cache of the app
    org_with_admin(api, "acme", "a@acme.test")
    moved = api.client.post("/v1/apps/web/move", json={"org_slug": "acme"})
    assert moved.status_code == 200, moved.text
    after = api.create_machine(skip_launch=True)
    assert (_numbers(before)[0], _numbers(after)[0]) == (1, 2)
