"""The Postgres image's entrypoint: runs Postgres under Patroni (and an etcd member).

Runs inside the image as root with the image's own ``/usr/bin/python3``, so it
imports the standard library and ``patroni_config`` only (the image holds both
files under ``/usr/local/lib/ferry-postgres``). It:

1. reads the machine's environment (``patroni_config.read_settings``); a missing
   or malformed variable ends it with exit code 2 and one line naming it;
2. makes the data directories, owned by ``postgres`` (and ``etcd``), mode 0700;
3. writes Patroni's configuration (no passwords in it) to ``CONFIG_PATH``;
4. starts etcd as user ``etcd`` when the machine runs its own member, then
   Patroni as user ``postgres`` (Postgres refuses to run as root);
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

from ferry.postgres.patroni_config import (
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
FORWARDER_ARGV = ["/usr/bin/python3", "-m", "ferry.postgres.primary_proxy"]
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
    write_config(settings, postgres)
    etcd: subprocess.Popen[bytes] | None = None
    if settings.etcd_local:
        owned_dir(settings.etcd_data_dir, etcd_user, 0o700)
        say(f"starting etcd member {settings.name} on {settings.private_ip}")
        etcd = spawn(etcd_argv(settings), etcd_user, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    wait_for_bootstrap_leader(os.environ.get("PG_BOOTSTRAP_LEADER", ""), settings.data_dir)
    say(f"starting patroni: scope {settings.scope}, member {settings.name}")
    patroni = spawn(["/usr/bin/patroni", CONFIG_PATH], postgres, patroni_env(settings, os.environ))
    return supervise(patroni, etcd, lambda: spawn(FORWARDER_ARGV, postgres, FORWARDER_ENV))


if __name__ == "__main__":
    sys.exit(main())
