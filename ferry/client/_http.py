"""The HTTP core of the client: one pooled ``httpx.Client`` and the translation of failures.

Every failure leaves this module as a ``FerryError``:

- an error answer (non-2xx) becomes ``ApiError`` carrying the server's
  ``error`` sentence, its ``hint`` and the HTTP status; a 429 (too many
  requests for this token) says in its message when to retry (``Retry-After``);
- a refused connection or a timeout becomes ``UnavailableError``;
- a malformed ``FERRY_API_URL`` becomes ``ValidationError``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ferry.client._settings import default_api_url, default_token
from ferry.errors import ApiError, UnavailableError, ValidationError

_UNREACHABLE_HINT = "is the cluster running? try `ferry cluster status`"
_NO_TOKEN_HINT = "set FERRY_API_TOKEN (or FLY_API_TOKEN), or run where `ferry auth token` works"


class HttpCore:
    """Owns the connection pool; subclasses add one method per API call.

    Not thread-safe for ``close``; requests may be issued from one thread at a time
    per client (httpx's own rule for a sync client is looser, but Ferry never needs more).
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
    ) -> None:
        self.base_url = (base_url or default_api_url()).rstrip("/")
        self._token = token if token is not None else default_token()
        headers = {"Accept": "application/json", "User-Agent": "ferry-client"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            self._http = httpx.Client(
                base_url=self.base_url, headers=headers, transport=transport, timeout=timeout
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ValidationError(
                f"invalid Ferry API URL {self.base_url!r}",
                hint="set FERRY_API_URL to something like http://127.0.0.1:4280",
            ) from exc
        self.timeout = timeout

    def close(self) -> None:
        """Close the pooled connections. Idempotent."""
        self._http.close()

    def __enter__(self) -> HttpCore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer (``None`` for an empty body).

        Blocking. Raises ``ApiError``, ``UnavailableError`` or ``ValidationError``.
        """
        return _decode(
            self._exchange(method, path, params=params, body=body, timeout=timeout, headers=headers)
        )

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and return the successful response (for its headers too).

        Blocking. Raises as ``_request`` does.
        """
        clean_params = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method,
                path,
                params=clean_params,
                json=body,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise UnavailableError(
                f"the Ferry API at {self.base_url} did not answer in time ({method} {path})",
                hint=_UNREACHABLE_HINT,
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise ValidationError(
                f"invalid Ferry API URL {self.base_url!r}: only http:// and https:// work",
                hint="set FERRY_API_URL to something like http://127.0.0.1:4280",
            ) from exc
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach the Ferry API at {self.base_url}", hint=_UNREACHABLE_HINT
            ) from exc
        if response.is_success:
            return response
        raise self._api_error(response)

    def _api_error(self, response: httpx.Response) -> ApiError:
        message: str | None = None
        hint: str | None = None
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict):
            if isinstance(payload.get("error"), str):
                message = payload["error"]
            if isinstance(payload.get("hint"), str):
                hint = payload["hint"]
        if message is None:
            text = response.text.strip()[:200] or response.reason_phrase
            message = f"the Ferry API answered {response.status_code}: {text}"
        if response.status_code == 401 and hint is None and not self._token:
            hint = _NO_TOKEN_HINT
        if response.status_code == 429:
            message, hint = _rate_limited(response, message, hint)
        return ApiError(message, status=response.status_code, hint=hint)


def _rate_limited(
    response: httpx.Response, message: str, hint: str | None
) -> tuple[str, str | None]:
    """A 429's message naming when to retry (from ``Retry-After``, in seconds)."""
    after = response.headers.get("retry-after", "").strip()
    when = f"retry in {after} s" if after.isdigit() else "retry later"
    if "retry in" not in message:
        message = f"rate limited by the Ferry API: {message}; {when}"
    return message, hint or f"this token sent too many requests; {when}"


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnavailableError(
            f"the Ferry API answered {response.request.method} {response.request.url.path} "
            "with something that is not JSON",
            hint="is FERRY_API_URL pointing at a Ferry control plane?",
        ) from exc
