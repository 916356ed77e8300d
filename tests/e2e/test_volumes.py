"""Volumes as a user meets them: `ferry deploy` with [[mounts]], data through a redeploy,
refusals, extend, snapshot and a fork to another region — in a cluster of its own.

The app is the demo with one more CGI script that appends its query to a file
on the volume and prints the file, so every check is an HTTP answer through
the edge, as a user would see it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.cluster.ephemeral import copy_demo_app, ephemeral_cluster, run_cli
from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import cluster_pid, until
from tests.e2e.conftest import ferry_ok as ferry

pytestmark = pytest.mark.e2e

NOTE_CGI = """#!/bin/busybox sh
# Appends the query to /data/notes (the volume) and answers with the whole file.
[ -n "$QUERY_STRING" ] && echo "$QUERY_STRING" >> /data/notes
echo "Content-Type: text/plain"
echo ""
cat /data/notes
"""
MOUNTS = '\n[[mounts]]\n  source = "notes"\n  destination = "/data"\n  initial_size = "1gb"\n'


@pytest.fixture(scope="module", autouse=True)
def apps_of_the_module_are_deleted() -> Iterator[None]:
    """This module's cluster is its own and purged at the end: the shared one is not used."""
    yield


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSettings]:
    with ephemeral_cluster(("ams", "iad"), octet=187) as settings:
        home = settings.home
        yield settings
    deadline = time.monotonic() + 10  # the kernel frees autoclear loop devices a moment later
    while True:
        devices = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        if str(home) not in devices or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert str(home) not in devices, f"loop devices left behind: {devices}"


def ferry_json(cluster: ClusterSettings, *args: str) -> Any:
    return json.loads(ferry(cluster, *args, "--json").stdout)


def notes(cluster: ClusterSettings, query: str = "") -> str:
    url = "http://notes.ferry.test/cgi-bin/note.cgi" + (f"?{query}" if query else "")
    done = run_cli(cluster, "region", "exec", "ams", "--", "curl", "-sS", "-m", "5", url)
    return done.stdout if done.returncode == 0 else ""


def test_a_deployed_apps_volume_keeps_its_data_and_forks_to_another_region(
    cluster: ClusterSettings, tmp_path: Path
) -> None:
    app_dir = copy_demo_app(tmp_path)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "notes"')
    (app_dir / "fly.toml").write_text(toml + MOUNTS)
    script = app_dir / "www" / "cgi-bin" / "note.cgi"
    script.write_text(NOTE_CGI)
    script.chmod(0o755)

    ferry(cluster, "deploy", cwd=app_dir)
    (volume,) = ferry_json(cluster, "volumes", "list", "-a", "notes")
    (machine,) = ferry_json(cluster, "machine", "list", "-a", "notes")
    assert (volume["name"], volume["region"], volume["size_gb"]) == ("notes", "ams", 1)
    assert volume["attached_machine_id"] == machine["id"]
    assert until("the first note", lambda: "first" in notes(cluster, "first"))

    # A redeploy replaces the machine's instance: the note is still there.
    (app_dir / "fly.toml").write_text(toml.replace("hello from ferry", "v2") + MOUNTS)
    ferry(cluster, "deploy", cwd=app_dir)
    after = until("the app after the redeploy", lambda: notes(cluster, "second"))
    assert after.split() == ["first", "second"]
    assert [v["id"] for v in ferry_json(cluster, "volumes", "list", "-a", "notes")] == [
        volume["id"]
    ]

    # The host's agent is killed; its successor finds the volume as it was (no new
    # filesystem), and the machine restarted by it reads the notes.
    host = machine["host_id"]
    killed = cluster_pid(cluster, "agent", "--host-id", host)
    assert killed is not None
    log = cluster.log_dir / f"agent-{host}.log"
    seen = log.stat().st_size
    os.kill(killed, signal.SIGKILL)
    until(
        "a new agent",
        lambda: cluster_pid(cluster, "agent", "--host-id", host) not in (None, killed),
    )
    ferry(cluster, "machine", "restart", machine["id"], "-a", "notes")
    again = until("the app after the agent restart", lambda: notes(cluster, "third"))
    assert again.split() == ["first", "second", "third"]
    made_before = log.read_bytes()[:seen]
    assert b"volume make" in made_before and b"volume make" not in log.read_bytes()[seen:]

    refused = run_cli(cluster, "volumes", "destroy", volume["id"], "-a", "notes", "--yes")
    assert refused.returncode == 1 and "in use by machine" in refused.stderr

    extended = ferry(cluster, "volumes", "extend", volume["id"], "-s", "2", "-a", "notes")
    assert "extended to 2 GB" in extended.stdout

    fork = ferry_json(cluster, "volumes", "fork", volume["id"], "-r", "iad", "-a", "notes")
    assert (fork["region"], fork["state"]) == ("iad", "hydrating")

    def fork_created() -> Any:
        shown = ferry_json(cluster, "volumes", "show", fork["id"], "-a", "notes")
        return shown if shown["state"] == "created" else None

    made = until("the fork in iad", fork_created)
    assert made["bytes_used"] > 0 and made["host_id"].startswith("iad")
    snaps = ferry_json(cluster, "volumes", "snapshots", "list", volume["id"], "-a", "notes")
    assert [s["status"] for s in snaps] == ["created"]  # the fork's consistent copy
