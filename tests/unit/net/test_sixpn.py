"""6PN addresses: Fly's layout, the organization read off any address, bad numbers refused."""

from __future__ import annotations

import ipaddress

import pytest

from ferry.errors import ValidationError
from ferry.net import sixpn


def test_machine_address_follows_flys_layout() -> None:
    address = sixpn.machine_address(network=0x33B5, host=0xA7B00A5, machine=0x2F1B4F5D)
    assert str(address) == "fdaa:0:33b5:a7b:a5:2f1b:4f5d:2"
    assert address in sixpn.org_prefix(0x33B5)
    assert address in sixpn.host_prefix(0x33B5, 0xA7B00A5)
    assert address in sixpn.SIXPN


def test_parse_gives_back_the_numbers_of_any_address_in_the_slash_112() -> None:
    address = sixpn.machine_address(7, 3, 9)
    assert sixpn.parse(address) == sixpn.SixpnAddress(7, 3, 9)
    other_in_same_112 = ipaddress.IPv6Address(int(address) + 40)
    assert sixpn.parse(str(other_in_same_112)) == sixpn.SixpnAddress(7, 3, 9)
    assert sixpn.SixpnAddress(7, 3, 9).prefix.prefixlen == 112


def test_two_organizations_never_share_a_prefix() -> None:
    a, b = sixpn.org_prefix(1), sixpn.org_prefix(2)
    assert not a.overlaps(b)
    assert sixpn.machine_address(1, 5, 5) not in b


def test_platform_addresses_are_in_network_zero() -> None:
    assert str(sixpn.DNS_ADDRESS) == "fdaa::3"
    assert sixpn.parse(sixpn.DNS_ADDRESS).network == sixpn.INFRA_NETWORK
    infra = sixpn.infra_address(4)
    assert str(infra) == "fdaa::4:0:0:1"
    assert sixpn.parse(infra) == sixpn.SixpnAddress(0, 4, 0)


@pytest.mark.parametrize(
    ("network", "host", "machine"),
    [(0, 1, 1), (1, 1, 0), (1, 1, 2**32), (2**32, 1, 1), (-1, 1, 1)],
)
def test_out_of_range_numbers_are_refused_by_name(network: int, host: int, machine: int) -> None:
    with pytest.raises(ValidationError, match=r"6PN .* number"):
        sixpn.machine_address(network, host, machine)


@pytest.mark.parametrize("text", ["10.0.0.1", "fd00::1", "not-an-address"])
def test_parse_refuses_what_is_not_6pn(text: str) -> None:
    with pytest.raises(ValidationError, match=r"6PN|IPv6"):
        sixpn.parse(text)


def test_lowest_free_fills_holes_first() -> None:
    assert sixpn.lowest_free([]) == 1
    assert sixpn.lowest_free([1, 2, 4]) == 3
    assert sixpn.lowest_free(range(1, 10)) == 10
