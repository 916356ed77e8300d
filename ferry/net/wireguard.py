"""Thin adapter over Debian's ``wireguard-go`` and ``wg``: a host's mesh interface.

The host's key pair is made on the host (X25519, ``cryptography``) and its
private key lives in one file, mode 0600, created once and reused after every
restart. It reaches ``wg`` only as that file's path (``wg set … private-key
FILE``): never on a command line, in a log, an error or a return value.

``wireguard-go`` is the host's network, not the agent's child: it is started
in its own session and daemonizes (its first process exits once the
interface and its control socket exist), so it outlives the agent that
started it, and an agent restart finds the interface, its key and its peers
as they were (``ensure_interface`` is idempotent). It stops when its
interface is deleted (``delete_interface``; ``delete_interfaces(scope)`` at
cluster teardown): deleting the network namespace is not enough, the daemon
would keep the namespace alive.

Control sockets live in ``/var/run/wireguard/<ifname>.sock``, shared by every
namespace of the machine: interface names must be unique on the machine
(``interface_name``). Every failure raises ``NetworkError`` saying what to do.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ferry.errors import NetworkError, ValidationError
from ferry.net import iproute
from ferry.net.mesh import PeerChange, WgPeer
from ferry.net.sixpn import SIXPN

RUN_DIR = Path("/var/run/wireguard")
WIREGUARD_GO = "wireguard-go"
WG = "wg"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,14}$")
_SCOPE = re.compile(r"^[a-z0-9]{1,6}$")
INTERFACE_KINDS = ("w", "e", "g")
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_POLL = 0.02


def interface_name(scope: str, host: int, kind: str = "w") -> str:
    """The mesh interface of node number ``host`` in ``scope`` (a cluster's prefix,
    or any ≤ 6-character name of the machine's Ferry): ``<scope><kind><number in
    hex>``, at most 15 characters, unique per scope, kind and number. Kinds:
    ``w`` a host's mesh interface, ``e`` an edge's, ``g`` a gateway for users' peers."""
    if not _SCOPE.match(scope):
        raise ValidationError(f"mesh scope {scope!r} must be 1-6 characters of a-z0-9")
    if kind not in INTERFACE_KINDS:
        raise ValidationError(f"interface kind {kind!r} is not one of {INTERFACE_KINDS}")
    if not 0 <= host <= 0xFFFF_FFFF:
        raise ValidationError(f"host number {host} is out of range 0..{0xFFFF_FFFF}")
    return f"{scope}{kind}{host:x}"


def ensure_key(key_file: Path) -> str:
    """The host's public key (base64); makes the private key file (0600) if missing.

    Created once with O_EXCL, so two starts never make two keys; a file that is
    not a key raises ``NetworkError`` rather than being replaced (peers know
    the old key: replacing it silently would cut the host off).
    """
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return public_key(key_file)
    raw = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # whatever the umask
        out.write(base64.b64encode(raw).decode() + "\n")
    return public_key(key_file)


def public_key(key_file: Path) -> str:
    """The public key of the private key in ``key_file``; ``NetworkError`` if unreadable."""
    try:
        raw = base64.b64decode(key_file.read_text().strip(), validate=True)
        private = X25519PrivateKey.from_private_bytes(raw)
    except (OSError, ValueError) as exc:
        raise NetworkError(
            f"the WireGuard key file {key_file} is unreadable or not a key",
            hint="restore it from a backup, or remove it to make a new key and re-register",
        ) from exc
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(public).decode()


def is_running(ifname: str) -> bool:
    """Whether a wireguard-go answers on ``ifname``'s control socket (no exec)."""
    path = RUN_DIR / f"{ifname}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def ensure_interface(
    netns: str | None, ifname: str, key_file: Path, listen_port: int, address: str
) -> bool:
    """Make ``ifname`` exist in ``netns`` (None: this namespace), served by a
    wireguard-go with the key in ``key_file``, listening on UDP ``listen_port``,
    up, with ``address`` on it (a /128 unless it names its prefix length).
    Idempotent: a running interface keeps its peers. Returns True when
    wireguard-go had to be started (its peers and routes are then empty: apply
    them again). Raises ``NetworkError``.
    """
    if not _NAME.match(ifname):
        raise NetworkError(f"interface name {ifname!r} is not 1-15 characters of a-z0-9-")
    if netns is not None and not iproute.netns_exists(netns):
        raise NetworkError(f"network namespace {netns} does not exist: make the host's first")
    cidr = address if "/" in address else f"{address}/128"
    started = False
    if is_running(ifname):
        if not _has_link(netns, ifname):
            raise NetworkError(
                f"interface {ifname} is already served by wireguard-go in another "
                f"network namespace than {netns or 'the root one'}",
                hint="interface names are global on a machine: give each host its own",
            )
    else:
        (RUN_DIR / f"{ifname}.sock").unlink(missing_ok=True)  # left by a killed daemon
        _start(netns, ifname, key_file.parent / f"{ifname}.log")
        started = True
    mine = ensure_key(key_file)
    if started or _wg("show", ifname, "public-key").strip() != mine:
        _wg("set", ifname, "private-key", str(key_file))
    if started or _wg("show", ifname, "listen-port").strip() != str(listen_port):
        _wg("set", ifname, "listen-port", str(listen_port))
    iproute.ip_batch(
        [f"addr replace {cidr} dev {ifname} nodad", f"link set {ifname} up"],
        netns=netns,
    )
    return started


