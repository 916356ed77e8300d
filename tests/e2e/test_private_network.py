"""The private network as an app's machines see it: 6PN addresses, WireGuard between
hosts, and `.internal` names, asserted from inside the machines' network namespaces."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.model import InitConfig, Machine, MachineState
from ferry.net import sixpn, wireguard
from tests.e2e.conftest import ferry
from tests.e2e.test_autoscale import wait_until
from tests.e2e.test_edge import deploy_demo, wait_routable

pytestmark = pytest.mark.e2e


def in_machine(
    cluster: ClusterSettings, machine: Machine, *argv: str
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the machine's network namespace (the host's tools, its network)."""
    netns = f"{cluster.prefix}-vm-{machine.id}"
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=30
    )


def fetch(cluster: ClusterSettings, machine: Machine, url: str, seconds: int = 5) -> str:
    """GET ``url`` from the machine's network, resolving names as the machine does (its
    /etc/resolv.conf, the host's copy, stands in for ``ip netns exec``'s)."""
    netns = f"{cluster.prefix}-vm-{machine.id}"
    etc = Path("/etc/netns") / netns
    etc.mkdir(parents=True, exist_ok=True)
    host_dir = cluster.host_dir(machine.host_id)
    shutil.copy(host_dir / "resolv.conf", etc / "resolv.conf")
    try:
        done = in_machine(cluster, machine, "curl", "-sS", "-m", str(seconds), url)
    finally:
        shutil.rmtree(etc, ignore_errors=True)
    return done.stdout if done.returncode == 0 else f"failed: {done.stderr.strip()}"


