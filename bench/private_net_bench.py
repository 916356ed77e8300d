"""Issue 14's three figures on a real embedded cluster: 6PN throughput, `.internal`, the edge.

Run (as root, from the repository)::

    PYTHONPATH=$PWD .venv/bin/python bench/private_net_bench.py \
        [--rounds 3 --seconds 4 --queries 1000 --starts 20 --requests 40 --append]

Starts one ephemeral cluster (ams with 2 hosts, sin with 2), deploys the demo
app `nb` in ams only, and puts machine A on ams-1 and B on ams-2. Then:

1. **Throughput** (iperf3, one TCP stream, ``--seconds`` ≤ 5, ``--rounds``
   interleaved rounds, order rotated each round): ``6pn`` A → B on B's
   private_ip (A's namespace → host ams-1 → Ferry's wireguard-go → ams-2 → B);
   ``6pn-hosts`` ams-1 → ams-2's own 6PN address over the same mesh (no machine hop);
   ``raw-wg`` ams-1 → ams-2 over a second wireguard-go pair made here with
   ``wg`` (own interfaces, port, IPv6 ULA addresses; removed at the end);
   ``plain`` ams-1 → ams-2 on their region addresses (the region bridge, no
   encryption).
2. **`.internal`**: ``--queries`` AAAA lookups each of ``nb.internal`` and
   ``<B>.vm.nb.internal`` from A's namespace (dnspython, one query in flight,
   a new UDP socket per query bound to A's private_ip, to fdaa::3); and over
   ``--starts`` machine creations in ams, the time from ``wait_machine``
   returning "started" until ``<id>.vm.nb.internal`` answers from A's namespace
   (a poller started before the create request, every 10 ms, up to 5 s after).
3. **The edge across the mesh**: ``--requests`` GETs to ``nb.ferry.test`` from
   sin's region namespace through the sin edge (whose only route is its
   backhaul to the ams edge), new TCP connection per request and then one
   kept-alive connection, against ping and TCP-connect RTT sin → ams measured
   in the same run and the configured RTT.

Prints every figure and the conditions; ``--append`` adds the report at the end
of bench/RESULTS.md. The cluster (and everything made here) is removed at the
end, also on failure; every step is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import http.client
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wg_iperf import iperf3, iperf3_server, raw_wireguard  # noqa: E402
from ferry.client import FerryClient  # noqa: E402
from ferry.cluster.ephemeral import ephemeral_cluster  # noqa: E402
from ferry.cluster.settings import ClusterSettings  # noqa: E402
from ferry.model import Machine, MachineConfig  # noqa: E402
from ferry.net import iproute, sixpn, wireguard  # noqa: E402
from tests.dns_netns import thread_in  # noqa: E402
from tests.e2e.test_edge import deploy_demo, wait_routable  # noqa: E402

APP = "nb"
RAW_PORT = 51839
RAW_TUNNEL = ("fd5b:ee77::1", "fd5b:ee77::2")
DNS = str(sixpn.DNS_ADDRESS)
POLL_S = 0.01
POLL_LIMIT_S = 5.0


@dataclass
class Pair:
    """Machines A (on ams-1) and B (on ams-2) and their hosts' namespaces."""

    a: Machine
    b: Machine
    host_a_ns: str
    host_b_ns: str
    host_a_addr: str
    host_b_addr: str
    host_b_infra: str  # ams-2's own 6PN address (its mesh interface)

    def ns(self, machine: Machine, cluster: ClusterSettings) -> str:
        return f"{cluster.prefix}-vm-{machine.id}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4, choices=range(1, 6))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--octet", type=int, default=0, help="0: a free one in 184..199")
    parser.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    began = datetime.datetime.now(datetime.UTC)
    lines: list[str] = []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(
            ephemeral_cluster(("ams", "sin"), hosts_per_region=2, octet=args.octet or free_octet())
        )
        token = cluster.token_path.read_text().strip()
        client = stack.enter_context(FerryClient(cluster.api_url, token))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nb-")))
        print(f"cluster {cluster.prefix} octet {cluster.octet} up; deploying {APP}", flush=True)
        deploy_demo(cluster, tmp, APP, "ams")
        wait_routable(cluster, "ams", APP, timeout=60)
        pair = place_pair(cluster, client)
        print(f"A={pair.a.id} on {pair.a.host_id}, B={pair.b.id} on {pair.b.host_id}", flush=True)
        stack.enter_context(raw_pair(pair, tmp))
        print(busiest(), flush=True)  # the idle cluster's CPU, for the reader of the log
        lines += throughput(cluster, pair, args.rounds, args.seconds)
        lines += mtus(cluster, client, pair)
        lines += lookups(cluster, pair, args.queries)
        lines += record_delays(cluster, client, pair, args.starts)
        lines += edge_across(cluster, pair.b, args.requests)
    load_after = os.getloadavg()
    text = report(lines, args, began, load_before, load_after)
    print(text)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a") as out:
            out.write("\n" + text)


