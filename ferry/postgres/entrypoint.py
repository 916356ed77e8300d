"""The Postgres image's entrypoint: runs Postgres under Patroni (and an etcd member).

Runs inside the image as root with the image's own ``/usr/bin/python3``, so it
imports the standard library and ``patroni_config`` only (the image holds both
files under ``/usr/local/lib/ferry-postgres``). It:

1. reads the machine's environment (``patroni_config.read_settings``); a missing
   or malformed variable ends it with exit code 2 and one line naming it;
2. makes the data directories, owned by ``postgres`` (and ``etcd``), mode 0700;
3. writes Patroni's configuration (no passwords in it) to ``CONFIG_PATH``;
4. starts etcd as user ``etcd`` when the machine runs its own member, then
   Patroni as user ``postgres`` (Postgres refuses to run as root); in between,
   a member whose machine died while it was the primary (the leader key in etcd
   still names it: a clean stop releases it) hands the key over
   (``release_leader_key_if_mine``), so a replica is promoted at once rather than
   after the key's ttl, and this member comes back as a replica (pg_rewind);
   A member given ``PG_BOOTSTRAP_LEADER`` (a replica of a new cluster) that has
   no data yet waits (at most ``BOOTSTRAP_WAIT_SECONDS``) until that member's
   Patroni reports itself the running leader before starting Patroni, so the
   primary's region bootstraps the cluster and the replicas clone from it;
5. starts the forwarder of port 5432 to the current primary (``primary_proxy``)
   as user ``postgres``, and starts it again if it ever exits;
6. forwards SIGTERM/SIGINT/SIGHUP to Patroni, and exits with Patroni's exit
   code once it is gone, stopping etcd and the forwarder after it. If etcd dies
   first, Patroni is stopped too and the exit code is 1, so the machine's
   restart policy acts.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from types import FrameType
from typing import Any

from ferry.postgres.patroni_config import (
    NAMESPACE,
    PostgresSettings,
    SettingsError,
    etcd_argv,
    patroni_config,
    patroni_env,
    read_settings,
)

CONFIG_PATH = "/etc/patroni/ferry.yml"
SOCKET_DIR = "/var/run/postgresql"
STOP_GRACE_SECONDS = 30.0
BOOTSTRAP_WAIT_SECONDS = 180.0
#: How long a restarted member waits for its etcd to answer before leaving the leader
#: key to its ttl (a member cut off from the others' quorum gets no answer at all).
LEADER_KEY_WAIT_SECONDS = 10.0
LOCAL_ETCD = "http://127.0.0.1:2379"
#: After handing the key over, how much longer than the ttl to wait for a new leader.
HANDOVER_EXTRA_SECONDS = 5.0
FORWARDER_ARGV = ["/usr/bin/python3", "-m", "ferry.postgres.primary_proxy"]
#: Patroni, started through this module so ``run_patroni`` can guard its leader key.
PATRONI_ARGV = ["/usr/bin/python3", "-m", "ferry.postgres.entrypoint", "--patroni"]
FORWARDER_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONPATH": "/usr/local/lib/ferry-postgres",
}


def say(line: str) -> None:
    print(f"ferry-postgres: {line}", file=sys.stderr, flush=True)


def owned_dir(path: str, user: pwd.struct_passwd, mode: int) -> None:
    """Make ``path`` (and parents) and give it to ``user`` with ``mode``. Idempotent."""
    os.makedirs(path, exist_ok=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(path, mode)


def disk_size_mb(path: str) -> int:
    """Size in MB of the filesystem holding ``path`` (the volume); 0 if it cannot be read."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return 0
    return stat.f_blocks * stat.f_frsize // (1 << 20)


