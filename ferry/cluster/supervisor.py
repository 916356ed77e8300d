"""The embedded cluster's supervisor: one process that owns every other one.

``python -m ferry.cluster.supervisor --home H`` builds the namespaces, then
runs the registry, the control plane, one edge proxy per region and one agent
per host, restarting any that crash; on SIGTERM it stops them, removes the
machines' containers and the namespaces, and exits. Logs go to
``H/logs/<name>.log``.

Only the supervisor holds the admin token. Each agent and each edge gets its
own credential (``ferry.cluster.credentials``) in its environment; every
``CREDENTIAL_CHECK_SECONDS``, and before a crashed one restarts, the
supervisor checks that the control plane still accepts it and, if not (a
revoked credential), mints a new one and restarts the process with it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from ferry.autoscale.distances import write_latency_file
from ferry.cluster.cleanup import cgroup_parent, cleanup_cluster
from ferry.cluster.credentials import CredentialKeeper, CredentialSpec, write_secret_file
from ferry.cluster.pebble import PEBBLE_BINARY, cluster_ca
from ferry.cluster.processes import Child, ProcessGroup, become_subreaper
from ferry.cluster.registry import registry_command, write_registry_config
from ferry.cluster.settings import ClusterSettings
from ferry.cluster.topology import build_topology, remote_link_rules
from ferry.cluster.wan import setup_wan, teardown_wan, wait_forwarder_attached
from ferry.errors import FerryError
from ferry.net.iproute import netns_enter_argv
from ferry.net.isolation import cluster_edge_sources, cluster_protected
from ferry.net.nftables import apply_ruleset
from ferry.tls.cluster_certs import prepare_cluster_tls

log = logging.getLogger("ferry.supervisor")

#: Each region's edge also listens on its own address for requests other edges
#: forward to its machines (the backhaul between edges).
BACKHAUL_PORT = 4281
#: Each region's edge serves HTTPS here on the edge address, as it serves HTTP on 80.
HTTPS_PORT = 443
MESH_PORT = 51820  # every host's WireGuard, on its region-network address
EDGE_MESH_PORT = 51821  # every edge's, on its region address
#: How often the supervisor checks that the agents' and edges' credentials still work.
CREDENTIAL_CHECK_SECONDS = 30.0
#: The variables a client reads its token from: the children never inherit the admin's.
TOKEN_VARIABLES = ("FERRY_API_TOKEN", "FLY_API_TOKEN")


def ferry_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferry", *args]


class Supervisor:
    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.group = ProcessGroup()
        self._stopping = False
        self._credentials: dict[str, CredentialSpec] = {}  # child name -> its credential
        #: Mints and checks the agents' and edges' credentials; set by ``start`` once the
        #: admin token is there.
        self.keeper: CredentialKeeper | None = None
        self._next_check = 0.0
        # Children inherit our environment: whoever started us may have the admin token set.
        for variable in TOKEN_VARIABLES:
            os.environ.pop(variable, None)

    def start(self) -> None:
        s = self.settings
        plan = s.plan
        build_topology(plan)
        wan = setup_wan(plan, s.latency, s.home / "wan")
        self.group.add(Child("wan", wan.argv, s.log_dir / "wan.log"))
        wait_forwarder_attached(wan)
        latency_file = s.home / "server" / "latency.json"
        latency_file.parent.mkdir(parents=True, exist_ok=True)
        write_latency_file(latency_file, s.latency.median)  # for capacity fallback
        registry_root = s.home / "registry"
        config = write_registry_config(registry_root, s.registry_address)
        self.group.add(Child("registry", registry_command(config), s.log_dir / "registry.log"))
        server_env: dict[str, str] = {}
        if Path(PEBBLE_BINARY).exists():  # the cluster's ACME CA (docs/certificates.md)
            first = plan.regions[0]
            ca = cluster_ca(
                s.home / "pebble", netns=first.netns, region_address=first.edge_address,
                anycast_address=plan.edge_address, domain=s.domain,
            )  # fmt: skip
            argv = netns_enter_argv(ca.netns, ca.argv)
            self.group.add(Child("pebble", argv, s.log_dir / "pebble.log", env=ca.env))
            server_env = ca.server_env
        self.group.add(
            Child(
                "server",
                ferry_argv(
                    "server",
                    "--home",
                    str(s.home),
                    "--listen",
                    f"127.0.0.1:{s.api_port}",
                    "--listen",
                    f"{plan.root_address}:{s.api_port}",
                    "--registry",
                    s.registry_address,
                    "--latency",
                    str(latency_file),
                ),
                s.log_dir / "server.log",
                env=server_env,
            )
        )
        self.keeper = CredentialKeeper(s.api_url, self._wait_token())
        self._start_edges()
        for host in plan.hosts:
            argv = ferry_argv(
                "agent",
                "--host-id",
                host.host_id,
                "--region",
                host.region,
                "--address",
                host.address,
                "--cpus",
                str(s.host_cpus),
                "--memory-mb",
                str(s.host_memory_mb),
                "--machine-subnet",
                host.machine_subnet,
                "--state-dir",
                str(s.host_dir(host.host_id)),
                "--netns-prefix",
                f"{s.prefix}-",
                "--cgroup-parent",
                cgroup_parent(s, host.host_id),
                "--api-url",
                s.internal_api_url,
                "--insecure-registry",
                s.registry_address,
                # one kernel: its agents share one table of machines' uid ranges
                "--id-ranges-file",
                str(s.home / "id-ranges.json"),
                *(["--readonly-root"] if s.readonly_root else []),
                # 6PN between hosts over WireGuard, and .internal on fdaa::3 (forwarding
                # other names to the region edge's resolver)
                f"--mesh-endpoint={host.address}:{MESH_PORT}",
                f"--mesh-scope={s.prefix}",
                "--dns",
                f"--dns-upstream={plan.edge_address}:53",
                "--isolation",
                *[f"--edge-source={n}" for n in cluster_edge_sources(plan)],
                *[f"--protected={n}" for n in cluster_protected(plan)],
                # the edges' public address is in the protected cluster range, yet machines
                # reach apps by their public names as a client would
                *[f"--service={plan.edge_address}:{port}/tcp" for port in (80, 443)],
            )
            self.add_with_credential(
                Child(
                    f"agent-{host.host_id}",
                    netns_enter_argv(host.netns, argv),
                    s.log_dir / f"agent-{host.host_id}.log",
                ),
                CredentialSpec.host(host.host_id, host.region, s.host_dir(host.host_id)),
            )
        self._start_remote_hosts()
        self._next_check = time.monotonic() + CREDENTIAL_CHECK_SECONDS

    def _start_remote_hosts(self) -> None:
        """Each remote host joins as a real server would: a join token, `ferry host join`
        in its namespace (which only runs the agent when it joined before)."""
        s = self.settings
        plan = s.plan
        if not plan.remote_hosts:
            return
        ports = (s.api_port, s.registry_port)
        apply_ruleset(plan.core_netns, remote_link_rules(plan, ports, (MESH_PORT, EDGE_MESH_PORT)))
        assert self.keeper is not None
        for remote in plan.remote_hosts:
            state = s.host_dir(remote.host_id)
            token_file = state / "join-token"
            if not (state / "credential").exists():
                write_secret_file(token_file, self.keeper.join_token(remote.region, remote.host_id))
            argv = ferry_argv(
                "host", "join", s.internal_api_url,
                "--region", remote.region, "--id", remote.host_id,
                "--address", remote.address, "--machine-subnet", remote.machine_subnet,
                "--cpus", str(s.host_cpus), "--memory-mb", str(s.host_memory_mb),
                "--state-dir", str(state), "--token-file", str(token_file),
                "--insecure-registry", s.registry_address,
                "--mesh-port", str(MESH_PORT), "--mesh-scope", s.prefix,
                "--netns-prefix", f"{s.prefix}-",
                "--cgroup-parent", cgroup_parent(s, remote.host_id),
                *[f"--protected={n}" for n in cluster_protected(plan)],
            )  # fmt: skip
            name = f"agent-{remote.host_id}"
            self.group.add(
                Child(name, netns_enter_argv(remote.netns, argv), s.log_dir / f"{name}.log")
            )

    def add_with_credential(self, child: Child, spec: CredentialSpec) -> None:
        """Start ``child`` with its own credential (kept or minted) as ``FERRY_API_TOKEN``.

        Blocks until the control plane answers (``UnavailableError`` after 30 s)."""
        assert self.keeper is not None
        child.env = {"FERRY_API_TOKEN": self.keeper.ensure_when_up(spec)}
        self._credentials[child.name] = spec
        self.group.add(child)

    def refresh_credentials(self, names: list[str]) -> None:
        """Re-mint the credentials of ``names`` the control plane refuses (401) and
        restart those still running with the new one; a crashed one restarts with it.
        Leaves everything as it is while the control plane does not answer."""
        assert self.keeper is not None
        for name in names:
            child = self.group.children.get(name)
            if child is None:
                continue
            try:
                token = self.keeper.ensure(self._credentials[name])
            except (FerryError, ValueError) as exc:  # ValueError: a body that is not JSON
                log.warning("cannot check the credentials now: %s", exc)
                return
            if child.env.get("FERRY_API_TOKEN") == token:
                continue
            child.env = {"FERRY_API_TOKEN": token}
            if child.exit_status is None:
                log.warning("%s's credential was refused: restarting it with a new one", name)
                self.group.stop(name)
                self.group.add(child)

    def _start_edges(self) -> None:
        """One edge proxy per region, inside the region's namespace, on the edge address."""
        s = self.settings
        plan = s.plan
        # The cluster CA (kept across restarts) and a fresh *.<domain> certificate.
        tls = prepare_cluster_tls(s.home, s.domain)
        for region in plan.regions:
            rtts = s.latency.rtt_from(region.code)
            argv = ferry_argv(
                "proxy",
                "--region",
                region.code,
                "--api-url",
                s.internal_api_url,
                "--state-dir",
                str(s.home / "edges" / region.code),
                "--listen",
                plan.edge_address,
                "--domain",
                s.domain,
                *[f"--rtt={other}={rtts[other]:g}" for other in s.regions if other != region.code],
                f"--backhaul-listen={region.edge_address}:{BACKHAUL_PORT}",
                *[
                    f"--peer={other.code}={other.edge_address}:{BACKHAUL_PORT}"
                    for other in plan.regions
                    if other.code != region.code
                ],
                "--insecure-registry",
                s.registry_address,
                f"--https-port={HTTPS_PORT}",
                f"--tls-cert={tls.edge_cert}",
                f"--tls-key={tls.edge_key}",
                # the edge on the mesh: machines of hosts outside the region's network
                # (joined servers) are reached over 6PN; the region's own hosts directly
                f"--mesh-endpoint={region.edge_address}:{EDGE_MESH_PORT}",
                f"--mesh-scope={s.prefix}",
                f"--lan={region.aggregate}",
            )
            self.add_with_credential(
                Child(
                    f"proxy-{region.code}",
                    netns_enter_argv(region.netns, argv),
                    s.log_dir / f"proxy-{region.code}.log",
                ),
                CredentialSpec.edge(region.code, s.home / "edges" / region.code),
            )

    def _wait_token(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):  # not written yet
                token = self.settings.token_path.read_text().strip()
                if token:
                    return token
            self.group.reap()
            time.sleep(0.05)
        raise RuntimeError(f"the control plane wrote no token in {timeout:.0f}s; see server.log")

    def run(self) -> None:
        while not self._stopping:
            time.sleep(0.2)
            self.group.reap()
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + CREDENTIAL_CHECK_SECONDS
                self.refresh_credentials(list(self._credentials))
            else:
                self.refresh_credentials([n for n in self._credentials if self._due(n, now)])
            for name in self.group.restart_crashed():
                log.warning("restarted %s", name)

    def _due(self, name: str, now: float) -> bool:
        """True when ``name`` crashed and restarts now (its credential is checked first)."""
        child = self.group.children.get(name)
        return child is not None and child.exit_status is not None and now >= child.next_start

    def shutdown(self) -> None:
        agents = [n for n in self.group.children if n.startswith(("agent-", "proxy-"))]
        for name in agents:
            self.group.stop(name)
        for name in ("server", "pebble", "registry", "wan"):
            self.group.stop(name)
        for name in list(self.group.children):  # any other child: none may outlive the cluster
            self.group.stop(name)
        teardown_wan(self.settings.plan, self.settings.home / "wan")
        cleanup_cluster(self.settings, purge=False)
        log.info("cluster %s stopped", self.settings.prefix)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ferry-supervisor")
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = ClusterSettings.load(args.home)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    become_subreaper()
    supervisor = Supervisor(settings)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    settings.pid_path.write_text(str(os.getpid()))
    try:
        supervisor.start()
        supervisor.run()
    except Exception:
        log.exception("supervisor failed")
        return_code = 1
    else:
        return_code = 0
    finally:
        supervisor.shutdown()
        settings.pid_path.unlink(missing_ok=True)
    return return_code


if __name__ == "__main__":
    sys.exit(main())
