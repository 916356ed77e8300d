"""Query parameters of the Machines API: what each route accepts, and nothing else.

Fly's clients send query parameters that change what a request does
(``?kill=true``, ``?force_stop=true``, ``?metadata.role=db``). A parameter the
server does not know would otherwise be accepted and ignored, and the caller
would believe it took effect: every machine route therefore declares the
parameters it serves, and anything else is answered 400 naming it.

``unknown_params`` and ``metadata_filters`` are pure; ``allow_query`` is the
thin FastAPI adapter (a dependency that raises ``ValidationError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import Request

from ferry.errors import ValidationError

__all__ = ["METADATA_PREFIX", "allow_query", "metadata_filters", "unknown_params"]

METADATA_PREFIX = "metadata."


def unknown_params(given: Iterable[str], allowed: frozenset[str]) -> list[str]:
    """The names in ``given`` that are not ``allowed``, sorted, each once.

    ``"metadata.*"`` in ``allowed`` admits every ``metadata.<key>`` with a
    non-empty key.
    """
    wildcard = METADATA_PREFIX + "*" in allowed
    unknown = set()
    for name in given:
        if name in allowed:
            continue
        if wildcard and name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX):
            continue
        unknown.add(name)
    return sorted(unknown)


def metadata_filters(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{key: value}`` of the ``metadata.<key>=<value>`` pairs (a repeated key: last wins)."""
    return {
        name[len(METADATA_PREFIX) :]: value
        for name, value in pairs
        if name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX)
    }


def allow_query(*allowed: str) -> Callable[[Request], None]:
    """A dependency answering 400 when the request has a query parameter not in ``allowed``."""
    known = frozenset(allowed)

    def check_query(request: Request) -> None:
        unknown = unknown_params(request.query_params.keys(), known)
        if unknown:
            accepted = ", ".join(sorted(known)) if known else "none"
            raise ValidationError(
                f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(u) for u in unknown)} on {request.method} {request.url.path}",
                hint=f"this route accepts: {accepted}",
            )

    return check_query
