"""Benchmark: throughput over Ferry's WireGuard mesh against raw wireguard-go, same run.

Run (as root)::

    /work/main/.venv/bin/python bench/mesh_bench.py [--rounds 3 --seconds 3 --append]

Builds ``bench/mesh_lab.py``'s two hosts (network namespaces joined only by
an IPv4 veth underlay, each with a machine namespace behind it) and measures
with iperf3 (one TCP stream, ``-t`` seconds, ≤ 5), in interleaved rounds
(the order rotates every round):

- ``mesh machines``: machine 1 → machine 2 over 6PN: Ferry's mesh
  (``HostMesh``: wireguard-go configured by ``ferry.net.wireguard``), plus
  the veth and forwarding hop on each side — the issue's figure;
- ``mesh hosts``: host 1 → host 2 over the same mesh, infra addresses (no
  machine hop);
- ``raw wireguard-go``: host 1 → host 2 over a second wireguard-go pair set
  up by hand with ``wg`` (no Ferry code), IPv4 inside the tunnel;
- ``plain``: host 1 → host 2 over the underlay, no encryption.

Prints each round, the medians, the ratio mesh/raw per round (median) and the
conditions; ``--append`` adds a dated section at the end of bench/RESULTS.md.
Everything the run made is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mesh_lab import UNDERLAY, MeshLab, mesh_lab  # noqa: E402
from bench.wg_iperf import iperf3, iperf3_server, raw_wireguard  # noqa: E402

RAW_TUNNEL = ("10.200.0.1", "10.200.0.2")
RAW_PORT = 51830
Target = tuple[str, str, str, int]  # client netns, server netns, server address, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3, choices=range(1, 6))
    parser.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state, mesh_lab(Path(state)) as lab:
        h1, h2 = lab.hosts
        lab.sync(h1)
        lab.sync(h2)
        with raw_pair(lab, Path(state)):
            targets: dict[str, Target] = {
                "mesh machines": (h1.machine_netns, h2.machine_netns, h2.machine_address, 5201),
                "mesh hosts": (h1.netns, h2.netns, h2.mesh.address, 5202),
                "raw wireguard-go": (h1.netns, h2.netns, RAW_TUNNEL[1], 5203),
                "plain": (h1.netns, h2.netns, UNDERLAY[1], 5204),
            }
            with contextlib.ExitStack() as servers:
                for _, netns, address, port in targets.values():
                    servers.enter_context(iperf3_server(netns, address, port))
                results = measure(targets, args.rounds, args.seconds)
    text = report(results, args.rounds, args.seconds)
    print(text)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a") as out:
            out.write("\n" + text)


def measure(targets: dict[str, Target], rounds: int, seconds: int) -> dict[str, list[float]]:
    names = list(targets)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            client_ns, _server_ns, address, port = targets[name]
            results[name].append(iperf3(client_ns, address, port, seconds).mbits)
        print(f"round {r + 1}: " + ", ".join(f"{n} {results[n][-1]:.0f}" for n in names))
    return results


@contextlib.contextmanager
def raw_pair(lab: MeshLab, state: Path) -> Iterator[None]:
    """A second wireguard-go pair between the hosts, configured by hand with ``wg``."""
    spots = [(host.netns, UNDERLAY[i]) for i, host in enumerate(lab.hosts)]
    names = [f"{lab.scope}r{n}" for n in (1, 2)]
    with raw_wireguard(spots, names, [f"{a}/24" for a in RAW_TUNNEL], RAW_PORT, state):
        yield


def report(results: dict[str, list[float]], rounds: int, seconds: int) -> str:
    medians = {name: statistics.median(values) for name, values in results.items()}
    ratios = [
        m / r
        for m, r in zip(results["mesh machines"], results["raw wireguard-go"], strict=True)
        if r > 0
    ]
    ratio = statistics.median(ratios)
    versions = subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout
    wg_version = subprocess.run(["wireguard-go", "--version"], capture_output=True, text=True)
    lines = [
        f"## WireGuard mesh throughput ({datetime.date.today().isoformat()})",
        "",
        f"`bench/mesh_bench.py --rounds {rounds} --seconds {seconds}`: iperf3, one TCP stream,",
        f"{seconds} s per run, {rounds} interleaved rounds (order rotated each round). Machine:",
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end (shared with other jobs);",
        f"{wg_version.stdout.splitlines()[0]}, {versions.splitlines()[0]}. Two host namespaces",
        "joined only by an IPv4 veth underlay; MTU 1420 inside WireGuard.",
        "",
        "| path | Mbit/s per round | median |",
        "|---|---|---|",
    ]
    for name, values in results.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        lines.append(f"| {name} | {runs} | **{medians[name]:.0f}** |")
    lines += [
        "",
        f"Mesh (machine to machine) / raw wireguard-go (host to host): **{ratio:.2f}x** "
        f"(median of per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}; "
        "the issue asks ≥ 0.9x). Plain route / raw wireguard-go: "
        f"{medians['plain'] / medians['raw wireguard-go']:.1f}x.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
