"""Two organizations' records, shared by the ``.internal`` DNS unit tests."""

from __future__ import annotations

import ipaddress

from ferry.autoscale.distances import RegionDistances
from ferry.net import sixpn
from ferry.net.internal_records import InternalRecords, MachineRecord

ACME = 0x10  # the asker's organization
OTHER = 0x20  # another organization on the same host
ACME_ASKER = str(sixpn.machine_address(ACME, 1, 99))
OTHER_ASKER = str(sixpn.machine_address(OTHER, 1, 99))
RTT = {("ams", "fra"): 11.0, ("ams", "sin"): 169.0, ("fra", "sin"): 166.0, ("ams", "iad"): 84.0}


def machine(
    id: str,
    app: str,
    region: str,
    number: int,
    *,
    network: int = ACME,
    started: bool = True,
    group: str = "app",
    metadata: dict[str, str] | None = None,
) -> MachineRecord:
    return MachineRecord(
        id=id,
        app=app,
        network=network,
        region=region,
        process_group=group,
        address=sixpn.machine_address(network, 1, number),
        started=started,
        metadata=metadata or {},
    )


def records() -> InternalRecords:
    machines = [
        machine("web1ams", "web", "ams", 1, metadata={"role": "primary"}),
        machine("web2sin", "web", "sin", 2),
        machine("web3fra", "web", "fra", 3, group="worker"),
        machine("web4ams", "web", "ams", 4, started=False),
        machine("db1iad", "db", "iad", 5, metadata={"role": "Replica"}),
        machine("sec1ams", "secret", "ams", 1, network=OTHER),
    ]
    peers = {
        ACME: {"laptop": sixpn.machine_address(ACME, 0xFFFF, 1)},
        OTHER: {"spy": sixpn.machine_address(OTHER, 0xFFFF, 1)},
    }
    return InternalRecords(
        machines,
        apps={ACME: ["empty"], OTHER: ["hidden"]},
        peers=peers,
        distances=RegionDistances.from_pairs(RTT),
    )


def address(network: int, number: int) -> ipaddress.IPv6Address:
    return sixpn.machine_address(network, 1, number)
