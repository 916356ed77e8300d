"""`ferry postgres create|status|connect|destroy` over the Machines API (``FerryClient``).

A Postgres cluster is an app of its own. ``create_cluster``:

1. makes the app and stores the three passwords as its secrets (the machines get
   them as env at start; nothing else keeps them in plain text);
2. for each member (the primary's region first) makes a ``pg_data`` volume in its
   region and a machine *stopped* (``skip_launch``) that mounts it on ``/data``:
   the control plane gives each its 6PN address at creation;
3. updates every machine with the same env naming all members' etcd peers by
   those addresses (``plan.member_env``; the replicas also wait for the first
   member to bootstrap, ``plan.bootstrap_env``), then starts them all;
4. waits until Patroni reports a running primary and every member running.

If any step fails, what was created is destroyed again (machines, then volumes,
then the app) and the error is raised: nothing is left half-made.

Everything a member is asked runs through the exec API (``POST …/exec``) inside
that member: Patroni's REST API on its loopback, psql on its Unix socket as the
superuser with the password from its own env (never on a command line).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ferry.client import FerryClient
from ferry.errors import (
    ApiError,
    ConflictError,
    FerryError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from ferry.model import Machine, MachineConfig, MachineState, ServiceConfig, ServicePort
from ferry.model.machine import CheckConfig, GuestConfig, RestartPolicy
from ferry.model.volume import MachineMount, VolumeState
from ferry.postgres import plan
from ferry.postgres.patroni_config import (
    PG_BIN_DIR,
    POSTGRES_PORT,
    PROXY_PORT,
    REST_PORT,
    SUPERUSER,
)

__all__ = [
    "CreatedCluster",
    "cluster_members",
    "cluster_view_of_all",
    "create_cluster",
    "destroy_cluster",
    "find_primary",
    "members_of",
    "psql_argv",
    "run_psql",
    "switchover",
    "teardown",
]

DEFAULT_MEMORY_MB = 512
READY_TIMEOUT = 180.0
#: The edge's check of each member's Flycast 5432 service, as HAProxy's is in Patroni's
#: own setup (and on Fly): Patroni's ``/primary`` answers 200 only on the running primary
#: holding the leader key, so ``<db>.flycast:5432`` reaches the primary's Postgres (5433)
#: with no forwarder hop. A failing check is retried every 0.25 s, so a promoted replica
#: is in rotation within a quarter second; a hung member (a frozen host still completes
#: TCP handshakes in its kernel) answers no check and is out within the timeout.
PRIMARY_CHECK = CheckConfig(
    type="http", port=REST_PORT, path="/primary", interval="1s", timeout="1s"
)
_CLUSTER_PROBE = (
    "import urllib.request;print(urllib.request.urlopen("
    f"'http://[::1]:{REST_PORT}/cluster',timeout=3).read().decode())"
)
#: psql as the superuser on the local socket; the password comes from the machine's own
#: env inside the shell, so it is on no command line. The script arrives on stdin.
_PSQL = (
    f'PGPASSWORD="$SU_PASSWORD" exec {PG_BIN_DIR}/psql -X -v ON_ERROR_STOP=1'
    f' -h /var/run/postgresql -p {POSTGRES_PORT} -U {SUPERUSER} -d postgres "$@"'
)


@dataclass(frozen=True)
class CreatedCluster:
    name: str
    regions: tuple[str, ...]
    machines: tuple[Machine, ...]
    operator_password: str
    seconds: float


def _machine_config(
    image: str, request: plan.CreateRequest, volume_id: str, env: dict[str, str]
) -> MachineConfig:
    guest = None if request.vm_size else GuestConfig(memory_mb=DEFAULT_MEMORY_MB)
    return MachineConfig(
        image=image,
        guest=guest,
        size=request.vm_size,
        env=env,
        metadata={plan.MEMBER_METADATA: "member"},
        restart=RestartPolicy(policy="always"),
        # <db>.flycast:5432 through the edge: straight to the primary's own Postgres
        services=[
            ServiceConfig(
                protocol="tcp",
                internal_port=POSTGRES_PORT,
                ports=[ServicePort(port=PROXY_PORT)],
                checks=[PRIMARY_CHECK],
            )
        ],
        mounts=[MachineMount(volume=volume_id, path=plan.DATA_PATH, name=plan.VOLUME_NAME)],
    )


def create_cluster(
    client: FerryClient,
    request: plan.CreateRequest,
    image: str,
    *,
    say: Callable[[str], None] = lambda _line: None,
    ready_timeout: float = READY_TIMEOUT,
) -> CreatedCluster:
    """Make the cluster and wait until it has a running primary (see the module's steps).

    Validates first (``ValidationError``; ``CapacityError`` when a region has no room for
    a member: nothing made). Blocking. On any later
    failure destroys what it made and re-raises.
    """
    started = time.monotonic()
    regions = plan.validate_create(request, [r.code for r in client.regions()])
    _check_room(client, request, regions)
    credentials = plan.new_credentials()
    client.create_app(request.name)
    made: list[Machine] = []
    try:
        client.set_secrets(request.name, credentials)
        client.assign_ip(request.name)  # its Flycast address: <db>.flycast for attached apps
        for region in regions:
            volume = client.create_volume(
                request.name,
                {"name": plan.VOLUME_NAME, "region": region, "size_gb": request.volume_size_gb},
            )
            config = _machine_config(image, request, volume.id, {"PRIMARY_REGION": regions[0]})
            made.append(
                client.create_machine(request.name, config, region=region, skip_launch=True)
            )
            say(f"Member {made[-1].id} in {region} on volume {volume.id}")
        peers = [(m.id, m.private_ip) for m in made]
        env = plan.member_env(request.name, regions[0], peers, sync=request.sync, regions=regions)
        for index, machine in enumerate(made):
            member = {**env, **plan.bootstrap_env(peers, index)}
            config = machine.config.model_copy(update={"env": member})
            client.update_machine(request.name, machine.id, config)
            client.start_machine(request.name, machine.id)
        for machine in made:
            client.wait_machine(request.name, machine.id, timeout=ready_timeout)
        say("Machines started; waiting for Patroni to elect a primary")
        _wait_ready(client, request.name, len(made), started + ready_timeout)
    except BaseException:
        say(f"Creating {request.name} failed: destroying what was made")
        teardown(client, request.name)
        raise
    return CreatedCluster(
        name=request.name,
        regions=regions,
        machines=tuple(made),
        operator_password=credentials["OPERATOR_PASSWORD"],
        seconds=time.monotonic() - started,
    )


def _check_room(client: FerryClient, request: plan.CreateRequest, regions: Sequence[str]) -> None:
    """Refuse (the API's ``CapacityError``, naming the region) before anything is made
    when a member's region has no host with room for its volume and its machine."""
    guest = _machine_config("-", request, "-", {}).effective_guest
    for region in dict.fromkeys(regions):
        client.check_room(region, request.volume_size_gb, guest.cpus, guest.memory_mb)


def _wait_ready(client: FerryClient, name: str, size: int, deadline: float) -> None:
    last = "no member answered"
    while time.monotonic() < deadline:
        try:
            rows = cluster_members(client, name)
        except FerryError as exc:
            last = exc.message
        else:
            running = [r for r in rows if r.state in ("running", "streaming")]
            if any(r.role == "primary" for r in running) and len(running) == size:
                return
            last = ", ".join(f"{r.name} {r.role} {r.state}" for r in rows) or "no members yet"
        time.sleep(1.0)  # each probe is an exec round trip; once a second is plenty
    raise UnavailableError(f"database {name} was not ready in time: {last}")


def members_of(client: FerryClient, name: str) -> list[Machine]:
    """The cluster's member machines; ``NotFoundError`` when ``name`` is no Postgres app."""
    hint = "create one with `ferry postgres create --name NAME --region R`"
    try:
        listed = client.list_machines(name)
    except ApiError as exc:
        if exc.status == 404:
            raise NotFoundError(
                f"there is no app {name}: it is not a Ferry Postgres cluster", hint=hint
            ) from None
        raise
    machines = [m for m in listed if m.config.metadata.get(plan.MEMBER_METADATA)]
    if not machines:
        raise NotFoundError(
            f"{name} is not a Ferry Postgres cluster (no member machines)", hint=hint
        )
    return machines


def _exec(
    client: FerryClient, name: str, machine: Machine, argv: Sequence[str], stdin: str | None = None
) -> str:
    answer = client.exec_machine(name, machine.id, list(argv), timeout=30, stdin=stdin)
    if answer.exit_code != 0:
        detail = (answer.stderr or answer.stdout).strip().splitlines()
        raise UnavailableError(
            f"member {machine.id} answered with exit code {answer.exit_code}: "
            + (detail[-1] if detail else "no output")
        )
    return answer.stdout


def _cluster_views(client: FerryClient, name: str, *, every: bool) -> list[list[plan.MemberStatus]]:
    """Patroni's ``/cluster`` as rows, asked of the started members in turn: of the first
    that answers, or (``every``) of all that answer. ``UnavailableError`` when none does."""
    started = [m for m in members_of(client, name) if m.state is MachineState.STARTED]
    if not started:
        raise UnavailableError(f"no member of {name} is started", hint="`ferry machine list`")
    views: list[list[plan.MemberStatus]] = []
    problem: FerryError | None = None
    for machine in started:
        try:
            out = _exec(client, name, machine, ["/usr/bin/python3", "-c", _CLUSTER_PROBE])
            views.append(plan.read_cluster(json.loads(out)))
        except (FerryError, ValueError) as exc:
            problem = exc if isinstance(exc, FerryError) else UnavailableError(str(exc))
            continue
        if not every:
            break
    if not views:
        assert problem is not None
        raise UnavailableError(f"no member of {name} answered: {problem.message}")
    return views


def cluster_members(client: FerryClient, name: str) -> list[plan.MemberStatus]:
    """Patroni's view of the cluster, asked of the first started member that answers."""
    return _cluster_views(client, name, every=False)[0]


def cluster_view_of_all(client: FerryClient, name: str) -> list[plan.MemberStatus]:
    """Patroni's view of the cluster asked of every started member, the freshest kept
    (``plan.freshest_view``): what ``status`` shows. ``UnavailableError`` when none
    answers."""
    return plan.freshest_view(_cluster_views(client, name, every=True))


def find_primary(client: FerryClient, name: str) -> Machine:
    """The machine Patroni names as the running primary; ``UnavailableError`` when none."""
    rows = cluster_members(client, name)
    leader = next((r for r in rows if r.role == "primary" and r.state == "running"), None)
    if leader is None:
        raise UnavailableError(
            f"{name} has no running primary right now",
            hint=f"see `ferry postgres status {name}`",
        )
    for machine in members_of(client, name):
        if machine.id == leader.name:
            return machine
    raise UnavailableError(f"the primary {leader.name} of {name} is not one of its machines")


def psql_argv(*args: str) -> list[str]:
    """The exec argv of psql as the superuser on a member's socket, ``args`` appended."""
    return ["sh", "-c", _PSQL, "psql", *args]


def run_psql(client: FerryClient, name: str, script: str, *args: str) -> str:
    """Run a psql ``script`` (stdin) on the primary as the superuser; its stdout."""
    primary = find_primary(client, name)
    return _exec(client, name, primary, psql_argv("-q", *args), stdin=script)


def teardown(client: FerryClient, name: str, *, timeout: float = 60) -> None:
    """Destroy the app's machines, then its volumes, then the app. Best effort, bounded:
    a step that fails is left for a later ``destroy`` (and raised)."""
    try:
        machines = client.list_machines(name)
    except ApiError as exc:
        if exc.status == 404:
            return
        raise
    for machine in machines:
        client.delete_machine(name, machine.id, force=True)
    deadline = time.monotonic() + timeout
    for volume in client.list_volumes(name):
        while True:
            try:
                client.destroy_volume(name, volume.id)
                break
            except ApiError as exc:
                # Its machine is still being destroyed: the claim goes with it.
                if exc.status != 409 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    while any(v.state is not VolumeState.DESTROYED for v in client.list_volumes(name)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    client.delete_app(name, force=True)


def attached_apps(client: FerryClient, name: str) -> list[tuple[str, str, str]]:
    """``(app, user, database)`` of every attached app, read from the cluster itself."""
    out = run_psql(client, name, plan.attachments_sql(), "-tA", "-F", "|")
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return [(r[0], r[1], r[2]) for r in rows if len(r) == 3]


def destroy_cluster(client: FerryClient, name: str, *, force: bool) -> None:
    """Destroy the cluster, refused (``ConflictError``) while apps are attached unless
    ``force``; without ``force`` a cluster that cannot be asked is refused too."""
    members_of(client, name)
    if not force:
        try:
            attached = attached_apps(client, name)
        except UnavailableError as exc:
            raise ConflictError(
                f"cannot tell which apps are attached to {name}: {exc.message}",
                hint="destroy it anyway with --force",
            ) from exc
        if attached:
            apps = ", ".join(a for a, _, _ in attached)
            raise ConflictError(
                f"{name} is attached to {apps}",
                hint=f"detach them (`ferry postgres detach {name} -a APP`) or give --force",
            )
    teardown(client, name)


_SWITCHOVER = (
    "import sys, urllib.error, urllib.request\n"
    "request = urllib.request.Request("
    f"'http://[::1]:{REST_PORT}/switchover', data=sys.stdin.buffer.read(), method='POST',"
    " headers={'Content-Type': 'application/json'})\n"
    "try:\n"
    "    print(urllib.request.urlopen(request, timeout=30).read().decode())\n"
    "except urllib.error.HTTPError as exc:\n"
    "    sys.exit(exc.read().decode() or str(exc))\n"
)


def switchover(
    client: FerryClient, name: str, region: str | None = None, *, timeout: float = 60
) -> tuple[plan.MemberStatus, plan.MemberStatus]:
    """Move the primary to a healthy replica (in ``region`` if given) with Patroni's
    switchover; return ``(old, new)`` primaries once the new one is running.

    ``ValidationError`` when no replica is in ``region``; ``ConflictError`` when there
    is no replica at all; ``UnavailableError`` with Patroni's reason when it refuses
    (in synchronous mode only the synchronous replica may take over) or when no new
    primary runs within ``timeout`` seconds.
    """
    rows = cluster_members(client, name)
    leader = next((r for r in rows if r.role == "primary" and r.state == "running"), None)
    if leader is None:
        raise UnavailableError(f"{name} has no running primary to move", hint="see `status`")
    machines = {m.id: m for m in members_of(client, name)}
    healthy = [r for r in rows if r.role != "primary" and r.state in ("running", "streaming")]
    if not healthy:
        raise ConflictError(
            f"{name} has no healthy replica to fail over to",
            hint="create the cluster with --replicas",
        )
    body: dict[str, str] = {"leader": leader.name}
    if region is not None:
        there = [r for r in healthy if machines.get(r.name) and machines[r.name].region == region]
        if not there:
            where = sorted({machines[r.name].region for r in healthy if r.name in machines})
            raise ValidationError(
                f"{name} has no healthy replica in {region!r}",
                hint=f"replicas are in: {', '.join(where)}",
            )
        body["candidate"] = there[0].name
    argv = ["/usr/bin/python3", "-c", _SWITCHOVER]
    _exec(client, name, machines[leader.name], argv, stdin=json.dumps(body))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            now = cluster_members(client, name)
        except FerryError:
            now = []  # a member may not answer while roles change
        new = next(
            (
                r
                for r in now
                if r.role == "primary" and r.state == "running" and r.name != leader.name
            ),
            None,
        )
        if new is not None:
            return leader, new
        time.sleep(0.5)  # an exec round trip per probe
    raise UnavailableError(f"no new primary of {name} was running within {timeout:.0f} s")
