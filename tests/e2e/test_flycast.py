"""Flycast end to end: an app's private address, allocated with `ferry ips allocate-v6
--private`, reached by `<app>.flycast` from machines of its organization — through the
region's edge proxy (load balancing, auto start) — and by nobody else.

The cluster of this module has ams and sin, and sin's machines may land on a host that
joined from another network (`--remote-host sin`): its Flycast traffic goes over
WireGuard to the sin edge, which sends the request on to ams as any public one.
"""

from __future__ import annotations

import json
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
from tests.e2e.conftest import ferry
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


def test_a_raw_tcp_service_is_spliced_to_the_apps_machines(
    cluster: ClusterSettings,
    client: FerryClient,
    echo: tuple[str, list[Machine]],
    callers: dict[str, Machine],
) -> None:
    """A service with no handler (raw TCP, as Postgres' 5432) is served on the app's
    Flycast address byte for byte: the edge picks a machine, the bytes pass untouched."""
    client.create_app("rawtcp")
    service = ServiceConfig(protocol="tcp", internal_port=8080, ports=[ServicePort(port=7000)])
    config = echo[1][0].config.model_copy(update={"services": [service], "checks": {}})
    machine = client.create_machine("rawtcp", config, region="ams")
    assert client.wait_machine("rawtcp", machine.id, timeout=90) == "started"
    address = client.assign_ip("rawtcp").ip
    caller = callers["ams-1"]
    script = (
        "import socket\n"
        f"s = socket.create_connection(({address!r}, 7000), timeout=5)\n"
        "s.sendall(b'GET / HTTP/1.0\\r\\nHost: whatever\\r\\n\\r\\n')\n"
        "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())\n"
    )
    answer = ""
    for _ in range(20):  # the edge opens port 7000 once its tables have the app
        answer = in_machine(cluster, caller, sys.executable, "-c", script).stdout
        if "Hello from Ferry!" in answer:
            break
        time.sleep(0.5)
    assert answered_by(answer) == machine.id, answer  # HTTP bytes, no edge in between
    assert "HTTP/1.0 200" in answer or "HTTP/1.1 200" in answer


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
