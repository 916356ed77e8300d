"""The one exception tree of Ferry.

    FerryError                    every error Ferry raises on purpose
    ├── ConfigError               fly.toml or cluster config is wrong (names file, line, key)
    ├── ValidationError           a request or value is invalid (HTTP 400/422)
    ├── AuthError                 missing, wrong, expired or revoked token (HTTP 401)
    ├── ForbiddenError            the token may see this but not do that (HTTP 403)
    ├── RateLimited               too many requests for one token (HTTP 429, Retry-After)
    ├── NotFoundError             an app, machine, host or image does not exist (HTTP 404)
    ├── ConflictError             duplicate name, impossible state change, stale revision (HTTP 409)
    │   └── RevisionConflict      an optimistic write lost the race; retry with a fresh read
    ├── CapacityError             no host can take the machine (HTTP 422: names region, shortfall)
    ├── UnavailableError          a dependency is down or timed out (HTTP 503)
    ├── RuntimeFailure            runc, an image tool or a mount failed on a host
    ├── NetworkError              a namespace, veth or route could not be made
    └── ApiError                  the control plane answered an error (client side; carries status)

Foreign exceptions are translated at the boundary: ``raise X(...) from exc``.
Every message says what went wrong and, where it can, what to do.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthError",
    "CapacityError",
    "ConfigError",
    "ConflictError",
    "FerryError",
    "ForbiddenError",
    "NetworkError",
    "NotFoundError",
    "RateLimited",
    "RevisionConflict",
    "RuntimeFailure",
    "UnavailableError",
    "ValidationError",
]


class FerryError(Exception):
    """Base of every error Ferry raises on purpose.

    ``hint`` is an optional sentence telling the user what to do next.
    ``status`` is the HTTP status the API answers with for this error.
    """

    status: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(FerryError):
    """A configuration file is wrong; the message names the file, line and key."""

    status = 400


class ValidationError(FerryError):
    """A request or value is invalid."""

    status = 400


class AuthError(FerryError):
    """The request carries no token or a wrong one."""

    status = 401


class ForbiddenError(FerryError):
    """The caller may see the resource but not do this to it (a read-only token writing)."""

    status = 403


class RateLimited(FerryError):
    """Too many requests for one token; ``retry_after`` seconds until the next is allowed."""

    status = 429

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class NotFoundError(FerryError):
    """The named resource does not exist."""

    status = 404


class ConflictError(FerryError):
    """The request conflicts with the current state (duplicate, bad transition)."""

    status = 409


class RevisionConflict(ConflictError):
    """An optimistic write carried a revision that is no longer current."""


class CapacityError(FerryError):
    """No host can take the machine; the message names the region and the shortfall."""

    status = 422


class UnavailableError(FerryError):
    """A dependency is down or a wait timed out."""

    status = 503


class RuntimeFailure(FerryError):
    """runc, an image tool or a mount failed on a host."""


class NetworkError(FerryError):
    """A namespace, veth, address or route could not be set up."""


class ApiError(FerryError):
    """The control plane answered with an error (raised by ``ferry.client``)."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
