"""Machine network namespaces made ahead of time, so a start runs no ``ip`` at all.

Making a machine's namespace takes two ``ip`` execs (namespace + veth on the
bridge, then address, route and links inside): about a tenth of a machine
start. The address is the only per-machine part, and the control plane
allocates it predictably: the lowest free address of the host's subnet
(``ferry.server.placement.allocate_host_ip``). So the agent prepares, off
the start path, a namespace for each of the next few free addresses
(``next_free_addresses``), and a start whose address is prepared only renames
that namespace (two syscalls). A wrong guess costs nothing but the spare
namespace; a start without a prepared one builds it as before.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
from collections.abc import Iterable

from ferry.errors import NetworkError
from ferry.net.iproute import delete_netns_now, ip_batch, list_netns, rename_netns

__all__ = ["PreparedNamespaces", "next_free_addresses"]

log = logging.getLogger(__name__)


def next_free_addresses(subnet: str, used: Iterable[str], count: int) -> list[str]:
    """The ``count`` lowest addresses of ``subnet`` not in ``used``, skipping the
    network address, the ``.1`` gateway and broadcast: the addresses the control
    plane will hand out next, in order. Pure.

    >>> next_free_addresses("10.1.0.0/24", {"10.1.0.2", "10.1.0.4"}, 2)
    ['10.1.0.3', '10.1.0.5']
    """
    network = ipaddress.ip_network(subnet, strict=False)
    gateway = network.network_address + 1
    taken = set(used)
    found: list[str] = []
    for address in network.hosts():
        if len(found) >= count:
            break
        text = str(address)
        if address != gateway and text not in taken:
            found.append(text)
    return found


class PreparedNamespaces:
    """A small pool of ready namespaces keyed by address. Thread-safe.

    ``refill`` (blocking, two ``ip`` execs per namespace it makes) runs on a
    background thread started by ``refill_soon``; ``take`` never execs.
    """

    def __init__(self, prefix: str, bridge: str, subnet: str, size: int = 2) -> None:
        self.prefix = f"{prefix}pool-"
        self.bridge = bridge
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = str(self.subnet.network_address + 1)
        self.size = size
        self._ready: dict[str, str] = {}  # address -> namespace name
        self._making: set[str] = set()
        self._wanted: list[str] = []
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None

    def name(self, address: str) -> str:
        return f"{self.prefix}{address}"

    def take(self, address: str, new_name: str) -> bool:
        """Rename the prepared namespace of ``address`` to ``new_name``; False if none is.

        Waits while that address's namespace is being made (a few ms), so a start
        and a refill never make two namespaces with one address.
        """
        with self._cond:
            if address in self._making:
                log.info("waiting for the namespace being prepared for %s", address)
                self._cond.wait_for(lambda: address not in self._making, timeout=5.0)
            name = self._ready.pop(address, None)
            if name is None:
                log.info("no namespace prepared for %s (ready: %s)", address, sorted(self._ready))
                # A start builds this address's namespace itself: a refill must
                # not make a second one meanwhile.
                self._wanted = [a for a in self._wanted if a != address]
                return False
        try:
            rename_netns(name, new_name)
        except NetworkError as exc:
            log.warning("prepared namespace %s unusable (%s): building one", name, exc)
            delete_netns_now(name)
            return False
        return True

    def refill_soon(self, used: Iterable[str]) -> None:
        """Aim the pool at the next free addresses after ``used``; the work happens on
        a background thread (one at a time). Never blocks on ``ip``."""
        wanted = next_free_addresses(str(self.subnet), used, self.size)
        with self._cond:
            if wanted == self._wanted and set(wanted) <= self._ready.keys():
                return
            self._wanted = wanted
            if self._worker is not None and self._worker.is_alive():
                return
            self._worker = threading.Thread(target=self._refill, name="netns-pool", daemon=True)
            self._worker.start()

    def wait_idle(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` s for the background refill to finish; return the
        addresses that have a namespace ready, sorted."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        with self._cond:
            return sorted(self._ready, key=ipaddress.ip_address)

    def _refill(self) -> None:
        while True:
            with self._cond:
                stale = [a for a in self._ready if a not in self._wanted]
                for address in stale:
                    delete_netns_now(self._ready.pop(address))
                missing = [a for a in self._wanted if a not in self._ready]
                if not missing:
                    return
                address = missing[0]
                self._making.add(address)
            made = False
            try:
                self._make(address)
                made = True
            except NetworkError as exc:
                log.warning("could not prepare a namespace for %s: %s", address, exc)
            finally:
                with self._cond:
                    self._making.discard(address)
                    if made:
                        self._ready[address] = self.name(address)
                    self._cond.notify_all()
            if not made:
                return  # the next refill_soon tries again

    def _make(self, address: str) -> None:
        name = self.name(address)
        delete_netns_now(name)
        veth = f"fp{secrets.token_hex(5)}"  # unique: a deleted one may still be going away
        try:
            ip_batch(
                [
                    f"netns add {name}",
                    f"link add {veth} type veth peer name eth0 netns {name}",
                    f"link set {veth} master {self.bridge} up",
                ]
            )
            ip_batch(
                [
                    "link set lo up",
                    f"addr add {address}/{self.subnet.prefixlen} dev eth0",
                    "link set eth0 up",
                    f"route add default via {self.gateway}",
                ],
                netns=name,
            )
        except NetworkError:
            delete_netns_now(name)
            raise

    def drain(self) -> None:
        """Delete every prepared namespace of this host's subnet, also ones a previous
        agent left (other hosts' agents share the prefix: theirs are kept)."""
        with self._cond:
            self._wanted = []
            self._ready.clear()
        for name in list_netns(self.prefix):
            try:
                ours = ipaddress.ip_address(name[len(self.prefix) :]) in self.subnet
            except ValueError:
                ours = False
            if ours:
                delete_netns_now(name)