def current_peers(ifname: str) -> list[WgPeer]:
    """The interface's peers as ``wg show <if> dump`` reports them.

    The dump's first line holds the interface's private key: it is skipped,
    never kept or shown.
    """
    lines = _wg("show", ifname, "dump").splitlines()[1:]
    peers: list[WgPeer] = []
    for line in lines:
        fields = line.split("\t")
        if len(fields) != 8:
            raise NetworkError(f"`wg show {ifname} dump` printed a peer line wg never prints")
        key, _psk, endpoint, ips, handshake, rx, tx, keepalive = fields
        peers.append(
            WgPeer(
                public_key=key,
                endpoint=None if endpoint == "(none)" else endpoint,
                allowed_ips=() if ips == "(none)" else tuple(ips.split(",")),
                keepalive=0 if keepalive == "off" else int(keepalive),
                latest_handshake=int(handshake),
                rx_bytes=int(rx),
                tx_bytes=int(tx),
            )
        )
    return peers


def apply_changes(ifname: str, changes: Sequence[PeerChange]) -> None:
    """Make every change with one ``wg set`` (nothing runs when there is none)."""
    if not changes:
        return
    argv: list[str] = ["set", ifname]
    for change in changes:
        argv += ["peer", change.public_key]
        if change.action == "remove":
            argv.append("remove")
            continue
        if change.endpoint:
            argv += ["endpoint", change.endpoint]
        argv += ["persistent-keepalive", str(change.keepalive) if change.keepalive else "off"]
        argv += ["allowed-ips", ",".join(change.allowed_ips)]
    _wg(*argv)


def set_peers(ifname: str, changes: Sequence[PeerChange]) -> None:
    """Add or update peers (``remove`` changes are made too): ``apply_changes``."""
    apply_changes(ifname, changes)


def remove_peer(ifname: str, public_key: str) -> None:
    """Remove one peer; removing a peer the interface does not have is not an error."""
    _wg("set", ifname, "peer", public_key, "remove")


def set_routes(netns: str | None, ifname: str, prefixes: Sequence[str]) -> list[str]:
    """Route exactly ``prefixes`` (6PN) through ``ifname``; return the changes made.

    Routes of other devices (the host's own machines) are never touched; 6PN
    routes through ``ifname`` that are not wanted any more are removed.
    """
    out = iproute.ip("-6", "-j", "route", "show", "dev", ifname, netns=netns)
    have = set()
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "")
        if route.get("protocol") != "kernel" and dst != "default":
            with contextlib.suppress(ValueError):
                if _network(dst).subnet_of(SIXPN):
                    have.add(str(_network(dst)))
    want = {str(_network(p)) for p in prefixes}
    lines = [f"route replace {p} dev {ifname}" for p in sorted(want - have)]
    lines += [f"route del {p} dev {ifname}" for p in sorted(have - want)]
    iproute.ip_batch(lines, netns=netns)
    return [f"route {p} via {ifname}" for p in sorted(want - have)] + [
        f"no route {p} via {ifname}" for p in sorted(have - want)
    ]