def free_octet() -> int:
    """An octet in 184..199 whose 10.B/16 no interface of this namespace uses."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    free = [o for o in range(184, 200) if f" 10.{o}." not in used + routes]
    if not free:
        raise RuntimeError("no free octet in 184..199")
    return random.choice(free)


def place_pair(cluster: ClusterSettings, client: FerryClient) -> Pair:
    """One started machine of the app on each ams host (creating some if needed)."""
    config: MachineConfig = client.list_machines(APP)[0].config
    by_host: dict[str, Machine] = {}
    for _ in range(8):  # the scheduler spreads machines over the region's hosts
        for m in client.list_machines(APP):
            if m.state.value == "started":
                by_host.setdefault(m.host_id, m)
        if {"ams-1", "ams-2"} <= set(by_host):
            break
        made = client.create_machine(APP, config, region="ams")
        client.wait_machine(APP, made.id, timeout=90)
    else:
        raise RuntimeError(f"machines landed only on {sorted(by_host)}")
    hosts = {h.host_id: h for h in cluster.plan.hosts}
    sixpn_host = {h.id: h.sixpn_host for h in client.hosts()}
    return Pair(
        a=by_host["ams-1"],
        b=by_host["ams-2"],
        host_a_ns=hosts["ams-1"].netns,
        host_b_ns=hosts["ams-2"].netns,
        host_a_addr=hosts["ams-1"].address,
        host_b_addr=hosts["ams-2"].address,
        host_b_infra=str(sixpn.infra_address(sixpn_host["ams-2"])),
    )


# -- 1. throughput -------------------------------------------------------------------


def throughput(cluster: ClusterSettings, pair: Pair, rounds: int, seconds: int) -> list[str]:
    targets = {  # client netns, server netns, server address, port
        "6pn": (pair.ns(pair.a, cluster), pair.ns(pair.b, cluster), pair.b.private_ip, 5301),
        "6pn-hosts": (pair.host_a_ns, pair.host_b_ns, pair.host_b_infra, 5304),
        "raw-wg": (pair.host_a_ns, pair.host_b_ns, RAW_TUNNEL[1], 5302),
        "plain": (pair.host_a_ns, pair.host_b_ns, pair.host_b_addr, 5303),
    }
    results: dict[str, list[float]] = {name: [] for name in targets}
    with contextlib.ExitStack() as servers:
        for _, netns, address, port in targets.values():
            servers.enter_context(iperf3_server(netns, address, port))
        names = list(targets)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                client_ns, _, address, port = targets[name]
                results[name].append(iperf3_mbits(client_ns, address, port, seconds))
            print(f"round {r + 1}: " + ", ".join(f"{n} {results[n][-1]:.0f}" for n in names))
    med = {n: statistics.median(v) for n, v in results.items()}
    per_round = [s / w for s, w in zip(results["6pn"], results["raw-wg"], strict=True)]
    hosts_round = [s / w for s, w in zip(results["6pn-hosts"], results["raw-wg"], strict=True)]
    lines = [
        "### 1. Throughput, machine A (ams-1) → machine B (ams-2)",
        "",
        f"iperf3, one TCP stream, {seconds} s per run, {rounds} interleaved rounds",
        "(order rotated each round). `6pn`: A's namespace → B's private_ip; `6pn-hosts`:",
        "host ams-1 → ams-2's infra 6PN address, same mesh, no machine hop; `raw-wg`: ams-1 →",
        "ams-2 over a hand-made wireguard-go pair (IPv6 inside); `plain`: ams-1 → ams-2's",
        "region address, no encryption.",
        "",
        "| path | Mbit/s per round | median | TCP retransmits per run (median) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {', '.join(f'{x:.0f}' for x in v)} | **{med[n]:.0f}** | "
        f"{statistics.median(RETRANSMITS[targets[n][2]]):.0f} |"
        for n, v in results.items()
    ]
    lines += [
        "",
        f"6PN / raw wireguard-go: **{statistics.median(per_round):.2f}x** (median of per-round "
        f"ratios {', '.join(f'{x:.2f}' for x in per_round)}; goal ≥ 0.9x). "
        f"6PN / plain: **{med['6pn'] / med['plain']:.2f}x**. Hosts over Ferry's mesh / raw "
        f"wireguard-go: {statistics.median(hosts_round):.2f}x (per round "
        f"{', '.join(f'{x:.2f}' for x in hosts_round)}).",
        "",
    ]
    return lines


RETRANSMITS: dict[str, list[int]] = {}  # server address -> TCP retransmits per run


def iperf3_mbits(client_ns: str, address: str, port: int, seconds: int) -> float:
    """Mbit/s of one run; its retransmits go to ``RETRANSMITS``."""
    run = iperf3(client_ns, address, port, seconds)
    RETRANSMITS.setdefault(address, []).append(run.retransmits)
    return run.mbits


@contextlib.contextmanager
def raw_pair(pair: Pair, state: Path) -> Iterator[None]:
    """A second wireguard-go pair between ams-1 and ams-2, made by hand with ``wg``."""
    tag = os.urandom(2).hex()
    spots = [(pair.host_a_ns, pair.host_a_addr), (pair.host_b_ns, pair.host_b_addr)]
    names = [f"nbr{tag}a", f"nbr{tag}b"]
    with raw_wireguard(spots, names, [f"{a}/64" for a in RAW_TUNNEL], RAW_PORT, state):
        yield


def mtus(cluster: ClusterSettings, client: FerryClient, pair: Pair) -> list[str]:
    """The MTUs a 6PN packet meets: A's interface, Ferry's mesh interface on ams-1."""
    host = next(h for h in client.hosts() if h.id == "ams-1")
    mesh = wireguard.interface_name(cluster.prefix, host.sixpn_host)
    found = []
    for netns, what in ((pair.ns(pair.a, cluster), "machine A"), (pair.host_a_ns, "ams-1")):
        out = subprocess.run(
            iproute.netns_exec_argv(netns, ["ip", "-o", "link"]),
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        for line in out.splitlines():
            link = line.split(":")[1].strip().split("@")[0]
            if link != "lo" and (what == "machine A" or link == mesh):
                mtu = re.search(r"mtu (\d+)", line)
                found.append(f"{what} `{link}` {mtu.group(1) if mtu else '?'}")
    return [f"MTUs: {', '.join(found)}; the hand-made pair 1420.", ""]


# -- 2. .internal --------------------------------------------------------------------


def ask(name: str, source: str) -> tuple[float, list[str]]:
    """One AAAA query to fdaa::3 from ``source``: (seconds, addresses)."""
    query = dns.message.make_query(name, "AAAA")
    started = time.perf_counter()
    answer = dns.query.udp(query, DNS, timeout=1.0, source=source)
    elapsed = time.perf_counter() - started
    return elapsed, [a.address for rr in answer.answer for a in rr if rr.rdtype == 28]


def lookups(cluster: ClusterSettings, pair: Pair, count: int) -> list[str]:
    names = [f"{APP}.internal", f"{pair.b.id}.vm.{APP}.internal"]
    lines = [
        "### 2. `.internal` from machine A's namespace",
        "",
        f"{count} AAAA queries per name, sequential, each on a new UDP socket bound to A's",
        "private_ip, to fdaa::3 (the resolver of host ams-1); timed send → parsed reply",
        "(dnspython `dns.query.udp`). Every reply checked to hold B's address.",
        "",
        "| name | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|",
    ]
    with contextlib.closing(_Pool(pair.ns(pair.a, cluster))) as pool:
        for name in names:
            times = pool.run(
                functools.partial(_ask_many, name, pair.a.private_ip, pair.b.private_ip, count)
            )
            q = quantiles(times)
            lines.append(
                f"| `{name.replace(pair.b.id, '<B>')}` | {q[50] * 1e3:.2f} | "
                f"{q[99] * 1e3:.2f} | {max(times) * 1e3:.2f} |"
            )
            print(lines[-1], flush=True)
        name = names[1]
        times = pool.run(lambda: _ask_kept(name, pair.a.private_ip, pair.b.private_ip, count))
        q = quantiles(times)
        lines.append(
            f"| `{name.replace(pair.b.id, '<B>')}`, `dns.query.udp` on one kept socket "
            f"| {q[50] * 1e3:.2f} | {q[99] * 1e3:.2f} | {max(times) * 1e3:.2f} |"
        )
        print(lines[-1], flush=True)
        times = pool.run(lambda: _ask_raw(name, pair.a.private_ip, pair.b.private_ip, count))
        q = quantiles(times)
        lines.append(
            f"| `{name.replace(pair.b.id, '<B>')}`, one connected socket, wire bytes "
            f"(least client work) | {q[50] * 1e3:.2f} | {q[99] * 1e3:.2f} | "
            f"{max(times) * 1e3:.2f} |"
        )
        print(lines[-1], flush=True)
    return [*lines, ""]


def _ask_kept(name: str, source: str, expect: str, count: int) -> list[float]:
    """dnspython's ``udp`` as in ``ask``, but every query on the same bound socket."""
    times = []
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for _ in range(count):
            query = dns.message.make_query(name, "AAAA")
            started = time.perf_counter()
            answer = dns.query.udp(query, DNS, timeout=1.0, sock=sock)
            times.append(time.perf_counter() - started)
            if expect not in [a.address for rr in answer.answer for a in rr]:
                raise RuntimeError(f"{name} did not answer {expect}")
    return times


