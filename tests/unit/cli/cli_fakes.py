"""An in-memory Ferry API behind ``httpx.MockTransport`` and a runner for the CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient

REGISTRY = "10.77.0.1:5000"
DIGEST = "sha256:" + "cd" * 32
NOW = "2026-11-26T10:00:00Z"


def machine_json(machine_id: str, region: str = "ams", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": machine_id,
        "name": f"m-{machine_id}",
        "app_name": "web",
        "state": "started",
        "desired_state": "started",
        "region": region,
        "instance_id": f"inst-{machine_id}",
        "private_ip": "fdaa:0:1:0:1:0:1:2",
        "host_ip": "10.77.1.2",
        "config": {"image": f"{REGISTRY}/web@sha256:" + "0" * 64, "env": {"A": "1"}},
        "host_id": f"{region}-1",
        "created_at": NOW,
        "updated_at": NOW,
    }
    data.update(extra)
    return data


class FakeApi:
    """Answers the API calls the CLI makes, from dicts the test fills in."""

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.machines: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[str]] = {}
        self.regions = ["ams", "iad", "sin"]
        self.traffic: dict[str, dict[str, Any]] = {}
        self.autoscale: dict[str, dict[str, Any]] = {}  # app -> stored policy
        self.autoscale_status: dict[str, Any] = {}
        self.follow: dict[str, dict[str, Any]] = {}  # app -> stored [postgres] policy
        self.follow_seen: dict[str, Any] = {}  # what the follow loop last saw and did
        self.placement_note: str | None = None  # set: creations answer a fallback note
        self.releases: dict[str, list[dict[str, Any]]] = {}  # app -> releases, oldest first
        self.requests: list[tuple[str, str, Any]] = []
        self._next = 0

    def add_app(self, name: str = "web") -> None:
        self.apps[name] = {
            "id": f"id-{name}",
            "name": name,
            "organization": {"name": "Personal", "slug": "personal"},
            "created_at": NOW,
        }

    def add_machine(self, machine_id: str, region: str = "ams", **extra: Any) -> None:
        self.machines[machine_id] = machine_json(machine_id, region, **extra)

    def paths(self, method: str) -> list[str]:
        return [path for m, path, _ in self.requests if m == method]

    def client(self) -> FerryClient:
        return FerryClient("http://ferry.test", "t", transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path, method = request.url.path, request.method
        self.requests.append((method, path, body))
        if path == "/v1/platform/regions":
            regions = [{"code": c, "name": c.upper()} for c in self.regions]
            return httpx.Response(200, json={"Regions": regions, "Nearest": self.regions[0]})
        if path == "/v1/platform/info":
            return httpx.Response(200, json={"version": "0.1", "registry": REGISTRY})
        if path == "/v1/apps":
            if method == "POST":
                name = body["app_name"]
                if name in self.apps:
                    return _error(409, f"app {name!r} already exists", "choose another name")
                self.add_app(name)
                return httpx.Response(201, json=self.apps[name])
            return httpx.Response(200, json={"apps": list(self.apps.values())})
        traffic = re.fullmatch(r"/v1/apps/([^/]+)/traffic", path)
        if traffic:
            return httpx.Response(200, json={"app": traffic[1], "edges": self.traffic})
        autoscale = re.fullmatch(r"/v1/apps/([^/]+)/autoscale(/status)?", path)
        if autoscale:
            return self._autoscale(method, autoscale[1], bool(autoscale[2]), body)
        follow_status = re.fullmatch(r"/v1/apps/([^/]+)/postgres/status", path)
        if follow_status and method == "GET":
            policy = self.follow.get(follow_status[1])
            answer = {"app": follow_status[1], "policy": policy, **self.follow_seen}
            return httpx.Response(200, json=answer)
        follow = re.fullmatch(r"/v1/apps/([^/]+)/postgres", path)
        if follow and method in ("PUT", "DELETE"):  # [postgres]: stored, never acted on
            if method == "PUT":
                self.follow[follow[1]] = body
                return httpx.Response(200, json=body)
            deleted = self.follow.pop(follow[1], None) is not None
            return httpx.Response(200, json={"ok": True, "deleted": deleted})
        releases = re.fullmatch(r"/v1/apps/([^/]+)/releases(?:/(\d+))?", path)
        if releases:
            version = int(releases[2]) if releases[2] else None
            return self._releases(method, releases[1], version, body)
        match = re.fullmatch(r"/v1/apps/([^/]+)(?:/machines(?:/([^/]+)(?:/(\w+))?)?)?", path)
        if not match:
            return _error(404, f"no route {path}")
        app, machine_id, verb = match.groups()
        if app not in self.apps:
            return _error(404, f"app {app!r} not found")
        if "/machines" not in path:
            if method == "DELETE":
                del self.apps[app]
                return httpx.Response(202, json={"ok": True})
            return httpx.Response(200, json=self.apps[app])
        if machine_id is None:
            if method == "POST":
                self._next += 1
                new_id = f"new{self._next}"
                self.machines[new_id] = machine_json(
                    new_id, body.get("region") or "ams", config=body["config"], state="created"
                )
                answer = dict(self.machines[new_id])
                if self.placement_note and body.get("region_fallback"):
                    note = self.placement_note
                    answer["events"] = [
                        {
                            "id": "e1",
                            "type": "launch",
                            "status": "created",
                            "source": "user",
                            "timestamp": 0,
                            "request": {"placement_note": note},
                        }
                    ]
                return httpx.Response(200, json=answer)
            return httpx.Response(200, json=list(self.machines.values()))
        if machine_id not in self.machines:
            return _error(404, f"machine {machine_id} not found in app {app}")
        machine = self.machines[machine_id]
        if verb == "logs":
            return httpx.Response(200, json={"lines": self.logs.get(machine_id, [])})
        if verb == "wait":
            machine["state"] = "started"
            return httpx.Response(200, json={"ok": True, "state": "started"})
        if verb == "lease" and method == "POST":  # a deploy leases what it changes
            lease = {"nonce": f"nonce-{machine_id}", "expires_at": 0}
            return httpx.Response(200, json={"status": "success", "data": lease})
        if verb is not None:
            return httpx.Response(200, json={"ok": True, "previous_state": "stopped"})
        if method == "DELETE":
            del self.machines[machine_id]
            return httpx.Response(200, json={"ok": True})
        if method == "POST":
            machine.update(config=body["config"], instance_id=f"{machine['instance_id']}+")
        return httpx.Response(200, json=machine)

    def _autoscale(self, method: str, app: str, status: bool, body: Any) -> httpx.Response:
        if app not in self.apps:
            return _error(404, f"app {app!r} not found")
        if status:
            return httpx.Response(200, json={"app": app, **self.autoscale_status})
        if method == "PUT":
            self.autoscale[app] = body
            return httpx.Response(200, json=body)
        if method == "DELETE":
            deleted = self.autoscale.pop(app, None) is not None
            return httpx.Response(200, json={"ok": True, "deleted": deleted})
        if app not in self.autoscale:
            return _error(404, f"app {app!r} has no autoscale policy")
        return httpx.Response(200, json=self.autoscale[app])

    def _releases(self, method: str, app: str, version: int | None, body: Any) -> httpx.Response:
        if app not in self.apps:
            return _error(404, f"app {app!r} not found")
        rows = self.releases.setdefault(app, [])
        if version is None and method == "POST":
            row = {"strategy": "rolling", "description": "deploy", **body}
            row.update(app_name=app, version=len(rows) + 1, status="running", user="admin")
            row.update(created_at=NOW, updated_at=NOW)
            rows.append(row)
            return httpx.Response(201, json=row)
        if version is None:
            return httpx.Response(200, json=rows[::-1])
        if not 1 <= version <= len(rows):
            return _error(404, f"app {app!r} has no release v{version}")
        if method == "PATCH":
            rows[version - 1]["status"] = body["status"]
        return httpx.Response(200, json=rows[version - 1])


def _error(status: int, message: str, hint: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": message, "hint": hint})


class RecordingTools:
    """Stands in for buildah/skopeo: records command lines and writes the digest file."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, args: Sequence[str]) -> str:
        self.commands.append(list(args))
        if "--digestfile" in args:
            Path(args[args.index("--digestfile") + 1]).write_text(DIGEST)
        if args[:2] == ["skopeo", "inspect"]:
            return json.dumps({"Digest": DIGEST})
        return ""


def invoke(
    api: FakeApi, args: list[str], tools: RecordingTools | None = None, input: str | None = None
) -> Result:
    state = CliState(client_factory=api.client, image_tools=tools or RecordingTools())
    return CliRunner().invoke(cli_app, args, obj=state, env={"COLUMNS": "200"}, input=input)