def delete_interface(netns: str | None, ifname: str) -> None:
    """Stop ``ifname``'s wireguard-go and remove the interface. Idempotent.

    Deleting the link makes wireguard-go exit; where the link cannot be
    reached (its namespace unknown or already unnamed) the daemon, found by
    its command line, is sent SIGTERM, on which it removes its interface.
    """
    if (netns is None or iproute.netns_exists(netns)) and _has_link(netns, ifname):
        iproute.ip("link", "del", ifname, netns=netns, check=False)
    else:
        _terminate(ifname)
    if not _wait_stopped(ifname):
        _terminate(ifname)
        if not _wait_stopped(ifname):
            raise NetworkError(f"wireguard-go of {ifname} did not stop within {_STOP_TIMEOUT}s")
    (RUN_DIR / f"{ifname}.sock").unlink(missing_ok=True)


def _terminate(ifname: str) -> None:
    for pid in daemon_pids(ifname):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def delete_interfaces(scope: str) -> list[str]:
    """Stop every mesh interface of ``scope`` (cluster teardown); return their names."""
    kinds = "".join(INTERFACE_KINDS)
    pattern = re.compile(rf"^{re.escape(scope)}[{kinds}][0-9a-f]{{1,8}}$")
    names = sorted(
        path.name.removesuffix(".sock")
        for path in (RUN_DIR.glob("*.sock") if RUN_DIR.is_dir() else [])
        if pattern.match(path.name.removesuffix(".sock"))
    )
    for name in names:
        delete_interface(None, name)  # not in this namespace: SIGTERM, the link goes with it
    return names


def daemon_pids(ifname: str) -> list[int]:
    """Pids of live wireguard-go processes serving ``ifname`` (zombies excluded)."""
    wanted = [WIREGUARD_GO.encode(), ifname.encode()]
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if [os.path.basename(argv[0]), *argv[1:]] == wanted and state != "Z":
            pids.append(int(entry.name))
    return pids


def _start(netns: str | None, ifname: str, log_file: Path) -> None:
    argv = [WIREGUARD_GO, ifname]
    if netns is not None:
        argv = iproute.netns_enter_argv(netns, argv)
    # A minimal environment: the agent's own (tokens) has no business there.
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LOG_LEVEL": "error"}
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with log_file.open("ab") as log:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,  # not in the agent's process group: outlives it
                timeout=_START_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetworkError(f"could not start wireguard-go for {ifname}: {exc}") from exc
    deadline = time.monotonic() + _START_TIMEOUT
    while not is_running(ifname):
        if proc.returncode != 0 or time.monotonic() > deadline:
            raise NetworkError(
                f"wireguard-go for {ifname} did not come up (exit {proc.returncode})",
                hint=f"see {log_file}; is /dev/net/tun available?",
            )
        time.sleep(_POLL)


def _wait_stopped(ifname: str) -> bool:
    deadline = time.monotonic() + _STOP_TIMEOUT
    while daemon_pids(ifname):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL)
    return True


def _has_link(netns: str | None, ifname: str) -> bool:
    return iproute.link_present(ifname) if netns is None else iproute.netns_has_link(netns, ifname)


def _network(text: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(text, strict=False)


def _wg(*args: str) -> str:
    """Run ``wg ARGS``; its stderr (never a key) goes into the ``NetworkError``."""
    try:
        proc = subprocess.run([WG, *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"`wg {' '.join(args[:2])}` could not run: {exc}") from exc
    if proc.returncode != 0:
        raise NetworkError(f"`wg {' '.join(args[:3])}` failed: {proc.stderr.strip()}")
    return proc.stdout
