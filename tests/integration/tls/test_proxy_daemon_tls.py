"""`ferry proxy` follows the TLS feed: it keeps the snapshot in its state dir (0600),
answers HTTP-01 on its port and the names' DNS on both of its addresses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import httpx

from ferry.model.access import TokenKind

from ...server_process import ServerProcess
from ..images import free_loopback_port
from .acme_world import free_udp_port, wait_for


def test_the_proxy_daemon_keeps_and_serves_its_tls_snapshot(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home")
    server.start()
    proxy: subprocess.Popen[bytes] | None = None
    try:
        admin = server.client()
        admin.create_app("web")
        admin.add_certificate("web", "www.example.test")  # no CA here: stays pending
        token = admin.create_token(TokenKind.EDGE, name="edge-ams", region="ams").token
        http_port, dns_port = free_loopback_port(), free_udp_port()
        state = tmp_path / "edge"
        proxy = subprocess.Popen(
            [
                sys.executable, "-m", "ferry", "proxy", "--region", "ams",
                "--api-url", server.url, "--state-dir", str(state), "--listen", "127.0.0.1",
                "--http-port", str(http_port), "--dns-port", str(dns_port),
                "--metrics-port", "0", f"--backhaul-listen=127.0.0.2:{free_loopback_port()}",
            ],
            env={**os.environ, "FERRY_API_TOKEN": token},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        snapshot = state / "tls.json"
        wait_for("the proxy saved its TLS snapshot", snapshot.exists, 20)
        assert snapshot.stat().st_mode & 0o777 == 0o600
        for address in ("127.0.0.1", "127.0.0.2"):  # the edge address and the region's
            query = dns.message.make_query("www.example.test", "A")
            answer = dns.query.udp(query, address, port=dns_port, timeout=3)
            assert [r.to_text() for r in answer.answer[0]] == ["127.0.0.1"]
        unknown = httpx.get(
            f"http://127.0.0.1:{http_port}/.well-known/acme-challenge/none",
            headers={"Host": "www.example.test"},
        )
        assert unknown.status_code == 404  # no such token, and no machine of web yet
    finally:
        if proxy is not None and proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=15)
        server.kill_9()
