"""What the mesh benchmarks share: iperf3 runs in namespaces, and a wireguard-go pair
configured by hand with ``wg`` (the baseline without Ferry's code)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry.net import iproute

__all__ = ["IperfRun", "iperf3", "iperf3_server", "raw_wireguard"]


@dataclass(frozen=True)
class IperfRun:
    mbits: float  # received by the server, one TCP stream
    retransmits: int  # TCP segments the client sent again


def iperf3(client_ns: str, address: str, port: int, seconds: int) -> IperfRun:
    """One bounded iperf3 run from ``client_ns`` to ``address:port``."""
    argv = ["iperf3", "-c", address, "-p", str(port), "-t", str(seconds), "-J"]
    proc = subprocess.run(
        iproute.netns_exec_argv(client_ns, argv),
        capture_output=True,
        text=True,
        timeout=seconds + 20,
        check=False,
    )
    data = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or "error" in data:
        raise RuntimeError(f"iperf3 to {address} failed: {data.get('error') or proc.stderr}")
    end = data["end"]
    return IperfRun(
        mbits=float(end["sum_received"]["bits_per_second"]) / 1e6,
        retransmits=int(end["sum_sent"].get("retransmits", 0)),
    )


@contextlib.contextmanager
def iperf3_server(netns: str, address: str, port: int) -> Iterator[None]:
    argv = iproute.netns_exec_argv(
        netns, ["iperf3", "-s", "-B", address, "-p", str(port), "--forceflush"]
    )
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for _ in range(5):  # bounded: the banner is the first few lines
            if "Server listening" in proc.stdout.readline():
                break
        else:
            raise RuntimeError(f"iperf3 server on {address} did not start")
        yield
    finally:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.contextmanager
def raw_wireguard(
    spots: Sequence[tuple[str, str]],
    names: Sequence[str],
    tunnel: Sequence[str],
    port: int,
    state: Path,
) -> Iterator[None]:
    """A wireguard-go pair made by hand: ``spots`` are (netns, underlay address) of the
    two ends, ``names`` their interfaces, ``tunnel`` their inner addresses as CIDRs."""
    keys = []
    for name in names:
        private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True)
        path = state / f"{name}.key"
        path.touch(mode=0o600)
        path.write_text(private.stdout)
        public = subprocess.run(
            ["wg", "pubkey"], input=private.stdout, capture_output=True, text=True, check=True
        )
        keys.append((path, public.stdout.strip()))
    try:
        for i, ((netns, _), name) in enumerate(zip(spots, names, strict=True)):
            other = 1 - i
            peer_inner = ipaddress.ip_interface(tunnel[other]).ip
            subprocess.run(
                iproute.netns_exec_argv(netns, ["wireguard-go", name]),
                env={"PATH": os.environ["PATH"], "LOG_LEVEL": "error"},
                stdout=subprocess.DEVNULL,  # a pipe would be held open by the daemon
                stderr=subprocess.DEVNULL,
                check=True,
                start_new_session=True,
                timeout=10,
            )
            subprocess.run(
                iproute.netns_exec_argv(netns, [
                    "wg", "set", name, "listen-port", str(port), "private-key", str(keys[i][0]),
                    "peer", keys[other][1], "endpoint", f"{spots[other][1]}:{port}",
                    "allowed-ips", f"{peer_inner}/{peer_inner.max_prefixlen}",
                ]),
                check=True,
                timeout=10,
            )  # fmt: skip
            nodad = " nodad" if peer_inner.version == 6 else ""
            iproute.ip_batch(
                [f"addr add {tunnel[i]} dev {name}{nodad}", f"link set {name} up mtu 1420"],
                netns=netns,
            )
        yield
    finally:
        for (netns, _), name in zip(spots, names, strict=True):
            iproute.ip("link", "del", name, netns=netns, check=False)
