"""``[http_service]``, ``[[services]]`` and ``[checks.<name>]`` → Machines-API services and checks.

Each function reads one parsed table through ``Table`` and returns model
objects, raising ``ConfigError`` (file, line, key) for the first problem.
"""

from __future__ import annotations

from ferry.config.groups import Scoped, scope_of
from ferry.config.reader import Table, show
from ferry.model import CheckConfig, Concurrency, ServiceConfig, ServicePort
from ferry.model.machine_tls import handlers_problem, http_options_problem, tls_options_problem

__all__ = ["parse_checks", "parse_http_service", "parse_services"]

_PORT = {"minimum": 1, "maximum": 65535}
_HANDLERS = ("http", "tls", "pg_tls", "proxy_proto")
_AUTOSTOP = ("off", "stop", "suspend")
# Fly keys Ferry does not do yet: an error naming the key (documented in docs/fly-toml.md).
_UNSUPPORTED_SERVICE = {
    "machine_checks": "remove it; Ferry runs http and tcp checks",
}
# Fly reads these on [http_service] and [[services.ports]], not on [[services]].
_ON_PORTS = "Fly reads it on each [[services.ports]]; move it there"
_UNSUPPORTED_SERVICES = {
    **_UNSUPPORTED_SERVICE,
    "tls_options": _ON_PORTS,
    "http_options": _ON_PORTS,
}
_UNSUPPORTED_PORT = {
    "proxy_proto_options": "the PROXY protocol is not built yet",
}
_IGNORED_CHECK = {"restart_limit": "it has no effect on a Machines app"}
_HTTP_CHECK_KEYS = (
    "grace_period",
    "interval",
    "timeout",
    "method",
    "path",
    "protocol",
    "headers",
    "tls_server_name",
    "tls_skip_verify",
)
_TCP_CHECK_KEYS = ("grace_period", "interval", "timeout")


def parse_http_service(table: Table, groups: tuple[str, ...]) -> Scoped[ServiceConfig]:
    """``[http_service]``: a TCP service on port 80 (``http``) and 443 (``tls``, ``http``),
    as flyctl makes it. ``force_https`` goes on port 80; ``tls_options`` on port
    443; ``http_options`` on both.
    """
    table.check_keys(
        (
            "internal_port",
            "force_https",
            "tls_options",
            "http_options",
            "auto_stop_machines",
            "auto_start_machines",
            "min_machines_running",
            "concurrency",
            "checks",
            "processes",
        ),
        unsupported=_UNSUPPORTED_SERVICE,
    )
    tls_options, http_options = _tls_options(table), _http_options(table)
    service = ServiceConfig(
        protocol="tcp",
        internal_port=table.integer("internal_port", 8080, **_PORT),
        ports=[
            ServicePort(
                port=80,
                handlers=["http"],
                force_https=table.boolean("force_https", False),
                http_options=http_options,
            ),
            ServicePort(
                port=443,
                handlers=["tls", "http"],
                tls_options=tls_options,
                http_options=http_options,
            ),
        ],
        autostart=table.boolean("auto_start_machines", True),
        autostop=_autostop(table),
        min_machines_running=table.integer("min_machines_running", 0, minimum=0),
        concurrency=_concurrency(table),
        checks=[_check(check, "http") for check in table.tables("checks")],
    )
    return Scoped(value=service, processes=scope_of(table, groups))


def parse_services(tables: list[Table], groups: tuple[str, ...]) -> list[Scoped[ServiceConfig]]:
    """Each ``[[services]]`` with its ports, concurrency and TCP/HTTP checks."""
    return [Scoped(value=_service(table), processes=scope_of(table, groups)) for table in tables]


def parse_checks(table: Table | None, groups: tuple[str, ...]) -> dict[str, Scoped[CheckConfig]]:
    """``[checks.<name>]``: machine-level checks; ``port`` is required for each."""
    if table is None:
        return {}
    checks: dict[str, Scoped[CheckConfig]] = {}
    for name in table.data:
        check = table.table(name)
        assert check is not None
        check.check_keys(("type", "port", "processes", *_HTTP_CHECK_KEYS), ignored=_IGNORED_CHECK)
        kind = check.choice("type", ("http", "tcp"), "http")
        if not check.has("port"):
            raise check.fail(None, "needs a port: the port inside the machine to check")
        value = _check(check, kind, port=check.integer("port", 0, **_PORT))
        checks[name] = Scoped(value=value, processes=scope_of(check, groups))
    return checks