def _ask_raw(name: str, source: str, expect: str, count: int) -> list[float]:
    """The same question on one connected UDP socket: send → first reply datagram."""
    query = dns.message.make_query(name, "AAAA")
    times = []
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.connect((DNS, 53))
        sock.settimeout(1.0)
        for n in range(count):
            query.id = n & 0xFFFF
            wire = query.to_wire()
            started = time.perf_counter()
            sock.send(wire)
            reply = sock.recv(4096)
            times.append(time.perf_counter() - started)
            answer = dns.message.from_wire(reply)  # checked after the clock stopped
            if answer.id != query.id or expect not in [
                a.address for rr in answer.answer for a in rr
            ]:
                raise RuntimeError(f"{name}: unexpected reply {answer}")
    return times


def _ask_many(name: str, source: str, expect: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        elapsed, addresses = ask(name, source)
        if expect not in addresses:
            raise RuntimeError(f"{name} answered {addresses}, not {expect}")
        times.append(elapsed)
    return times


def record_delays(
    cluster: ClusterSettings, client: FerryClient, pair: Pair, starts: int
) -> list[str]:
    config = pair.a.config
    after_wait: list[float] = []
    after_create: list[float] = []
    wait_times: list[float] = []
    misses = 0
    with contextlib.closing(_Pool(pair.ns(pair.a, cluster))) as pool:
        for n in range(starts):
            holder: dict[str, str] = {}
            seen_at: list[float] = []
            box = _Poller(holder, seen_at, pair.a.private_ip)
            fut = pool.submit(box.poll)
            t_request = time.monotonic()
            made = client.create_machine(APP, config, region="ams")
            holder["id"] = made.id
            client.wait_machine(APP, made.id, timeout=90)
            t_started = time.monotonic()
            box.deadline = t_started + POLL_LIMIT_S
            fut.result(timeout=POLL_LIMIT_S + 30)
            if seen_at:
                after_wait.append(seen_at[0] - t_started)
                after_create.append(seen_at[0] - t_request)
            else:
                misses += 1
            wait_times.append(t_started - t_request)
            client.delete_machine(APP, made.id, force=True)
            last = f"{after_wait[-1] * 1e3:.0f} ms" if seen_at else "never"
            print(f"start {n + 1}: {made.id} on {made.host_id}: record {last}", flush=True)
    qw, qc, qs = quantiles(after_wait), quantiles(after_create), quantiles(wait_times)
    return [
        f"Record present after start, {starts} machines created in ams (then deleted): the",
        "clock runs from `wait_machine(..., 'started')` returning in the bench (the API's",
        "long-poll answer received) to the first AAAA answer for `<id>.vm.nb.internal` holding",
        "the machine's private_ip, asked from A's namespace by a poller started before the",
        "create request (one query every 10 ms, stops 5 s after the start was reported).",
        "Negative: the record answered before the API's answer reached the bench.",
        "",
        f"- after `wait_machine` returned: p50 **{qw[50] * 1e3:.0f} ms**, p99 "
        f"**{qw[99] * 1e3:.0f} ms**, max {max(after_wait, default=0) * 1e3:.0f} ms; "
        f"min {min(after_wait, default=0) * 1e3:.0f} ms; never within 5 s: {misses}",
        f"- after the create request was sent: p50 {qc[50] * 1e3:.0f} ms, p99 "
        f"{qc[99] * 1e3:.0f} ms (create + start took p50 {qs[50] * 1e3:.0f} ms, "
        f"p99 {qs[99] * 1e3:.0f} ms)",
        "",
    ]


class _Poller:
    """Asks for ``<id>.vm`` every 10 ms until it holds an address or the deadline passes."""

    def __init__(self, holder: dict[str, str], seen: list[float], source: str) -> None:
        self.holder, self.seen, self.source = holder, seen, source
        self.deadline = time.monotonic() + 120  # replaced once the start is reported

    def poll(self) -> None:
        while time.monotonic() < self.deadline:
            machine = self.holder.get("id")
            if machine is not None:
                with contextlib.suppress(dns.exception.Timeout, OSError):
                    _, addresses = ask(f"{machine}.vm.{APP}.internal", self.source)
                    if addresses:
                        self.seen.append(time.monotonic())
                        return
            time.sleep(POLL_S)


class _Pool:
    """One thread inside a network namespace."""

    def __init__(self, netns: str) -> None:
        self._executor = thread_in(netns)

    def submit(self, fn: Callable[[], None]) -> Future[None]:
        return self._executor.submit(fn)

    def run(self, fn: Callable[[], list[float]]) -> list[float]:
        return self._executor.submit(fn).result(timeout=600)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


# -- 3. the edge across the mesh -----------------------------------------------------


def edge_across(cluster: ClusterSettings, machine: Machine, requests: int) -> list[str]:
    plan = cluster.plan
    sin_ns, ams = plan.region("sin").netns, plan.region("ams")
    configured = cluster.latency.rtt_from("sin")["ams"]
    ping = ping_rtts(sin_ns, ams.edge_address, requests)
    wg_before = wg_bytes(cluster.prefix)
    with contextlib.closing(_Pool(sin_ns)) as pool:
        connects = pool.run(lambda: tcp_connects(ams.edge_address, 4281, requests))
        fresh = pool.run(lambda: http_times(plan.edge_address, requests, keep_alive=False))
        kept = pool.run(lambda: http_times(plan.edge_address, requests, keep_alive=True))
    wg_after = wg_bytes(cluster.prefix)
    wg_delta = sum(wg_after.values()) - sum(wg_before.values())
    with contextlib.closing(_Pool(ams.netns)) as pool:  # the edge and LAN alone, no WAN
        local = pool.run(lambda: http_times(plan.edge_address, requests, keep_alive=False))
        direct = pool.run(
            lambda: http_times(machine.host_ip, requests, keep_alive=False, port=8080)
        )
    rtt = statistics.median(ping)
    lines = [
        "### 3. The edge across the mesh: sin client → sin edge → app only in ams",
        "",
        f"{requests} sequential `GET /` with `Host: {APP}.ferry.test` from sin's region namespace",
        "to the edge address (the sin edge), Python `http.client`; every answer checked to",
        "come from an ams machine. RTT sin → ams measured the same run, same count.",
        "",
        "| measure | p50 ms | p90 ms | p50 / ping RTT |",
        "|---|---|---|---|",
    ]
    for label, values in (
        ("ping sin ns → ams edge address (ICMP)", ping),
        ("TCP connect sin ns → ams backhaul port", connects),
        ("HTTP, new connection per request", fresh),
        ("HTTP, one kept-alive connection", kept),
        ("for reference: HTTP from ams's own namespace, new connections (no WAN)", local),
        ("for reference: HTTP from ams's namespace to a machine's host_ip:8080 (no edge)", direct),
    ):
        q = quantiles(values)
        lines.append(f"| {label} | {q[50] * 1e3:.1f} | {q[90] * 1e3:.1f} | {q[50] / rtt:.3f} |")
    lines += [
        "",
        f"Configured sin-ams RTT (`cluster.latency`): {configured:g} ms. Bytes through the",
        f"cluster's {len(wg_after)} WireGuard interfaces (hosts' and edges', `wg show all "
        f"transfer`, rx+tx summed) while the sin ping, connects and {2 * requests + 2} requests "
        f"ran: **{wg_delta} B** (handshakes and keepalives included).",
        "",
    ]
    return lines


def wg_bytes(prefix: str) -> dict[str, int]:
    """rx+tx bytes of each of the cluster's WireGuard interfaces.

    wireguard-go's control sockets live in /var/run/wireguard whatever the
    namespace, so ``wg show all`` anywhere lists every userspace interface of the
    machine; the cluster's are those named after its prefix."""
    out = subprocess.run(
        ["wg", "show", "all", "transfer"], capture_output=True, text=True, timeout=10
    ).stdout
    found: dict[str, int] = {}
    for fields in (line.split() for line in out.splitlines()):
        if fields and fields[0].startswith(prefix):
            found[fields[0]] = found.get(fields[0], 0) + int(fields[-2]) + int(fields[-1])
    return found


def ping_rtts(netns: str, address: str, count: int) -> list[float]:
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", address]
    out = subprocess.run(
        iproute.netns_exec_argv(netns, argv),
        capture_output=True,
        text=True,
        timeout=count * 0.2 + 30,
    ).stdout
    rtts = [float(ms) / 1e3 for ms in re.findall(r"time=([\d.]+) ms", out)]
    if len(rtts) < count // 2:
        raise RuntimeError(f"ping to {address}: {out[-300:]}")
    return rtts


def tcp_connects(address: str, port: int, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with socket.create_connection((address, port), timeout=5):
            times.append(time.perf_counter() - started)
    return times


def http_times(edge: str, count: int, *, keep_alive: bool, port: int = 80) -> list[float]:
    headers = {"Host": f"{APP}.ferry.test"}
    if not keep_alive:
        headers["Connection"] = "close"
    times = []
    conn = http.client.HTTPConnection(edge, port, timeout=10)
    try:
        for _ in range(count + 1):  # the first warms the edge's backhaul pool; not counted
            if not keep_alive:
                conn.close()
                conn = http.client.HTTPConnection(edge, port, timeout=10)
            started = time.perf_counter()
            conn.request("GET", "/", headers=headers)
            body = conn.getresponse().read().decode()
            times.append(time.perf_counter() - started)
            if "region=ams" not in body:
                raise RuntimeError(f"the sin edge answered {body[:200]!r}")
    finally:
        conn.close()
    return times[1:]


def busiest() -> str:
    """The top of ``top`` over one second: what already takes CPU before measuring."""
    out = subprocess.run(
        ["top", "-b", "-n", "2", "-d", "1", "-w", "160"], capture_output=True, text=True, timeout=20
    ).stdout
    last = out.rsplit("top - ", 1)[-1].splitlines()
    return "\n".join(["top - " + last[0], *last[1:20]])


# -- report ---------------------------------------------------------------------------


def quantiles(values: list[float]) -> dict[int, float]:
    if not values:
        return {50: float("nan"), 90: float("nan"), 99: float("nan")}
    ordered = sorted(values)

    def at(p: int) -> float:  # nearest rank
        return ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))]

    return {50: at(50), 90: at(90), 99: at(99)}


def report(
    lines: list[str],
    args: argparse.Namespace,
    began: datetime.datetime,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> str:
    iperf = subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout
    wg = subprocess.run(["wireguard-go", "--version"], capture_output=True, text=True).stdout
    ended = datetime.datetime.now(datetime.UTC)
    head = [
        f"## {began.date().isoformat()} — the private network on the embedded cluster "
        "(issue 14's figures)",
        "",
        f"`bench/private_net_bench.py --rounds {args.rounds} --seconds {args.seconds} "
        f"--queries {args.queries} --starts {args.starts} --requests {args.requests}`, "
        f"{began:%H:%M} to {ended:%H:%M} UTC. One ephemeral cluster: ams and sin, 2 hosts each;",
        f"app `{APP}` (the demo) in ams only. {os.cpu_count()} shared cores, load average "
        f"{' '.join(f'{x:.1f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.1f}' for x in load_after)} after (other helpers' work running);",
        f"{wg.splitlines()[0] if wg else 'wireguard-go'}, {iperf.splitlines()[0]}.",
        "",
    ]
    return "\n".join(head + lines)


if __name__ == "__main__":
    main()
