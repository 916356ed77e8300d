"""`--service ADDRESS:PORT/PROTO`: what machines may reach inside the protected range."""

from __future__ import annotations

import ipaddress

import pytest

from ferry.agent.isolation_keeper import parse_service
from ferry.errors import ValidationError
from ferry.net.isolation import Service


def test_services_read_ipv4_ipv6_and_default_to_tcp() -> None:
    assert parse_service("10.1.250.1:80/tcp") == Service(
        ipaddress.IPv4Address("10.1.250.1"), "tcp", 80
    )
    assert parse_service("[fd00::1]:53/udp") == Service(ipaddress.IPv6Address("fd00::1"), "udp", 53)
    assert parse_service("10.1.250.1:443").protocol == "tcp"


@pytest.mark.parametrize(
    "text", ["10.1.250.1", "10.1.250.1:0/tcp", "10.1.250.1:80/sctp", "edge:80/tcp", ":80"]
)
def test_a_malformed_service_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValidationError, match="ADDRESS:PORT/PROTO"):
        parse_service(text)
