"""What the edge honours of a port's TLS settings: handlers, ``tls_options``, ``http_options``.

Pure checks shared by fly.toml parsing and the Machines API: each returns
``None`` when the value asks for what the edge does, or a sentence naming
the key (and value) it cannot honour and what to do. The edge has one TLS
listener (port 443) for every app, offering TLS 1.2 and 1.3, ALPN ``h2`` and
``http/1.1``, and certificates by name (the cluster's, or ``ferry certs``):
a setting that asks for exactly that is accepted; any other is refused by
name, never ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

__all__ = [
    "EDGE_ALPN",
    "EDGE_TLS_VERSIONS",
    "HTTPS_PORT",
    "handlers_problem",
    "http_options_problem",
    "tls_options_problem",
]

#: The port the edge terminates TLS for HTTP services on.
HTTPS_PORT = 443
EDGE_ALPN = frozenset({"h2", "http/1.1"})
EDGE_TLS_VERSIONS = frozenset({"TLSv1.2", "TLSv1.3"})
_PER_APP = "the edge's one TLS listener serves every app alike"


def handlers_problem(handlers: Sequence[str], port: int | None) -> str | None:
    """``None`` for handlers the edge implements on ``port``, else why not.

    ``[]``: raw TCP; ``["http"]``: HTTP routing; ``["tls", "http"]`` (either
    order): TLS terminated, then HTTP routing, on port 443 only; ``["tls"]``:
    TLS terminated, then raw TCP to the machine.
    """
    chosen = set(handlers)
    for handler in handlers:
        if handler == "pg_tls":
            return 'handler "pg_tls" is not supported yet by Ferry (Postgres TLS is not built)'
        if handler == "proxy_proto":
            return 'handler "proxy_proto" is not supported yet by Ferry (the PROXY protocol)'
        if handler not in ("http", "tls"):
            return f'handler {handler!r} is unknown; use "http", "tls" or both'
    if len(chosen) != len(handlers):
        return "handlers must not repeat a handler"
    if chosen == {"tls", "http"} and port != HTTPS_PORT:
        return (
            f'handlers ["tls", "http"] are served on port {HTTPS_PORT} only, not on '
            f"{port if port is not None else 'a port range'}; use port = {HTTPS_PORT}"
        )
    return None


def _string_list(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def tls_options_problem(options: object) -> str | None:
    """``tls_options``: ``alpn``, ``versions``, ``default_self_signed`` as Fly spells them."""
    if options is None:
        return None
    if not isinstance(options, Mapping):
        return "tls_options must be a table of alpn, versions and default_self_signed"
    for key, value in options.items():
        if key == "alpn":
            alpn = _string_list(value)
            if alpn is None:
                return 'tls_options.alpn must be a list such as ["h2", "http/1.1"]'
            if set(alpn) != EDGE_ALPN:
                return (
                    f"tls_options.alpn = {json.dumps(alpn)} is not supported by Ferry: the edge "
                    f'offers ["h2", "http/1.1"] to every app ({_PER_APP}); remove the key'
                )
        elif key == "versions":
            versions = _string_list(value)
            if versions is None:
                return 'tls_options.versions must be a list such as ["TLSv1.2", "TLSv1.3"]'
            if set(versions) != EDGE_TLS_VERSIONS:
                return (
                    f"tls_options.versions = {json.dumps(versions)} is not supported by Ferry: "
                    f'the edge speaks ["TLSv1.2", "TLSv1.3"] to every app ({_PER_APP}); '
                    "remove the key"
                )
        elif key == "default_self_signed":
            if not isinstance(value, bool):
                return "tls_options.default_self_signed must be true or false"
            if value:
                return (
                    "tls_options.default_self_signed = true is not supported by Ferry: a name "
                    "without a certificate is refused during the handshake; add one with "
                    "`ferry certs add`"
                )
        else:
            return (
                f"tls_options.{key} is unknown; Fly's keys are alpn, versions, default_self_signed"
            )
    return None


#: http_options keys and the value that asks for what the edge does anyway.
_HTTP_DEFAULTS: Mapping[str, object] = {"compress": False, "h2_backend": False}
_HTTP_REFUSED: Mapping[str, str] = {
    "compress": "the edge does not compress responses; compress in your app",
    "h2_backend": "the edge speaks HTTP/1.1 to machines",
    "idle_timeout": "the edge's idle timeout is the same for every app",
    "headers_read_timeout": "the edge's header timeout is the same for every app",
}


def http_options_problem(options: object) -> str | None:
    """``http_options``: ``compress``, ``h2_backend``, ``idle_timeout``, ``response``.

    ``response.headers`` and ``response.pristine = true`` are refused (the
    edge adds ``Server``, ``Via`` and ``Fly-Request-Id`` to every answer).
    """
    if options is None:
        return None
    if not isinstance(options, Mapping):
        return "http_options must be a table"
    for key, value in options.items():
        if key == "response":
            problem = _response_problem(value)
            if problem:
                return problem
        elif key in _HTTP_REFUSED:
            if key in _HTTP_DEFAULTS and value == _HTTP_DEFAULTS[key]:
                continue
            return (
                f"http_options.{key} = {json.dumps(value)} is not supported yet by Ferry "
                f"({_HTTP_REFUSED[key]}); remove the key"
            )
        else:
            return (
                f"http_options.{key} is unknown; Fly's keys are compress, h2_backend, "
                "idle_timeout, headers_read_timeout and response"
            )
    return None


def _response_problem(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return "http_options.response must be a table of headers and pristine"
    for key, item in value.items():
        if key == "pristine":
            if item is True:
                return (
                    "http_options.response.pristine = true is not supported yet by Ferry "
                    "(the edge adds Server, Via and Fly-Request-Id); remove the key"
                )
            if item is not False:
                return "http_options.response.pristine must be true or false"
        elif key == "headers":
            if item:
                return (
                    "http_options.response.headers is not supported yet by Ferry (the edge "
                    "does not add or remove response headers per app); set them in your app"
                )
        else:
            return f"http_options.response.{key} is unknown; use headers or pristine"
    return None