@contextlib.contextmanager
def developer_peer(
    cluster: ClusterSettings, org_slug: str, tag: str, subnet: int, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """A developer's laptop on the organization's network: ``ferry wireguard create``,
    then real ``wg-quick up`` in a client namespace joined to the ams region by a veth
    on ``192.168.<subnet>.0/30``. Yields (the namespace, the config's text); removes
    the peer, the namespace and the veth afterwards."""
    suffix = secrets.token_hex(2)
    client_ns, link, name = f"{cluster.prefix}-{tag}{suffix}", f"{tag}{suffix}", f"dev{suffix}"
    config = tmp_path / f"{tag}p{suffix}.conf"  # wg-quick names the interface after the file
    made = ferry(cluster, "wireguard", "create", org_slug, "ams", name, str(config))
    assert made.returncode == 0, made.stderr
    text = config.read_text()
    # no resolvconf here: the tests ask the resolver themselves instead of wg-quick's DNS line
    config.write_text("".join(li for li in text.splitlines(True) if not li.startswith("DNS")))
    region_ns = cluster.plan.region("ams").netns
    net = f"192.168.{subnet}"
    subprocess.run(["ip", "netns", "add", client_ns], check=True)
    try:
        for argv in (
            ["ip", "-n", region_ns, "link", "add", link, "type", "veth", "peer", "name", "eth0",
             "netns", client_ns],
            ["ip", "-n", region_ns, "addr", "add", f"{net}.1/30", "dev", link],
            ["ip", "-n", region_ns, "link", "set", link, "up"],
            ["ip", "-n", client_ns, "addr", "add", f"{net}.2/30", "dev", "eth0"],
            ["ip", "-n", client_ns, "link", "set", "eth0", "up"],
            ["ip", "-n", client_ns, "link", "set", "lo", "up"],
            ["ip", "-n", client_ns, "route", "add", "default", "via", f"{net}.1"],
        ):  # fmt: skip
            subprocess.run(argv, check=True, capture_output=True)
        up = subprocess.run(
            ["ip", "netns", "exec", client_ns, "wg-quick", "up", str(config)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        yield client_ns, text
    finally:
        subprocess.run(["ip", "netns", "exec", client_ns, "wg-quick", "down", str(config)],
                       capture_output=True, timeout=30)  # fmt: skip
        subprocess.run(["ip", "netns", "delete", client_ns], capture_output=True)
        subprocess.run(["ip", "-n", region_ns, "link", "del", link], capture_output=True)
        ferry(cluster, "wireguard", "remove", org_slug, name)


@pytest.fixture(scope="module")
def net(
    cluster: ClusterSettings, client: FerryClient, tmp_path_factory: pytest.TempPathFactory
) -> list[Machine]:
    """App `net` with a machine in ams and one in sin (different hosts and regions)."""
    deploy_demo(cluster, tmp_path_factory.mktemp("net"), "net", "ams,sin")
    wait_routable(cluster, "ams", "net")
    wait_routable(cluster, "sin", "net")
    machines = [m for m in client.list_machines("net") if m.state is MachineState.STARTED]
    assert {m.region for m in machines} == {"ams", "sin"}
    return sorted(machines, key=lambda m: m.region)


def test_machines_have_6pn_addresses_of_their_org(net: list[Machine], client: FerryClient) -> None:
    ams, sin = net
    network = client.get_app("net").organization.sixpn_network
    for machine in net:
        assert sixpn.parse(machine.private_ip).network == network
    assert sixpn.parse(ams.private_ip).host != sixpn.parse(sin.private_ip).host


def test_machines_in_two_regions_talk_over_6pn_through_wireguard(
    cluster: ClusterSettings, net: list[Machine], client: FerryClient
) -> None:
    ams, sin = net
    before = _mesh_bytes(cluster, client, "ams")
    answer = fetch(cluster, ams, f"http://[{sin.private_ip}]:8080/")
    assert "region=sin" in answer, answer
    assert _mesh_bytes(cluster, client, "ams") > before  # the bytes rode WireGuard


@pytest.fixture(scope="module")
def stranger(client: FerryClient, net: list[Machine]) -> Machine:
    """A machine of another organization on the same host as net's ams machine."""
    slug = f"globex{secrets.token_hex(2)}"
    client.create_org(slug, admin_email=f"bob@{slug}.test")
    client.create_app("stranger", org_slug=slug)
    machine = client.create_machine("stranger", net[0].config, region="ams")
    assert client.wait_machine("stranger", machine.id, timeout=60) == "started"
    found = client.get_machine("stranger", machine.id)
    assert found.host_id == net[0].host_id
    return found


def test_other_organizations_are_unreachable_whatever_address_is_tried(
    cluster: ClusterSettings, net: list[Machine], stranger: Machine
) -> None:
    ams, sin = net
    assert "region=sin" in fetch(cluster, ams, f"http://[{sin.private_ip}]:8080/")  # own org
    for src, dst in ((ams, stranger), (stranger, ams), (stranger, sin)):
        for address in (f"[{dst.private_ip}]", dst.host_ip):
            answer = fetch(cluster, src, f"http://{address}:8080/", seconds=2)
            assert answer.startswith("failed"), f"{src.app_name} reached {address}: {answer}"
    control_plane = cluster.internal_api_url + "/v1/platform/info"
    assert fetch(cluster, ams, control_plane, seconds=2).startswith("failed")


def test_a_machine_reaches_apps_through_the_edge_as_a_client_would(
    cluster: ClusterSettings, net: list[Machine]
) -> None:
    """The edge's public address is in the cluster range machines never reach, except
    on the ports the edge serves: an app calls another app by its public name."""
    ams, _ = net
    done = in_machine(
        cluster, ams, "curl", "-sS", "-m", "5", "-H", "Host: net.ferry.test",
        f"http://{cluster.plan.edge_address}/",
    )  # fmt: skip
    assert done.returncode == 0 and "region=" in done.stdout, done.stderr
    port_22 = in_machine(
        cluster, ams, "curl", "-sS", "-m", "2", f"http://{cluster.plan.edge_address}:22/"
    )
    assert port_22.returncode != 0  # only what the edge serves


def test_another_organizations_names_do_not_resolve(
    cluster: ClusterSettings, net: list[Machine], stranger: Machine
) -> None:
    assert _lookup(cluster, stranger, "net.internal") == []
    assert _lookup(cluster, stranger, "stranger.internal") == [stranger.private_ip]


def test_internal_names_resolve_for_the_machines_org(
    cluster: ClusterSettings, net: list[Machine]
) -> None:
    ams, sin = net
    assert _lookup(cluster, ams, "net.internal") == sorted([ams.private_ip, sin.private_ip])
    assert _lookup(cluster, ams, "sin.net.internal") == [sin.private_ip]
    assert _lookup(cluster, ams, f"{sin.id}.vm.net.internal") == [sin.private_ip]
    assert "region=sin" in fetch(cluster, ams, f"http://{sin.id}.vm.net.internal:8080/")


def test_ssh_console_runs_a_command_in_a_machine_as_the_cluster_makes_them(
    cluster: ClusterSettings, net: list[Machine]
) -> None:
    """`ferry ssh console -C` in a machine of the cluster's default kind: in a user namespace
    of its own, in the network namespace its host's agent made; the command reaches
    another region's machine over 6PN from there."""
    ams, sin = net
    script = (
        "/bin/busybox cat /proc/self/uid_map; /bin/busybox readlink /proc/self/ns/net; "
        "echo $FLY_PRIVATE_IP; "
        f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | /bin/busybox nc -w 5 {sin.private_ip} 8080'
    )
    done = ferry(
        cluster,
        "ssh",
        "console",
        "-a",
        "net",
        "--machine",
        ams.id,
        "-C",
        f"/bin/busybox sh -c '{script}'",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    inside, host_uid, _ = lines[0].split()
    assert inside == "0" and int(host_uid) >= 100_000, lines[0]  # root inside, not on the host
    netns = Path("/run/netns") / f"{cluster.prefix}-vm-{ams.id}"
    assert lines[1] == f"net:[{netns.stat().st_ino}]"  # the namespace the agent made
    assert lines[2] == ams.private_ip
    assert "region=sin" in done.stdout, done.stdout


def _lookup(cluster: ClusterSettings, machine: Machine, name: str) -> list[str]:
    script = (
        "import dns.message, dns.query, sys\n"
        f"q = dns.message.make_query({name!r}, 'AAAA')\n"
        f"r = dns.query.udp(q, {str(sixpn.DNS_ADDRESS)!r}, timeout=2,"
        f" source={machine.private_ip!r})\n"
        "print(' '.join(sorted(a.address for rr in r.answer for a in rr)))\n"
    )
    done = in_machine(cluster, machine, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _mesh_bytes(cluster: ClusterSettings, client: FerryClient, region: str) -> int:
    host = next(h for h in client.hosts() if h.region == region)
    ifname = wireguard.interface_name(cluster.prefix, host.sixpn_host)
    netns = next(h.netns for h in cluster.plan.hosts if h.host_id == host.id)
    dump = subprocess.run(
        ["ip", "netns", "exec", netns, "wg", "show", ifname, "transfer"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return sum(int(rx) + int(tx) for _, rx, tx in (line.split() for line in dump.splitlines()))


def test_a_developer_peer_reaches_its_orgs_machines_by_name_and_nothing_else(
    cluster: ClusterSettings,
    client: FerryClient,
    net: list[Machine],
    stranger: Machine,
    tmp_path: Path,
) -> None:
    """`ferry wireguard create`, then real wg-quick in a client namespace next to the
    ams region: the org's machines in ams and sin by address and by .internal name; not
    another org's machine."""
    ams, sin = net
    org = client.get_app("net").organization
    with developer_peer(cluster, org.slug, "wgc", 251, tmp_path) as (client_ns, text):
        assert "PrivateKey = " in text
        assert f"DNS = {sixpn.org_prefix(org.sixpn_network)[3]}" in text

        def get(url: str, seconds: int = 10) -> str:
            done = subprocess.run(
                ["ip", "netns", "exec", client_ns, "curl", "-sS", "-m", str(seconds), url],
                capture_output=True, text=True, timeout=seconds + 10,
            )  # fmt: skip
            return done.stdout if done.returncode == 0 else f"failed: {done.stderr.strip()}"

        assert "region=ams" in get(f"http://[{ams.private_ip}]:8080/")
        assert "region=sin" in get(f"http://[{sin.private_ip}]:8080/")
        assert get(f"http://[{stranger.private_ip}]:8080/", seconds=2).startswith("failed")
        resolver = str(sixpn.org_prefix(org.sixpn_network)[3])
        script = (
            "import dns.message, dns.query\n"
            "q = dns.message.make_query('net.internal', 'AAAA')\n"
            f"r = dns.query.udp(q, {resolver!r}, timeout=3)\n"
            "print(' '.join(sorted(a.address for rr in r.answer for a in rr)))\n"
        )
        looked = subprocess.run(
            ["ip", "netns", "exec", client_ns, sys.executable, "-c", script],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert looked.stdout.split() == sorted([ams.private_ip, sin.private_ip]), looked.stderr


def test_a_new_machine_reaches_its_organization_from_its_first_instant(
    client: FerryClient, net: list[Machine]
) -> None:
    """A machine's first packets are not lost while its host's isolation rules take it
    in: a connection made as the very first thing it does gets through at once (a
    dropped first SYN would be sent again only a second later)."""
    ams, sin = net
    request = 'printf "GET / HTTP/1.0\\r\\n\\r\\n"'
    uptime_cs = "${t%.*}${t#*.}"  # /proc/uptime in hundredths of a second
    script = (
        f"read t _ < /proc/uptime; a={uptime_cs}; "
        f"{request} | /bin/busybox nc -w 5 {sin.private_ip} 8080 | /bin/busybox head -1; "
        f"read t _ < /proc/uptime; b={uptime_cs}; "
        "echo first-connection-ms=$(( (b - a) * 10 )); exec /bin/busybox sleep 600"
    )
    config = ams.config.model_copy(
        update={
            "init": InitConfig(entrypoint=["/bin/busybox", "sh", "-c"], cmd=[script]),
            "services": [],
            "checks": {},
        }
    )
    client.create_app("first")
    machine = client.create_machine("first", config, region="ams")
    try:
        assert client.wait_machine("first", machine.id, timeout=60) == "started"
        wait_until(
            lambda: any("first-connection-ms=" in line for line in logs(client, machine)),
            timeout=30,
            what="the machine's first connection to end",
        )
        lines = logs(client, machine)
        assert any(" 200 OK" in line for line in lines), lines
        took = next(int(line.split("=")[1]) for line in lines if "first-connection-ms=" in line)
        assert took < 700, lines  # sin is 160 ms away; a retransmission waits 1000 ms
    finally:
        client.delete_machine("first", machine.id, force=True)


def logs(client: FerryClient, machine: Machine) -> list[str]:
    return client.machine_logs(machine.app_name, machine.id)
