"""`ferry cluster ca`, the edge's certificate flags and its HTTPS settings, as a user meets them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferry.cli.main import app as cli_app
from ferry.errors import ValidationError
from ferry.proxy.daemon import EdgeSettings, edge_tls_source
from ferry.proxy.routes import RouteTable
from ferry.proxy.server import EdgeProxy
from ferry.tls.cluster_certs import prepare_cluster_tls


def test_cluster_ca_prints_the_pem_clients_trust(tmp_path: Path) -> None:
    files = prepare_cluster_tls(tmp_path, "ferry.test")
    result = CliRunner().invoke(cli_app, ["cluster", "ca", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == files.ca.read_text()
    assert "PRIVATE KEY" not in result.stdout


def test_cluster_ca_without_a_cluster_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["cluster", "ca", "--home", str(tmp_path)])
    assert result.exit_code != 0
    assert "has no CA yet" in result.output and "ferry cluster up" in result.output


def test_the_proxy_needs_both_certificate_and_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["proxy", "--region", "ams", "--api-url", "http://127.0.0.1:1", "--state-dir",
         str(tmp_path), "--listen", "127.0.0.1", "--tls-cert", str(tmp_path / "c.pem")],
        env={"FERRY_API_TOKEN": "x"},
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--tls-cert and --tls-key go together" in result.output


def _settings(tmp_path: Path, **tls: object) -> EdgeSettings:
    return EdgeSettings(
        region="ams", domain="ferry.test", listen_address="127.0.0.1", http_port=80,
        metrics_port=None, dns_port=None, rtt_ms={}, state_dir=tmp_path,
        api_url="http://127.0.0.1:1", token="t", **tls,  # type: ignore[arg-type]
    )  # fmt: skip


def test_an_edge_given_the_cluster_certificate_serves_its_names(tmp_path: Path) -> None:
    files = prepare_cluster_tls(tmp_path, "ferry.test")
    assert edge_tls_source(_settings(tmp_path)) is None  # no certificate: plain HTTP only
    source = edge_tls_source(
        _settings(tmp_path, https_port=443, tls_cert=files.edge_cert, tls_key=files.edge_key)
    )
    assert source is not None
    assert sorted(source().certificates) == ["*.ferry.test", "ferry.test"]


def test_an_https_listener_without_certificates_is_refused() -> None:
    with pytest.raises(ValidationError, match="source of certificates"):
        EdgeProxy(
            "ams", "ferry.test", RouteTable, {},
            http_listen=("127.0.0.1", 0), https_listen=("127.0.0.1", 0),
        )  # fmt: skip
