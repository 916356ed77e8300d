"""Two network namespaces for ``.internal`` DNS tests and benchmarks (root only).

``DnsNamespaces`` builds a host namespace holding ``fdaa::3`` on its loopback
(this kernel has no dummy links; a host could use either), and a client
namespace joined to it by a veth, holding 6PN addresses of the caller's
choosing (``add_client_address``). Routes
go through link-local next hops, so fdaa::3 is reached by routing, not by
sharing a link. ``thread_in(netns)`` gives a one-thread executor whose thread
has joined a namespace: sockets made there (and by what runs there) live in it.
Everything is removed on ``close`` (deleting the namespaces takes the links).
"""

from __future__ import annotations

import ctypes
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from ferry.net.iproute import NETNS_DIR, add_netns, delete_netns, ip_batch
from ferry.net.sixpn import DNS_ADDRESS

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def join_netns(name: str) -> None:
    """Move the calling thread (only it) into the named network namespace."""
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
    finally:
        os.close(fd)


def thread_in(name: str) -> ThreadPoolExecutor:
    """A one-thread executor living in namespace ``name``; shut it down when done."""
    return ThreadPoolExecutor(max_workers=1, initializer=join_netns, initargs=(name,))


class DnsNamespaces:
    """A host namespace with fdaa::3 and a client namespace routed to it."""

    def __init__(self, prefix: str = "fdns") -> None:
        tag = f"{prefix}{secrets.token_hex(3)}"
        self.host = f"{tag}-h"
        self.client = f"{tag}-c"
        self._host_link, self._client_link = f"{tag}h", f"{tag}c"
        add_netns(self.host)
        add_netns(self.client)
        try:
            ip_batch(
                [
                    f"link add {self._host_link} type veth peer name {self._client_link}",
                    f"link set {self._client_link} netns {self.client}",
                    f"link set {self._host_link} up",
                    f"addr add fe80::1/64 dev {self._host_link} nodad",
                    f"addr add {DNS_ADDRESS}/128 dev lo nodad",
                    f"route add fdaa::/16 via fe80::2 dev {self._host_link}",
                ],
                netns=self.host,
            )
            ip_batch(
                [
                    f"link set {self._client_link} up",
                    f"addr add fe80::2/64 dev {self._client_link} nodad",
                    f"route add {DNS_ADDRESS}/128 via fe80::1 dev {self._client_link}",
                ],
                netns=self.client,
            )
        except Exception:
            self.close()
            raise

    def add_client_address(self, address: str) -> None:
        """Give the client namespace one more 6PN address (usable as a source at once)."""
        ip_batch([f"addr add {address}/128 dev {self._client_link} nodad"], netns=self.client)

    def close(self) -> None:
        """Remove both namespaces and their links. Idempotent."""
        delete_netns(self.client)
        delete_netns(self.host)