def write_config(settings: PostgresSettings, owner: pwd.struct_passwd) -> None:
    os.makedirs(os.path.dirname(CONFIG_PATH), exist_ok=True)
    fd = os.open(CONFIG_PATH, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(patroni_config(settings), out, indent=2)
    os.chown(CONFIG_PATH, owner.pw_uid, owner.pw_gid)


def spawn(argv: list[str], user: pwd.struct_passwd, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` as ``user`` (its own group, no supplementary groups but its own)."""
    return subprocess.Popen(
        argv,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=os.getgrouplist(user.pw_name, user.pw_gid),
        env=env,
        cwd=user.pw_dir if os.path.isdir(user.pw_dir) else "/",
    )


def stop(child: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; return its exit code."""
    if child.poll() is None:
        child.terminate()
        try:
            return child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
    return child.wait()


def wait_for_bootstrap_leader(url: str, data_dir: str) -> None:
    """Block until the member at ``url`` (Patroni's REST) is the running leader, unless
    this member already has data (a restart: Patroni decides) or the wait runs out."""
    if not url or os.path.exists(os.path.join(data_dir, "PG_VERSION")):
        return
    say(f"waiting for {url} to bootstrap the cluster")
    deadline = time.monotonic() + BOOTSTRAP_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/patroni", timeout=2) as answer:
                status = json.loads(answer.read())
            if status.get("role") in ("master", "primary") and status.get("state") == "running":
                return
        except (OSError, ValueError):
            pass  # Patroni not answering yet: ask again until the deadline
        time.sleep(1.0)  # the leader's bootstrap takes seconds; once a second is plenty
    say(f"{url} did not become leader in {BOOTSTRAP_WAIT_SECONDS:.0f} s: starting anyway")


def _etcd_call(endpoint: str, path: str, body: dict[str, object]) -> dict[str, Any]:
    """One call of etcd's v3 JSON gateway (keys and values base64, as etcd wants them)."""
    request = urllib.request.Request(
        f"{endpoint}/v3/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=2) as answer:
        loaded = json.loads(answer.read())
    return loaded if isinstance(loaded, dict) else {}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def release_txn(key: str, name: str) -> dict[str, object]:
    """etcd's transaction that deletes ``key`` only while its value is ``name``. Pure."""
    return {
        "compare": [{"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(name)}],
        "success": [{"request_delete_range": {"key": _b64(key)}}],
    }


def _value(endpoint: str, key: str) -> str | None:
    # A linearizable read: answered only by a member in the quorum, so the value is
    # the cluster's, not this member's stale copy from before its machine died.
    found = _etcd_call(endpoint, "kv/range", {"key": _b64(key)})
    values = [base64.b64decode(kv.get("value", "")).decode() for kv in found.get("kvs", [])]
    return values[0] if values else None


def prefers_failover(config_json: str | None) -> bool:
    """Whether the cluster's dynamic configuration (Patroni's ``config`` key) asks a
    crashed primary to fail over rather than restart: ``primary_start_timeout`` 0,
    Ferry's default (``patroni_config``). Pure; no key yet counts as Ferry's default."""
    if config_json is None:
        return True
    try:
        config = json.loads(config_json)
    except ValueError:
        return True
    if not isinstance(config, dict):
        return True
    return config.get("primary_start_timeout", config.get("master_start_timeout", 300)) == 0


def _await_new_leader(endpoint: str, key: str, settings: PostgresSettings) -> None:
    """Keep this member's Patroni out of the election it just opened until a replica has
    won it: its data is the most advanced (it was the primary), so Patroni would
    otherwise often elect it again, on a new timeline, while the replicas' Patroni are
    still asking each other. After ``settings.ttl`` + ``HANDOVER_EXTRA_SECONDS``
    without a new leader (no replica can take over) it starts anyway and Patroni
    decides, which may make it the primary again."""
    deadline = time.monotonic() + settings.ttl + HANDOVER_EXTRA_SECONDS
    while time.monotonic() < deadline:
        try:
            holder = _value(endpoint, key)
        except (OSError, ValueError):
            holder = None  # etcd busy for a moment: ask again
        if holder and holder != settings.name:
            say(f"{holder} is the new primary: starting patroni to follow it")
            return
        time.sleep(0.2)  # the replicas' election takes a second or two
    say("no replica took over: starting patroni, which decides")


def release_leader_key_if_mine(settings: PostgresSettings) -> bool:
    """Before Patroni starts: if the leader key still names this member, delete it (only
    while it does: one etcd transaction) and say so; True if it did.

    A clean stop of a primary's Patroni deletes its key, so a key naming this member
    now means the machine died while it was the primary (kill -9, a crash) and was
    started again by its restart policy. Left alone, the key keeps the replicas
    waiting for its ttl, and this Patroni would start Postgres as the primary again;
    Patroni's ``primary_start_timeout: 0`` is meant to fail over instead, but the
    Patroni in the image (3.0) then races the replicas for the key it has just
    released, and often takes it back. Deleting it first, with Patroni not running,
    lets Patroni's own election promote the healthiest replica straight away; this
    member waits until one has won (``_await_new_leader``), then starts Patroni,
    which finds the new leader and rejoins as a replica (pg_rewind). Postgres is not
    running here yet, so there is never a moment with two primaries.

    Done only while the cluster's configuration says ``primary_start_timeout`` 0 (an
    operator who sets another value gets Patroni's restart-in-place back). If etcd
    does not answer within ``LEADER_KEY_WAIT_SECONDS`` (no quorum), nothing is done:
    the key expires after its ttl and Patroni decides.
    """
    key = f"{NAMESPACE}{settings.scope}/leader"
    endpoint = LOCAL_ETCD if settings.etcd_local else settings.etcd_endpoints[0]
    deadline = time.monotonic() + LEADER_KEY_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if _value(endpoint, key) != settings.name:
                return False
            if not prefers_failover(_value(endpoint, f"{NAMESPACE}{settings.scope}/config")):
                say("this member held the leader key: primary_start_timeout > 0, so it keeps it")
                return False
            done = _etcd_call(endpoint, "kv/txn", release_txn(key, settings.name))
            if not done.get("succeeded"):
                return False
            say("this member held the leader key when its machine died: handed it over")
            _await_new_leader(endpoint, key, settings)
            return True
        except (OSError, ValueError):
            time.sleep(0.2)  # etcd still joining its peers: ask again until the deadline
    say(f"etcd did not answer in {LEADER_KEY_WAIT_SECONDS:.0f} s: Patroni decides on the key")
    return False


def _guarded_update_leader(self: Any) -> bool:
    """Patroni 3.0's ``Etcd3._update_leader``, but the leader key is re-attached to a new
    lease only while it is unchanged since this member last saw it as its own.

    The original re-puts the key unconditionally whenever its lease had expired. A
    primary frozen for longer than ``ttl`` (a hung host) wakes up with its cached view
    still naming itself the leader, so it overwrote the key of the replica promoted
    meanwhile, which then demoted itself: the frozen one was primary again, and what
    the promoted one had acknowledged would be rewound away (seen in the e2e test). With
    the compare (the key's mod_revision as last seen), such a put fails, Patroni
    reports that it lost the lock and demotes this member instead, as Patroni 3.1+ does.
    """
    etcd3 = importlib.import_module("patroni.dcs.etcd3")
    retry = self._retry.copy()

    def _retry(*args: Any, **kwargs: Any) -> Any:
        kwargs["retry"] = retry
        return retry(*args, **kwargs)

    self._run_and_handle_exceptions(self._do_refresh_lease, True, retry=_retry)
    if not self._lease:
        return False
    cluster = self.cluster
    leader = cluster.leader if cluster is not None else None
    if leader is None or getattr(leader, "session", None) != self._lease:
        retry.deadline = retry.stoptime - time.time()
        if retry.deadline < 1:
            raise etcd3.Etcd3Error("update_leader timeout")
        if leader is None or leader.name != self._name:
            return False  # the key is gone or someone else's: never take it back here
        try:
            updated = self._run_and_handle_exceptions(
                self._client.put,
                self.leader_path,
                self._name,
                self._lease,
                mod_revision=leader.index,
                retry=_retry,
            )
        except etcd3.ReturnFalseException:
            updated = False
        if not updated:
            return False
    return True


def run_patroni(argv: list[str]) -> int:
    """Patroni's own ``main`` with ``_guarded_update_leader`` in place (as user postgres)."""
    etcd3 = importlib.import_module("patroni.dcs.etcd3")
    etcd3.Etcd3._update_leader = _guarded_update_leader
    sys.argv = ["patroni", *argv]
    importlib.import_module("patroni.__main__").main()
    return 0


def supervise(
    patroni: subprocess.Popen[bytes],
    etcd: subprocess.Popen[bytes] | None,
    forwarder: Callable[[], subprocess.Popen[bytes]],
) -> int:
    """Wait for Patroni (forwarding signals to it), keeping the 5432 forwarder running
    (``forwarder`` starts one); return the machine's exit code."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        if patroni.poll() is None:
            patroni.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    proxy = forwarder()
    while True:
        code = patroni.poll()
        if code is not None:
            say(f"patroni exited with code {code}")
            stop(proxy, STOP_GRACE_SECONDS)
            if etcd is not None:
                stop(etcd, STOP_GRACE_SECONDS)
            return code
        if etcd is not None and etcd.poll() is not None:
            say(f"etcd exited with code {etcd.returncode}: stopping patroni")
            stop(proxy, STOP_GRACE_SECONDS)
            stop(patroni, STOP_GRACE_SECONDS)
            return 1
        if proxy.poll() is not None:
            say(f"the 5432 forwarder exited with code {proxy.returncode}: starting it again")
            time.sleep(1.0)  # not in a tight loop if it cannot start at all
            proxy = forwarder()
        # Three children to watch and signals to forward: a short poll keeps it simple.
        time.sleep(0.2)


def main() -> int:
    try:
        settings = read_settings(os.environ)
        postgres = pwd.getpwnam("postgres")
        etcd_user = pwd.getpwnam("etcd")
    except SettingsError as exc:
        say(str(exc))
        return 2
    except KeyError as exc:
        say(f"this image has no user {exc}: it was not built by ferry postgres image")
        return 2
    # The parent (a volume's mount point, later) stays root's; Postgres owns its own dir.
    os.makedirs(os.path.dirname(settings.data_dir.rstrip("/")) or "/", exist_ok=True)
    owned_dir(settings.data_dir, postgres, 0o700)
    owned_dir(SOCKET_DIR, postgres, 0o2775)
    if not settings.disk_mb:  # measured at every start: it follows `ferry volumes extend`
        settings = dataclasses.replace(settings, disk_mb=disk_size_mb(settings.data_dir))
    write_config(settings, postgres)
    etcd: subprocess.Popen[bytes] | None = None
    if settings.etcd_local:
        owned_dir(settings.etcd_data_dir, etcd_user, 0o700)
        say(f"starting etcd member {settings.name} on {settings.private_ip}")
        etcd = spawn(etcd_argv(settings), etcd_user, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    wait_for_bootstrap_leader(os.environ.get("PG_BOOTSTRAP_LEADER", ""), settings.data_dir)
    release_leader_key_if_mine(settings)
    say(f"starting patroni: scope {settings.scope}, member {settings.name}")
    patroni = spawn([*PATRONI_ARGV, CONFIG_PATH], postgres, patroni_env(settings, os.environ))
    return supervise(patroni, etcd, lambda: spawn(FORWARDER_ARGV, postgres, FORWARDER_ENV))


if __name__ == "__main__":
    sys.exit(run_patroni(sys.argv[2:]) if sys.argv[1:2] == ["--patroni"] else main())
