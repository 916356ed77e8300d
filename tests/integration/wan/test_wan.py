"""The emulated WAN on real namespaces: pings, HTTP and UDP take the matrix's time.

One small cluster (ams, iad, sin; one host each) with the delay line running
in its core namespace; everything is removed afterwards, also on failure.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.cluster.lifecycle import pick_octet
from ferry.cluster.topology import build_topology, teardown_topology
from ferry.cluster.wan import setup_wan, teardown_wan
from ferry.net.iproute import netns_exec_argv
from ferry.net.latency import LatencyMatrix
from ferry.net.plan import ClusterPlan, plan_cluster

from .netns_tools import (
    Forwarder,
    assert_close,
    ping_avg_ms,
    run_server,
    start_ping,
    stop,
    wait_until_answering,
)

MATRIX = LatencyMatrix.default()
HTTP_PORT = 8080
UDP_PORT = 5353


@pytest.fixture(scope="module")
def wan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterPlan]:
    prefix = f"fw{secrets.token_hex(2)}"
    plan = plan_cluster(prefix, pick_octet(211), ["ams", "iad", "sin"], 1)
    run_dir = tmp_path_factory.mktemp("wan")
    forwarder = None
    try:
        build_topology(plan)
        spec = setup_wan(plan, MATRIX, run_dir)
        forwarder = Forwarder(spec, run_dir / "forwarder.log")
        yield plan
    finally:
        if forwarder is not None:
            forwarder.stop()
        teardown_wan(plan, run_dir)
        teardown_topology(prefix)


def test_ping_between_regions_takes_the_matrix_rtt(wan: ClusterPlan) -> None:
    pairs = [("ams", "sin"), ("iad", "sin"), ("ams", "iad")]
    pings = {(a, b): start_ping(wan.region(a).netns, wan.region(b).edge_address) for a, b in pairs}
    for (a, b), proc in pings.items():
        assert_close(ping_avg_ms(proc), MATRIX.rtt_ms(a, b), f"ping {a}->{b}")


def test_traffic_inside_a_region_and_to_the_root_namespace_is_not_delayed(
    wan: ClusterPlan,
) -> None:
    ams = wan.region("ams")
    host = ams.hosts[0]
    pings = [
        start_ping(host.netns, ams.edge_address, count=3),  # host -> its region edge
        start_ping(ams.netns, host.address, count=3),  # region edge -> its host
        start_ping(ams.netns, wan.root_address, count=3),  # to the control plane
        start_ping(wan.region("sin").hosts[0].netns, wan.root_address, count=3),
    ]
    for proc in pings:
        assert ping_avg_ms(proc) < 2.0


HTTP_SERVER = """
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
"""


def test_http_connect_takes_one_rtt_and_a_request_two(wan: ClusterPlan, tmp_path: Path) -> None:
    sin = wan.region("sin")
    (tmp_path / "hello.txt").write_text("hello from sin\n")
    server = run_server(sin.netns, HTTP_SERVER, sin.edge_address, str(HTTP_PORT), str(tmp_path))
    url = f"http://{sin.edge_address}:{HTTP_PORT}/hello.txt"
    try:
        wait_until_answering(sin.netns, ["curl", "-sf", "-o", "/dev/null", url])
        argv = ["curl", "-sf", "-o", "/dev/null", "-w", "%{time_connect} %{time_total}", url]
        out = subprocess.run(
            netns_exec_argv(wan.region("ams").netns, argv),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    finally:
        stop(server)
    connect_s, total_s = (float(x) for x in out.split())
    rtt = MATRIX.rtt_ms("ams", "sin")
    assert_close(connect_s * 1000, rtt, "HTTP connect ams->sin")
    assert_close(total_s * 1000, 2 * rtt, "HTTP request ams->sin")


UDP_ECHO = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = sock.recvfrom(512)
    sock.sendto(b"answer to " + data, peer)
"""

UDP_CLIENT = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
rtts = []
for i in range(3):
    start = time.monotonic()
    sock.sendto(b"query %d" % i, (sys.argv[1], int(sys.argv[2])))
    data, _ = sock.recvfrom(512)
    assert data == b"answer to query %d" % i, data
    rtts.append((time.monotonic() - start) * 1000)
print(sorted(rtts)[1])
"""


def test_udp_queries_get_answers_one_rtt_later(wan: ClusterPlan) -> None:
    iad = wan.region("iad")
    server = run_server(iad.netns, UDP_ECHO, iad.edge_address, str(UDP_PORT))
    client = [sys.executable, "-c", UDP_CLIENT, iad.edge_address, str(UDP_PORT)]
    try:
        wait_until_answering(iad.netns, client)
        out = subprocess.run(
            netns_exec_argv(wan.region("sin").netns, client),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    finally:
        stop(server)
    assert_close(float(out), MATRIX.rtt_ms("iad", "sin"), "UDP query sin->iad")
