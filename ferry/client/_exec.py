"""Exec calls: a user runs a command in a machine; an agent takes and answers exec orders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from ferry.client._http import HttpCore
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model.exec import DEFAULT_EXEC_TIMEOUT, ExecOrder, ExecOutcome, ExecResponse

#: Extra seconds the HTTP request may take beyond the command's timeout: the server waits
#: its own slack (``ferry.server.routes.exec.ANSWER_SLACK``) for the agent first.
EXEC_HTTP_SLACK = 15.0
#: The server caps an agent's exec long poll at this many seconds.
MAX_TAKE_SECONDS = 60


class ExecMethods(HttpCore):
    """Exec endpoints. Every method blocks; errors as in ``HttpCore``."""

    def exec_machine(
        self,
        app: str,
        machine_id: str,
        command: Sequence[str],
        *,
        timeout: int | None = None,
        stdin: str | None = None,
    ) -> ExecResponse:
        """Run ``command`` (an argv, no shell) in the started machine; its output and exit code.

        Blocks until the command ends (at most ``timeout`` seconds, default 30).
        ``ApiError`` 409 when the machine is not started, 408 when the command
        ran past ``timeout`` (it was killed), 504 when its host's agent did not answer.
        """
        body: dict[str, Any] = {"command": list(command)}
        if timeout is not None:
            body["timeout"] = timeout
        if stdin is not None:
            body["stdin"] = stdin
        seconds = (timeout or DEFAULT_EXEC_TIMEOUT) + EXEC_HTTP_SLACK
        path = f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/exec"
        return parse_model(ExecResponse, self._request("POST", path, body=body, timeout=seconds))

    def take_exec_requests(self, host_id: str, timeout: float = 20) -> list[ExecOrder]:
        """The exec orders for this host's machines (an agent's long poll, capped at 60 s)."""
        seconds = max(0, min(MAX_TAKE_SECONDS, round(timeout)))
        data = self._request(
            "GET",
            f"/v1/hosts/{_seg(host_id)}/exec-requests",
            params={"timeout": seconds},
            timeout=seconds + EXEC_HTTP_SLACK,
        )
        if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
            raise UnavailableError("the Ferry API sent exec requests without a list")
        return parse_models(ExecOrder, data["requests"])

    def answer_exec_request(self, host_id: str, request_id: str, outcome: ExecOutcome) -> None:
        """Post the outcome of one order; ``ApiError`` 404 once its caller stopped waiting."""
        path = f"/v1/hosts/{_seg(host_id)}/exec-requests/{_seg(request_id)}"
        self._request("POST", path, body=outcome.model_dump(mode="json"))

    def console_address(
        self, app: str, machine_id: str, *, cols: int, rows: int, command: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """The WebSocket URL of an interactive console in the machine and the headers that
        authenticate it (this client's token), for ``websockets``' ``connect``."""
        query = urlencode({"cols": cols, "rows": rows, **({"cmd": command} if command else {})})
        path = f"/v1/apps/{_seg(app)}/machines/{_seg(machine_id)}/console?{query}"
        base = self.base_url
        scheme, _, rest = base.partition("://")
        url = ("wss" if scheme == "https" else "ws") + "://" + rest + path
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        return url, headers
