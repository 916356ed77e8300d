"""The request a health check sends (pure part of ``ferry.net.probe``)."""

from __future__ import annotations

from ferry.model import CheckConfig
from ferry.net.probe import request_head


def test_the_checks_method_path_and_headers_are_sent_and_the_connection_closes() -> None:
    check = CheckConfig(method="POST", path="/up", headers={"X-Probe": "1", "Connection": "keep"})
    head = request_head("10.0.0.2", 8080, check).decode()
    assert head.startswith("POST /up HTTP/1.1\r\nHost: 10.0.0.2:8080\r\n")
    assert "X-Probe: 1\r\n" in head
    assert head.endswith("Connection: close\r\n\r\n") and "keep" not in head


def test_host_comes_from_the_checks_header_or_tls_server_name() -> None:
    own = request_head("10.0.0.2", 80, CheckConfig(headers={"host": "app.example"})).decode()
    assert "host: app.example\r\n" in own and "Host: 10.0.0.2" not in own
    named = request_head("10.0.0.2", 443, CheckConfig(tls_server_name="app.internal")).decode()
    assert "Host: app.internal:443\r\n" in named
    assert "Host: [fdaa::2]:80\r\n" in request_head("fdaa::2", 80, CheckConfig()).decode()
