"""Pebble's files and how the embedded cluster runs it (no process started here)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from ferry.cli.main import app as cli_app
from ferry.cluster.pebble import acme_root_pem, cluster_ca, write_pebble_files
from ferry.errors import UnavailableError


def test_pebble_gets_a_config_and_a_certificate_for_its_address(tmp_path: Path) -> None:
    files = write_pebble_files(
        tmp_path, listen=("10.9.16.1", 14000), management=("10.9.16.1", 15000),
        http_port=8080, tls_port=8443, validity_seconds=30, blocklist=("no.example",),
    )  # fmt: skip
    config = json.loads(files.config.read_text())["pebble"]
    assert config["listenAddress"] == "10.9.16.1:14000"
    assert (config["httpPort"], config["tlsPort"]) == (8080, 8443)
    assert config["certificateValidityPeriod"] == 30
    assert config["domainBlocklist"] == ["no.example"]
    assert files.key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.9.16.1"]
    assert files.directory_url == "https://10.9.16.1:14000/dir"


def test_the_cluster_ca_validates_through_the_regions_edge(tmp_path: Path) -> None:
    ca = cluster_ca(
        tmp_path, netns="fy-ams", region_address="10.9.16.1", anycast_address="10.9.250.1",
        domain="ferry.test",
    )  # fmt: skip
    assert ca.argv[-2:] == ["-dnsserver", "10.9.16.1:53"]
    assert ca.env == {
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",
    }
    assert ca.server_env["FERRY_ACME_DIRECTORY"] == "https://10.9.16.1:14000/dir"
    assert ca.server_env["FERRY_EDGE_ADDRESSES"] == "10.9.250.1"
    assert ca.server_env["FERRY_DNS_SERVER"] == "10.9.16.1:53"
    config = json.loads((tmp_path / "pebble-config.json").read_text())["pebble"]
    assert (config["httpPort"], config["tlsPort"]) == (80, 443)


def test_the_acme_root_without_a_pebble_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match="no ACME CA is set up") as raised:
        acme_root_pem(tmp_path / "pebble")
    assert "ferry cluster up" in (raised.value.hint or "")
    result = CliRunner().invoke(cli_app, ["cluster", "ca", "--acme", "--home", str(tmp_path)])
    assert result.exit_code != 0
    assert "no ACME CA is set up" in result.output


def test_the_acme_root_of_a_pebble_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_pebble_files(tmp_path, listen=("127.0.0.1", port), management=("127.0.0.1", port))
    with pytest.raises(UnavailableError, match="does not answer"):
        acme_root_pem(tmp_path, timeout=1)