def _service(table: Table) -> ServiceConfig:
    table.check_keys(
        (
            "internal_port",
            "protocol",
            "auto_stop_machines",
            "auto_start_machines",
            "min_machines_running",
            "ports",
            "concurrency",
            "tcp_checks",
            "http_checks",
            "script_checks",
            "processes",
        ),
        unsupported=_UNSUPPORTED_SERVICES,
    )
    if not table.has("internal_port"):
        raise table.fail(None, "needs an internal_port: the port your app listens on")
    if table.data.get("script_checks"):
        raise table.error("script_checks", "are not supported; use http_checks or tcp_checks")
    protocol = table.choice("protocol", ("tcp", "udp"), "tcp")
    if protocol == "udp":
        raise table.error(
            "protocol",
            'is "udp", which is not supported yet by Ferry',
            hint="the edge forwards TCP only; UDP services come later",
        )
    checks = [_check(check, "tcp") for check in table.tables("tcp_checks")]
    checks += [_check(check, "http") for check in table.tables("http_checks")]
    return ServiceConfig(
        protocol="tcp",
        internal_port=table.integer("internal_port", 8080, **_PORT),
        ports=[_port(port) for port in table.tables("ports")],
        autostart=table.boolean("auto_start_machines", True),
        autostop=_autostop(table),
        min_machines_running=table.integer("min_machines_running", 0, minimum=0),
        concurrency=_concurrency(table),
        checks=checks,
    )


def _port(table: Table) -> ServicePort:
    table.check_keys(
        (
            "port",
            "start_port",
            "end_port",
            "handlers",
            "force_https",
            "tls_options",
            "http_options",
        ),
        unsupported=_UNSUPPORTED_PORT,
    )
    port = table.optional_integer("port", **_PORT)
    start = table.optional_integer("start_port", **_PORT)
    end = table.optional_integer("end_port", **_PORT)
    if port is None and (start is None or end is None):
        raise table.fail(None, "needs a port, or a start_port and an end_port")
    if port is not None and (start is not None or end is not None):
        raise table.error("start_port", "cannot be given together with port; use one or the other")
    if start is not None and end is not None and start > end:
        raise table.error("end_port", f"must not be below start_port ({start}), got {end}")
    handlers = table.string_list("handlers") or []
    for handler in handlers:
        if handler not in _HANDLERS:
            known = ", ".join(f'"{name}"' for name in _HANDLERS)
            raise table.error("handlers", f"has an unknown handler {show(handler)}; use {known}")
    problem = handlers_problem(handlers, port)
    if problem:
        raise table.fail("handlers", problem)
    force_https = table.boolean("force_https", False)
    if force_https and "http" not in handlers:
        raise table.error("force_https", 'needs the "http" handler on the same port')
    return ServicePort(
        port=port,
        start_port=start,
        end_port=end,
        handlers=handlers,
        force_https=force_https,
        tls_options=_tls_options(table),
        http_options=_http_options(table),
    )


def _tls_options(table: Table) -> dict[str, object] | None:
    value = table.data.get("tls_options")
    problem = tls_options_problem(value)
    if problem:
        raise table.fail("tls_options", problem)
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) and value else None


def _http_options(table: Table) -> dict[str, object] | None:
    value = table.data.get("http_options")
    problem = http_options_problem(value)
    if problem:
        raise table.fail("http_options", problem)
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) and value else None


def _autostop(table: Table) -> str:
    value = table.data.get("auto_stop_machines", "off")
    if isinstance(value, bool):
        return "stop" if value else "off"
    return table.choice("auto_stop_machines", _AUTOSTOP, "off")


def _concurrency(service: Table) -> Concurrency | None:
    table = service.table("concurrency")
    if table is None:
        return None
    table.check_keys(("type", "soft_limit", "hard_limit"))
    soft = table.integer("soft_limit", 20, minimum=1)
    hard = table.optional_integer("hard_limit", minimum=1)
    if hard is not None and soft > hard:
        raise table.error("soft_limit", f"({soft}) must not exceed hard_limit ({hard})")
    return Concurrency(
        type=table.choice("type", ("connections", "requests"), "connections"),
        soft_limit=soft,
        hard_limit=hard,
    )


def _check(table: Table, kind: str, *, port: int | None = None) -> CheckConfig:
    """One check; ``port`` is None for service checks (they probe the service's port)."""
    if port is None:
        keys = _HTTP_CHECK_KEYS if kind == "http" else _TCP_CHECK_KEYS
        table.check_keys(keys, ignored=_IGNORED_CHECK)
    return CheckConfig(
        type=kind,
        port=port,
        interval=table.duration_text("interval", "15s"),
        timeout=table.duration_text("timeout", "10s"),
        grace_period=table.duration_text("grace_period", "0s"),
        method=table.string("method", "GET").upper(),
        path=_path(table),
        protocol=table.choice("protocol", ("http", "https"), "http"),
        tls_skip_verify=table.boolean("tls_skip_verify", False),
        tls_server_name=table.optional_string("tls_server_name"),
        headers=table.string_map("headers"),
    )


def _path(table: Table) -> str:
    path = table.string("path", "/")
    if not path.startswith("/"):
        raise table.error("path", f'must start with "/", got {show(path)}')
    return path
