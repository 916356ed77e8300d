"""Flycast end to end: an app's private address, allocated with `ferry ips allocate-v6
--private`, reached by `<app>.flycast` from machines of its organization — through the
region's edge proxy (load balancing, auto start) — and by nobody else.

The cluster of this module has ams and sin, and sin's machines may land on a host that
joined from another network (`--remote-host sin`): its Flycast traffic goes over
WireGuard to the sin edge, which sends the request on to ams as any public one.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings
from ferry.model import Machine, MachineConfig, MachineState, ServiceConfig, ServicePort
from ferry.net import sixpn
from ferry.net.flycast import is_flycast
from tests.e2e.conftest import ferry, until
from tests.e2e.test_edge import deploy_demo, until_edge_sees
from tests.e2e.test_private_network import developer_peer, fetch, in_machine

pytestmark = pytest.mark.e2e

REMOTE = "sin-remote"


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSettings]:
    """This module's own cluster (the shared one is not started for it)."""
    with ephemeral_cluster(("ams", "sin"), octet=185, remote_hosts=("sin",)) as settings:
        yield settings


@pytest.fixture(scope="module")
def client(cluster: ClusterSettings) -> Iterator[FerryClient]:
    with FerryClient(cluster.api_url, cluster.token_path.read_text().strip()) as c:
        yield c


@pytest.fixture(scope="module")
def echo(
    cluster: ClusterSettings, client: FerryClient, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[Machine]]:
    """App `echo`: two machines in ams, and its Flycast address (from the CLI)."""
    deploy_demo(cluster, tmp_path_factory.mktemp("echo"), "echo", "ams")
    scaled = ferry(cluster, "scale", "count", "2", "--region", "ams", "-a", "echo", "--yes")
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    machines = client.list_machines("echo")
    for machine in machines:
        assert client.wait_machine("echo", machine.id, timeout=90) == "started"
    made = ferry(cluster, "ips", "allocate-v6", "--private", "-a", "echo")
    assert made.returncode == 0, made.stdout + made.stderr
    listed = ferry(cluster, "ips", "list", "-a", "echo", "--json")
    (ip,) = json.loads(listed.stdout)["ips"]
    assert is_flycast(ip["ip"]) and ip["type"] == "private_v6"
    return ip["ip"], [client.get_machine("echo", m.id) for m in machines]


def _machine_of(client: FerryClient, app: str, config: MachineConfig, host: str) -> Machine:
    """A started machine of ``app`` on ``host`` (sin's are spread over its two hosts)."""
    region = host.split("-")[0]
    for _ in range(6):
        machine = client.create_machine(app, config, region=region)
        if machine.host_id == host:
            assert client.wait_machine(app, machine.id, timeout=90) == "started"
            return client.get_machine(app, machine.id)
        client.delete_machine(app, machine.id, force=True)
    raise AssertionError(f"no machine of {app} landed on {host}")


@pytest.fixture(scope="module")
def callers(client: FerryClient, echo: tuple[str, list[Machine]]) -> dict[str, Machine]:
    """Machines of app `caller` (echo's organization) in ams and on the remote sin host."""
    client.create_app("caller")
    config = echo[1][0].config
    return {where: _machine_of(client, "caller", config, where) for where in ("ams-1", REMOTE)}


@pytest.fixture(scope="module")
def stranger(client: FerryClient, echo: tuple[str, list[Machine]]) -> Machine:
    """A machine of another organization, on the host of echo's machines."""
    slug = f"globex{secrets.token_hex(2)}"
    client.create_org(slug, admin_email=f"bob@{slug}.test")
    client.create_app("stranger", org_slug=slug)
    return _machine_of(client, "stranger", echo[1][0].config, "ams-1")


