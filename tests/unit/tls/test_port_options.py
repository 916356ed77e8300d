"""Handlers, tls_options, http_options: what the edge does is accepted, the rest refused."""

from __future__ import annotations

import pytest

from ferry.config import parse_app_config
from ferry.errors import ConfigError
from ferry.model.machine_tls import handlers_problem, http_options_problem, tls_options_problem
from ferry.proxy.headers import EdgeHeaders, https_redirect


@pytest.mark.parametrize(
    ("handlers", "port"),
    [([], 5000), (["http"], 80), (["tls", "http"], 443), (["http", "tls"], 443), (["tls"], 5432)],
)
def test_handlers_the_edge_implements(handlers: list[str], port: int) -> None:
    assert handlers_problem(handlers, port) is None


@pytest.mark.parametrize(
    ("handlers", "port", "named"),
    [
        (["tls", "http"], 8443, "port 443 only"),
        (["pg_tls"], 5432, '"pg_tls"'),
        (["proxy_proto"], 80, '"proxy_proto"'),
        (["h3"], 443, "'h3' is unknown"),
        (["http", "http"], 80, "repeat"),
    ],
)
def test_handlers_it_does_not_are_named(handlers: list[str], port: int, named: str) -> None:
    problem = handlers_problem(handlers, port)
    assert problem is not None and named in problem


def test_tls_options_that_ask_for_what_the_edge_does_are_accepted() -> None:
    assert tls_options_problem(None) is None
    options = {"alpn": ["http/1.1", "h2"], "versions": ["TLSv1.3", "TLSv1.2"]}
    assert tls_options_problem({**options, "default_self_signed": False}) is None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"alpn": ["h2"]}, 'tls_options.alpn = ["h2"]'),
        ({"versions": ["TLSv1.3"]}, 'tls_options.versions = ["TLSv1.3"]'),
        ({"default_self_signed": True}, "default_self_signed = true"),
        ({"ciphers": ["x"]}, "tls_options.ciphers is unknown"),
        ({"alpn": "h2"}, "must be a list"),
    ],
)
def test_tls_options_it_cannot_honour_are_named(options: dict[str, object], named: str) -> None:
    problem = tls_options_problem(options)
    assert problem is not None and named in problem


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"compress": True}, "http_options.compress = true"),
        ({"h2_backend": True}, "http_options.h2_backend = true"),
        ({"idle_timeout": 600}, "http_options.idle_timeout = 600"),
        ({"response": {"headers": {"X-A": "1"}}}, "http_options.response.headers"),
        ({"response": {"pristine": True}}, "response.pristine = true"),
        ({"gzip": True}, "http_options.gzip is unknown"),
    ],
)
def test_http_options_it_cannot_honour_are_named(options: dict[str, object], named: str) -> None:
    problem = http_options_problem(options)
    assert problem is not None and named in problem


def test_http_options_defaults_are_accepted() -> None:
    assert http_options_problem({"compress": False, "h2_backend": False}) is None
    assert http_options_problem({"response": {"pristine": False, "headers": {}}}) is None


def test_http_service_with_force_https_and_options_becomes_two_ports() -> None:
    config = parse_app_config(
        "[http_service]\nforce_https = true\n"
        '[http_service.tls_options]\nalpn = ["h2", "http/1.1"]\n',
        filename="fly.toml",
    )
    ports = config.services[0].value.ports
    assert [(p.port, p.handlers, p.force_https) for p in ports] == [
        (80, ["http"], True),
        (443, ["tls", "http"], False),
    ]
    assert ports[1].tls_options == {"alpn": ["h2", "http/1.1"]}


def test_a_refused_option_names_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_app_config(
            '[[services]]\ninternal_port = 1\n[[services.ports]]\nport = 443\nhandlers = ["tls"]\n'
            "[services.ports.http_options]\ncompress = true\n",
            filename="fly.toml",
        )
    assert "fly.toml:6: [[services.ports]] http_options.compress = true" in str(caught.value)


@pytest.mark.parametrize(
    ("method", "host", "url", "port", "expected"),
    [
        (b"GET", b"web.ferry.test", b"/a?b=1", 443, (301, b"https://web.ferry.test/a?b=1")),
        (b"HEAD", b"web.ferry.test:80", b"/", 443, (301, b"https://web.ferry.test/")),
        (b"POST", b"web.ferry.test", b"/form", 8443, (308, b"https://web.ferry.test:8443/form")),
        (b"GET", b"[::1]", b"/", 443, (301, b"https://[::1]/")),
        (
            b"GET",
            b"web.ferry.test",
            b"http://web.ferry.test/x",
            443,
            (301, b"https://web.ferry.test/x"),
        ),
    ],
)
def test_https_redirect(
    method: bytes, host: bytes, url: bytes, port: int, expected: tuple[int, bytes]
) -> None:
    assert https_redirect(method, host, url, port) == expected


def test_edge_headers_say_https_only_for_the_tls_listener() -> None:
    assert (
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n"
        in EdgeHeaders("ams", 443, tls=True).request_block
    )
    assert (
        b"X-Forwarded-Proto: http\r\nX-Forwarded-Ssl: off\r\n"
        in EdgeHeaders("ams", 80).request_block
    )
