"""Which host names may get a certificate: every refusal names the problem."""

from __future__ import annotations

import pytest

from ferry.errors import ValidationError
from ferry.tls.certs_names import check_hostname


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("WWW.Example.COM.", "www.example.com"), ("*.example.com", "*.example.com"),
     ("a-b.c-d.example", "a-b.c-d.example")],
)  # fmt: skip
def test_names_are_normalized(raw: str, expected: str) -> None:
    assert check_hostname(raw, "ferry.test") == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "no host name"),
        ("https://www.example.com/", "not a host name"),
        ("www.example.com:443", "not a host name"),
        ("10.0.0.1", "IP address"),
        ("localhost", "not a fully qualified"),
        ("*.com", "not a fully qualified"),
        ("www.*.example.com", "invalid label '*'"),
        ("-bad.example.com", "invalid label '-bad'"),
        ("under_score.example.com", "invalid label"),
        ("a" * 64 + ".example.com", "invalid label"),
        ("web.ferry.test", "cluster's own domain"),
        ("*.ferry.test", "cluster's own domain"),
    ],
)
def test_bad_names_are_refused_with_the_reason(raw: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_hostname(raw, "ferry.test")
    assert says in str(caught.value)
