"""Thin adapter over ``nft``: load, check and remove Ferry's isolation ruleset.

A script is handed to ``nft -f -`` on stdin, inside the host's network
namespace (``ip netns exec``) or in this process's namespace (``netns=None``).
nft applies a script as one transaction: when any line fails, nothing of it is
committed and the ruleset that was loaded stays in force. Every failure is a
``NetworkError`` carrying nft's own message.

The seam for the agent (running in the host's namespace, so ``netns=None``):
build a ``HostIsolation`` with one ``MachinePort`` per machine on the host
(``veth``: the host side of its veth, the bridge port — ``fp…`` when it came
from the prepared pool, so read it off the link, not off the machine id;
``ipv4``: ``Machine.host_ip``; ``sixpn``: ``Machine.private_ip``; ``network``:
its organization's 6PN number), ``bridge="br0"``, ``mesh_interfaces``: the
host's WireGuard interface and any gateway for users' peers
(``wireguard.interface_name``), ``services``: ``DNS_SERVICES`` plus anything
machines may use (the edge's address on 80/443), ``edge_sources`` and
``protected`` (``cluster_edge_sources``/``cluster_protected`` in the embedded
cluster); then ``apply_isolation(None, host)`` at agent start and after each
machine namespace is made or removed (idempotent: the whole ruleset is
replaced atomically; 30 ms for a few machines, 150 ms for 400), and
``remove_ruleset(None)`` when the host leaves the network.
"""

from __future__ import annotations

import shutil
import subprocess

from ferry.errors import NetworkError
from ferry.net.iproute import netns_exec_argv
from ferry.net.isolation import HostIsolation, removal_script, render_ruleset

__all__ = ["apply_isolation", "apply_ruleset", "check_ruleset", "list_ruleset", "remove_ruleset"]

NFT_TIMEOUT_SECONDS = 10.0


def apply_ruleset(netns: str | None, text: str) -> None:
    """Load ``text`` with ``nft -f -`` in ``netns``, as one transaction. Blocking.

    Raises ``NetworkError`` with nft's message when the script is refused; the
    previously loaded ruleset is then left exactly as it was.
    """
    _nft(netns, ["-f", "-"], text, what="load the isolation ruleset")


def apply_isolation(netns: str | None, host: HostIsolation) -> None:
    """Render the ruleset of ``host`` and load it (``ValidationError`` before any exec)."""
    apply_ruleset(netns, render_ruleset(host))


def remove_ruleset(netns: str | None) -> None:
    """Delete Ferry's tables (nothing else) in ``netns``. Idempotent."""
    _nft(netns, ["-f", "-"], removal_script(), what="remove the isolation ruleset")


def check_ruleset(text: str) -> None:
    """Have nft parse and evaluate ``text`` without committing it (``nft -c``).

    Runs in a throwaway network namespace owned by a throwaway user namespace
    (``unshare -rn``), so it needs no privilege and touches no real ruleset.
    Raises ``NetworkError`` with nft's message when the script is wrong.
    """
    argv = ["unshare", "--net", "--map-root-user", _nft_binary(), "-c", "-f", "-"]
    _run(argv, text, what="check the isolation ruleset")


def list_ruleset(netns: str | None) -> str:
    """Ferry's loaded inet table as nft prints it ('' when there is none)."""
    argv = [_nft_binary(), "list", "table", "inet", "ferry"]
    if netns:
        argv = netns_exec_argv(netns, argv)
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=NFT_TIMEOUT_SECONDS
    )
    return proc.stdout if proc.returncode == 0 else ""


def _nft(netns: str | None, args: list[str], text: str, *, what: str) -> None:
    argv = [_nft_binary(), *args]
    if netns:
        argv = netns_exec_argv(netns, argv)
    _run(argv, text, what=f"{what} in {netns or 'this namespace'}")


def _run(argv: list[str], text: str, *, what: str) -> None:
    try:
        proc = subprocess.run(
            argv,
            input=text,
            capture_output=True,
            text=True,
            check=False,
            timeout=NFT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise NetworkError(
            f"cannot {what}: nft did not finish in {NFT_TIMEOUT_SECONDS:g} s"
        ) from exc
    if proc.returncode != 0:
        message = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise NetworkError(f"cannot {what}: {message}")


def _nft_binary() -> str:
    found = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if found is None:
        raise NetworkError("nft is not installed", hint="install the nftables package")
    return found