def lookup(cluster: ClusterSettings, machine: Machine, name: str) -> list[str]:
    """AAAA of ``name`` asked from the machine to its host's resolver (fdaa::3)."""
    script = (
        "import dns.message, dns.query\n"
        f"q = dns.message.make_query({name!r}, 'AAAA')\n"
        f"r = dns.query.udp(q, {str(sixpn.DNS_ADDRESS)!r}, timeout=2,"
        f" source={machine.private_ip!r})\n"
        "print(' '.join(sorted(a.address for rr in r.answer for a in rr)))\n"
    )
    done = in_machine(cluster, machine, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def answered_by(text: str) -> str:
    """The machine id in the demo's answer (``… machine=<id> app=…``)."""
    assert "Hello from Ferry!" in text, text
    return text.split("machine=")[1].split()[0]


def test_a_machine_reaches_the_app_by_its_flycast_name_load_balanced(
    cluster: ClusterSettings, echo: tuple[str, list[Machine]], callers: dict[str, Machine]
) -> None:
    address, machines = echo
    caller = callers["ams-1"]
    assert lookup(cluster, caller, "echo.flycast") == [address]
    seen = {answered_by(fetch(cluster, caller, "http://echo.flycast/")) for _ in range(16)}
    assert seen == {m.id for m in machines}  # both machines answer: balanced by the edge
    # The address names the app, whatever Host the client sends; plain HTTP, no redirect.
    done = in_machine(
        cluster, caller, "curl", "-sS", "-m", "5", "-H", "Host: caller.ferry.test",
        f"http://[{address}]/",
    )  # fmt: skip
    assert "app=echo" in done.stdout, done.stdout + done.stderr


def test_the_remote_host_reaches_it_through_its_region_edge(
    cluster: ClusterSettings, echo: tuple[str, list[Machine]], callers: dict[str, Machine]
) -> None:
    remote = callers[REMOTE]
    assert remote.host_id == REMOTE
    assert lookup(cluster, remote, "echo.flycast") == [echo[0]]
    text = fetch(cluster, remote, "http://echo.flycast/", seconds=10)
    assert answered_by(text) in {m.id for m in echo[1]}
    # It shares no LAN with its edge: its Flycast traffic stays on WireGuard.
    remote_ns = f"{cluster.prefix}-sin-r"
    wg, _ = _mesh_interface(remote_ns, cluster.prefix)
    route = subprocess.run(
        ["ip", "-n", remote_ns, "-6", "route", "get", echo[0], "from", remote.private_ip],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"dev {wg}" in route.stdout, route.stdout


def _link_bytes(netns: str, ifname: str) -> int:
    """Bytes received plus sent by ``ifname`` in ``netns``."""
    shown = subprocess.run(
        ["ip", "-n", netns, "-j", "-s", "link", "show", "dev", ifname],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stats = json.loads(shown.stdout)[0]["stats64"]
    return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])


def _mesh_interface(netns: str, prefix: str) -> tuple[str, str]:
    """The host's WireGuard interface (``<prefix>w…``) and the host's 6PN address on it."""
    shown = subprocess.run(
        ["ip", "-n", netns, "-j", "-6", "addr", "show"], capture_output=True, text=True, check=True
    )
    for link in json.loads(shown.stdout):
        if link["ifname"].startswith(f"{prefix}w"):
            (own,) = [a["local"] for a in link["addr_info"] if a.get("scope") == "global"]
            return link["ifname"], own
    raise AssertionError(f"no WireGuard interface in {netns}")


def _connect_from(netns: str, source: str, address: str) -> str:
    """Open a TCP connection to ``address``:80 from ``netns`` with any ``source`` address."""
    script = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
        "s.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND: a source not ours\n"
        f"s.bind(({source!r}, 0)); s.settimeout(2)\n"
        f"try: s.connect(({address!r}, 80)); print('connected')\n"
        "except OSError as exc: print('failed', exc)\n"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", script],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip() or done.stderr


def _edge_chain(cluster: ClusterSettings, region: str, *family_table_chain: str) -> str:
    """``nft list chain FAMILY TABLE CHAIN`` in the region edge's namespace (a host's
    when ``region`` is a host id; "" if none)."""
    shown = subprocess.run(
        ["ip", "netns", "exec", f"{cluster.prefix}-{region}",
         "nft", "list", "chain", *family_table_chain],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return shown.stdout


def _edge_drops(cluster: ClusterSettings, region: str) -> int:
    """Packets the region edge dropped as Flycast with a forged source (its LAN check)."""
    shown = _edge_chain(cluster, region, "inet", "ferry_flycast", "from_lan")
    found = re.search(r"counter packets (\d+) bytes \d+ drop", shown)
    assert found, shown
    return int(found.group(1))


def test_a_same_region_machine_reaches_flycast_over_the_lan_not_wireguard(
    cluster: ClusterSettings, echo: tuple[str, list[Machine]], callers: dict[str, Machine]
) -> None:
    """ams-1 is on the ams edge's LAN: its machines' Flycast packets go over the LAN link
    (eth0), unencrypted, and the answers come back on it; WireGuard carries none of them."""
    address, caller = echo[0], callers["ams-1"]
    host_ns = f"{cluster.prefix}-ams-1"
    wg, _ = _mesh_interface(host_ns, cluster.prefix)
    lan_before, wg_before = _link_bytes(host_ns, "eth0"), _link_bytes(host_ns, wg)
    pinged = in_machine(
        cluster, caller, "ping", "-q", "-c", "200", "-i", "0.005", "-s", "1200", address
    )
    assert " 0% packet loss" in pinged.stdout, pinged.stdout + pinged.stderr
    assert answered_by(fetch(cluster, caller, "http://echo.flycast/")) in {m.id for m in echo[1]}
    lan, mesh = _link_bytes(host_ns, "eth0") - lan_before, _link_bytes(host_ns, wg) - wg_before
    assert lan > 2 * 200 * 1200, f"the LAN link carried {lan} bytes"  # both ways
    assert mesh < 50_000, f"WireGuard carried {mesh} bytes of a {lan}-byte exchange"


def test_the_edge_drops_flycast_packets_with_another_hosts_source_from_the_lan(
    cluster: ClusterSettings, echo: tuple[str, list[Machine]], callers: dict[str, Machine]
) -> None:
    """WireGuard no longer vouches for the source: the edge does. From ams-1's namespace,
    the host's own address connects; the remote host's machine's address is dropped."""
    address, host_ns = echo[0], f"{cluster.prefix}-ams-1"
    _, own = _mesh_interface(host_ns, cluster.prefix)
    assert _connect_from(host_ns, own, address) == "connected"
    dropped = _edge_drops(cluster, "ams")
    forged = _connect_from(host_ns, callers[REMOTE].private_ip, address)
    assert forged.startswith("failed"), forged
    assert _edge_drops(cluster, "ams") > dropped


@pytest.fixture(scope="module")
def rawtcp(client: FerryClient, echo: tuple[str, list[Machine]]) -> tuple[str, Machine]:
    """App `rawtcp`: one machine in ams, on host ams-1, serving raw TCP port 7000 (no
    handler), and its Flycast address."""
    client.create_app("rawtcp")
    service = ServiceConfig(protocol="tcp", internal_port=8080, ports=[ServicePort(port=7000)])
    config = echo[1][0].config.model_copy(update={"services": [service], "checks": {}})
    machine = _machine_of(client, "rawtcp", config, "ams-1")
    return client.assign_ip("rawtcp").ip, machine


def _raw_http(address: str) -> str:
    """A Python one-liner: an HTTP/1.0 request over a plain TCP connection to port 7000."""
    return (
        "import socket\n"
        f"s = socket.create_connection(({address!r}, 7000), timeout=5)\n"
        "s.sendall(b'GET / HTTP/1.0\\r\\nHost: whatever\\r\\n\\r\\n')\n"
        "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())\n"
    )


def _raw_answer(cluster: ClusterSettings, caller: Machine, address: str) -> str:
    """What ``caller`` gets from rawtcp's Flycast port 7000 ("" when nothing answered)."""
    text = in_machine(cluster, caller, sys.executable, "-c", _raw_http(address)).stdout
    return text if "Hello from Ferry!" in text else ""


def test_a_raw_tcp_service_is_spliced_to_the_apps_machines(
    cluster: ClusterSettings, rawtcp: tuple[str, Machine], callers: dict[str, Machine]
) -> None:
    """A service with no handler (raw TCP, as Postgres' 5432) is served on the app's
    Flycast address byte for byte: the edge picks a machine, the bytes pass untouched."""
    address, machine = rawtcp
    caller = callers["ams-1"]

    def answered() -> str:  # the edge opens port 7000 once its tables have the app
        return _raw_answer(cluster, caller, address)

    answer = until("rawtcp answers on its Flycast address", answered, timeout=30)
    assert answered_by(answer) == machine.id, answer  # HTTP bytes, no edge in between
    assert "HTTP/1.0 200" in answer or "HTTP/1.1 200" in answer


def test_a_machine_on_the_targets_own_host_is_forwarded_by_that_host(
    cluster: ClusterSettings, rawtcp: tuple[str, Machine], callers: dict[str, Machine]
) -> None:
    """The machine is on ams-1, so is this caller: the edge's kernel forwards the port
    (every machine it would pick is on its LAN, ``ferry.net.flycast_fast``) and
    publishes that, and ams-1, on which that machine runs, sends the connection to it
    itself (gated by its agent's own checks): the edge's kernel sees none of it. (A
    client on another host of the LAN takes the edge's kernel path: this cluster has
    one host per region, tests/integration/net/test_flycast_lan.py covers it.)"""
    address, machine = rawtcp
    caller = callers["ams-1"]

    def forwarded_by_the_host() -> int:
        assert answered_by(_raw_answer(cluster, caller, address)) == machine.id
        return _kernel_forwarded(cluster, "ams-1", "rawtcp", table="host")

    until("ams-1's kernel forwards rawtcp:7000 itself", forwarded_by_the_host, timeout=30)
    edge_rules = _edge_chain(cluster, "ams", "ip6", "ferry_flycast_fast", "to_machines")
    assert 'comment "rawtcp"' in edge_rules, edge_rules  # the plan the host follows
    by_host = _kernel_forwarded(cluster, "ams-1", "rawtcp", table="host")
    by_edge = _kernel_forwarded(cluster, "ams", "rawtcp")
    assert answered_by(_raw_answer(cluster, caller, address)) == machine.id
    assert _kernel_forwarded(cluster, "ams-1", "rawtcp", table="host") == by_host + 1
    assert _kernel_forwarded(cluster, "ams", "rawtcp") == by_edge


def test_a_stopped_machine_leaves_the_hosts_kernel_and_comes_back_started(
    cluster: ClusterSettings,
    client: FerryClient,
    rawtcp: tuple[str, Machine],
    callers: dict[str, Machine],
) -> None:
    """Stopped, the machine passes no check of ams-1's agent: ams-1 forwards nothing for
    it any more. Started again, ams-1 forwards its connections again."""
    address, machine = rawtcp

    def host_rules() -> str:
        return _edge_chain(cluster, "ams-1", "ip6", "ferry_flycast_host", "to_local")

    client.stop_machine("rawtcp", machine.id)
    assert client.wait_machine("rawtcp", machine.id, state="stopped", timeout=60) == "stopped"
    until("ams-1 forwards rawtcp:7000 no more", lambda: 'comment "rawtcp"' not in host_rules())
    client.start_machine("rawtcp", machine.id)
    assert client.wait_machine("rawtcp", machine.id, timeout=60) == "started"

    def forwarded_by_the_host() -> int:
        answer = _raw_answer(cluster, callers["ams-1"], address)
        if not answer:
            return 0  # its process is not listening yet
        assert answered_by(answer) == machine.id
        return _kernel_forwarded(cluster, "ams-1", "rawtcp", table="host")

    until("ams-1 forwards rawtcp:7000 again", forwarded_by_the_host, timeout=60)


def _kernel_forwarded(
    cluster: ClusterSettings, where: str, app: str, *, table: str = "edge"
) -> int:
    """Connections the region edge's kernel (``table="edge"``, ``where`` a region) or a
    host's (``"host"``, ``where`` a host) forwarded for ``app`` (its rule's counter)."""
    chain = (
        ("ferry_flycast_fast", "to_machines")
        if table == "edge"
        else ("ferry_flycast_host", "to_local")
    )
    shown = _edge_chain(cluster, where, "ip6", *chain)
    found = re.search(rf'counter packets (\d+) bytes \d+ .*comment "{app}"', shown)
    return int(found.group(1)) if found else 0


def test_another_organization_gets_no_name_and_no_connection(
    cluster: ClusterSettings, echo: tuple[str, list[Machine]], stranger: Machine
) -> None:
    address = echo[0]
    assert lookup(cluster, stranger, "echo.flycast") == []
    answer = fetch(cluster, stranger, f"http://[{address}]/", seconds=3)
    assert answer.startswith("failed"), answer


def test_a_developer_peer_reaches_it_by_name(
    cluster: ClusterSettings,
    client: FerryClient,
    echo: tuple[str, list[Machine]],
    rawtcp: tuple[str, Machine],
    tmp_path: Path,
) -> None:
    """`ferry wireguard create` and real wg-quick in a client namespace beside ams: the
    peer's resolver answers echo.flycast and the edge serves it over the tunnel."""
    address, machines = echo
    org = client.get_app("echo").organization
    with developer_peer(cluster, org.slug, "fcc", 252, tmp_path) as (client_ns, _):
        resolver = str(sixpn.org_prefix(org.sixpn_network)[3])
        script = (
            "import dns.message, dns.query\n"
            "q = dns.message.make_query('echo.flycast', 'AAAA')\n"
            f"r = dns.query.udp(q, {resolver!r}, timeout=3)\n"
            "print(' '.join(sorted(a.address for rr in r.answer for a in rr)))\n"
        )
        deadline = time.monotonic() + 15  # the gateway takes the new peer within its cycle
        while True:
            looked = subprocess.run(
                ["ip", "netns", "exec", client_ns, sys.executable, "-c", script],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if looked.returncode == 0 or time.monotonic() > deadline:
                break
        assert looked.stdout.split() == [address], looked.stderr
        done = subprocess.run(
            ["ip", "netns", "exec", client_ns, "curl", "-sS", "-m", "10", f"http://[{address}]/"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert answered_by(done.stdout + done.stderr) in {m.id for m in machines}
        # A raw TCP port the edge's kernel forwards for LAN hosts: a peer (over
        # WireGuard, whose gateway forwards nothing) is still served by the edge itself.
        raw_address, raw_machine = rawtcp

        def raw_answer() -> str:
            raw = subprocess.run(
                ["ip", "netns", "exec", client_ns, sys.executable, "-c", _raw_http(raw_address)],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            return raw.stdout if "Hello from Ferry!" in raw.stdout else ""

        raw = until("the peer reaches rawtcp:7000", raw_answer, timeout=30)
        assert answered_by(raw) == raw_machine.id


def test_a_flycast_request_starts_a_stopped_app(
    cluster: ClusterSettings,
    client: FerryClient,
    echo: tuple[str, list[Machine]],
    callers: dict[str, Machine],
) -> None:
    _, machines = echo
    for machine in machines:
        client.stop_machine("echo", machine.id)
    for machine in machines:
        assert client.wait_machine("echo", machine.id, state="stopped", timeout=60) == "stopped"
        until_edge_sees(cluster, "ams", machine.id, "stopped")
    text = fetch(cluster, callers["ams-1"], "http://echo.flycast/", seconds=20)
    woken = answered_by(text)
    assert client.get_machine("echo", woken).state is MachineState.STARTED


def test_a_released_address_stops_answering(
    cluster: ClusterSettings, echo: tuple[str, list[Machine]], callers: dict[str, Machine]
) -> None:
    address = echo[0]
    released = ferry(cluster, "ips", "release", address, "-a", "echo")
    assert released.returncode == 0, released.stdout + released.stderr
    caller = callers["ams-1"]
    deadline = time.monotonic() + 10
    while lookup(cluster, caller, "echo.flycast"):
        assert time.monotonic() < deadline, "echo.flycast still resolves after release"
        time.sleep(0.2)  # the resolver's records follow within a long poll
    feed = cluster.home / "edges" / "ams" / "flycast.json"
    while address in Path(feed).read_text():
        assert time.monotonic() < deadline, "the ams edge still serves the released address"
        time.sleep(0.2)
    assert fetch(cluster, caller, f"http://[{address}]/", seconds=3).startswith("failed")
