"""The delay line process, driven through a datagram socketpair instead of a TUN."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.cluster.wan_forwarder import DelayForwarder, main
from ferry.cluster.wan_schedule import DelayLine, PairDelay, WanConfig

from .test_wan_schedule import ipv4

CONFIG = WanConfig(
    {"ams": ("10.9.16.0/20",), "fra": ("10.9.32.0/20",), "sin": ("10.9.48.0/20",)},
    {
        ("ams", "sin"): PairDelay(40),
        ("sin", "ams"): PairDelay(40),
        ("ams", "fra"): PairDelay(5),
    },
)
AMS, AMS_2, FRA, SIN = "10.9.16.1", "10.9.17.7", "10.9.32.1", "10.9.48.1"


@pytest.fixture
def wire() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the forwarder's end, the network's end) of a datagram pair, closed afterwards."""
    tun_end, net_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    tun_end.setblocking(False)
    net_end.setblocking(False)
    try:
        yield tun_end, net_end
    finally:
        tun_end.close()
        net_end.close()


async def round_trip(
    wire: tuple[socket.socket, socket.socket], packets: list[bytes]
) -> list[tuple[float, bytes]]:
    """Send ``packets`` through a running forwarder; return (seconds after sending, packet)."""
    tun_end, net_end = wire
    loop = asyncio.get_running_loop()
    forwarder = DelayForwarder(tun_end.fileno(), DelayLine(CONFIG))
    running = asyncio.create_task(forwarder.run())
    await asyncio.sleep(0)
    start = loop.time()
    try:
        for packet in packets:
            net_end.send(packet)
        received = []
        for _ in packets:
            data = await asyncio.wait_for(loop.sock_recv(net_end, 65535), timeout=2.0)
            received.append((loop.time() - start, data))
        return received
    finally:
        forwarder.stop()
        await asyncio.wait_for(running, timeout=2.0)


def test_a_packet_between_regions_comes_back_after_the_one_way_delay(
    wire: tuple[socket.socket, socket.socket],
) -> None:
    packet = ipv4(AMS, SIN, b"x" * 100)
    [(elapsed, data)] = asyncio.run(round_trip(wire, [packet]))
    assert data == packet
    assert 0.040 <= elapsed < 0.050


def test_a_packet_inside_a_region_or_to_an_unknown_address_comes_back_at_once(
    wire: tuple[socket.socket, socket.socket],
) -> None:
    packets = [ipv4(AMS, AMS_2), ipv4(AMS, "10.9.0.1"), ipv4(AMS, "10.9.250.1")]
    received = asyncio.run(round_trip(wire, packets))
    assert [data for _, data in received] == packets
    assert max(elapsed for elapsed, _ in received) < 0.010


def test_short_delays_overtake_long_ones_but_each_pair_keeps_its_order(
    wire: tuple[socket.socket, socket.socket],
) -> None:
    far = [ipv4(AMS, SIN, bytes([i])) for i in range(20)]
    near = [ipv4(AMS, FRA, bytes([i])) for i in range(20)]
    interleaved = [p for pair in zip(far, near, strict=True) for p in pair]
    received = [data for _, data in asyncio.run(round_trip(wire, interleaved))]
    assert received[:20] == near
    assert received[20:] == far


def test_main_without_a_readable_config_exits_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    assert main(["--tun", "wan0", "--config", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"ferry wan forwarder: cannot read the WAN config {missing}: No such file or directory"
    )


def test_main_with_a_corrupt_config_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "wan.json"
    config.write_text('{"version": 1}')
    assert main(["--tun", "wan0", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "invalid" in err and "Traceback" not in err
