"""An app's Flycast addresses (``ferry ips``, the Machines API's ``ip_assignments``).

``assign`` gives an app the lowest free address of its organization's Flycast
/80 (``ferry.net.flycast``); ``release`` takes one back; ``feed`` is what the
edges serve and ``prefixes`` what the mesh routes to them. Refusals are 400s
that name the field and change nothing: a public type (``v4``, ``v6``,
``shared_v4``: every app is already served on the edges' shared address by
its host name), an ``org_slug`` other than the app's organization, a custom
``network``, a ``region`` (Flycast is global: every region's edge serves it),
a ``service_name``, more than ``MAX_PER_APP`` addresses.

An address belongs to the organization it was made in: after the app moves to
another organization its old addresses are no longer served (``feed`` and
``prefixes`` skip them; ``ferry ips list`` shows them with their old
network) until they are released.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ferry.errors import ValidationError
from ferry.model import App
from ferry.model.flycast import (
    PRIVATE_V6,
    AssignIPRequest,
    FlycastFeed,
    FlycastFeedEntry,
    IPAssignment,
    IPAssignmentNetwork,
)
from ferry.net.flycast import flycast_prefix
from ferry.server.clock import Clock
from ferry.server.watch import ChangeNotifier
from ferry.store.base import StateStore
from ferry.store.flycast_base import FlycastRecord

__all__ = ["MAX_PER_APP", "FlycastService"]

MAX_PER_APP = 10
_PUBLIC = frozenset({"v4", "v6", "shared_v4"})
_DEFAULT_NETWORKS = frozenset({"", "default"})


class FlycastService:
    """Flycast addresses of apps. Methods block (store calls). Callers have checked the
    caller may read (list) or change (assign, release) the app."""

    def __init__(self, store: StateStore, clock: Clock, notifier: ChangeNotifier) -> None:
        self._store = store
        self._clock = clock
        self._notifier = notifier

    def assign(self, app_name: str, body: AssignIPRequest) -> IPAssignment:
        """A new Flycast address for the app; see the module doc for what is refused."""
        app = self._store.get_app(app_name)
        _check_request(app, body)
        if len(self._store.list_flycast_ips(app_name)) >= MAX_PER_APP:
            raise ValidationError(
                f"app {app_name!r} already has {MAX_PER_APP} Flycast addresses",
                hint=f"release one first (`ferry ips release ADDRESS -a {app_name}`)",
            )
        org = app.organization
        record = self._store.add_flycast_ip(
            app_name, org.slug, org.sixpn_network, now=self._clock.now()
        )
        self._notifier.notify(None)  # hosts and edges long-poll the mesh and the feed
        return _shown(record)

    def list_ips(self, app_name: str) -> list[IPAssignment]:
        self._store.get_app(app_name)
        return [_shown(r) for r in self._store.list_flycast_ips(app_name)]

    def release(self, app_name: str, ip: str) -> IPAssignment:
        """Release ``ip`` (400 when it is not an IP address, 404 when not the app's)."""
        self._store.get_app(app_name)
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise ValidationError(
                f"{ip!r} is not an IP address", hint=f"see `ferry ips list -a {app_name}`"
            ) from None
        record = self._store.remove_flycast_ip(app_name, str(address))
        self._notifier.notify(None)
        return _shown(record)

    def feed(self, version: int) -> FlycastFeed:
        """Every address the edges serve: those still in their app's organization."""
        return FlycastFeed(
            version=version,
            addresses=[
                FlycastFeedEntry(
                    address=r.address, app=r.app_name, network=r.network, org_slug=r.org_slug
                )
                for r in self.served()
            ],
        )

    def served(self) -> list[FlycastRecord]:
        return served_records(self._store)


def served_records(store: StateStore) -> list[FlycastRecord]:
    """Flycast addresses whose app is still in the network they were made in."""
    records = store.list_flycast_ips()
    if not records:  # the common case: no app list read for every mesh snapshot
        return []
    networks = {app.name: app.organization.sixpn_network for app in store.list_apps()}
    return [r for r in records if networks.get(r.app_name) == r.network]


def served_prefixes(records: Iterable[FlycastRecord]) -> list[str]:
    """The Flycast /80 of every organization with an address served, sorted."""
    return sorted({str(flycast_prefix(r.network)) for r in records})


def _check_request(app: App, body: AssignIPRequest) -> None:
    kind = body.type.strip().lower()
    if kind in _PUBLIC:
        raise ValidationError(
            f"type {body.type!r}: Ferry assigns no public addresses; every app is already "
            "served on the edges' shared address by its host name",
            hint="use type private_v6 (`ferry ips allocate-v6 --private`) for a Flycast address",
        )
    if kind != PRIVATE_V6:
        raise ValidationError(
            f"type {body.type!r} is not an address type Ferry assigns",
            hint="use type private_v6 (a Flycast address)",
        )
    org = app.organization.slug
    if body.org_slug and body.org_slug != org:
        raise ValidationError(
            f"org_slug {body.org_slug!r}: app {app.name!r} belongs to {org!r}, and its Flycast "
            "addresses are in its own organization's network",
            hint=f"leave org out, or give {org!r}",
        )
    if body.network.strip().lower() not in _DEFAULT_NETWORKS:
        raise ValidationError(
            f"network {body.network!r}: custom 6PN networks are not supported",
            hint="leave network out: the address is in the organization's default network",
        )
    if body.region and body.region.strip().lower() != "global":
        raise ValidationError(
            f"region {body.region!r}: Flycast addresses are global (every region's edge "
            "serves them)",
            hint="leave region out",
        )
    if body.service_name:
        raise ValidationError(
            "service_name is not supported: a Flycast address serves every HTTP port of "
            "the app's services",
            hint="leave service_name out",
        )


def _shown(record: FlycastRecord) -> IPAssignment:
    return IPAssignment(
        ip=record.address,
        created_at=record.created_at,
        network=IPAssignmentNetwork(name="", org_slug=record.org_slug),
    )
