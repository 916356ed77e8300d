"""Authentication through the cache: every change counts from the very next request;
per-token rate limits answer 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ferry.model.access import Role, TokenInfo, TokenKind
from ferry.server.auth import RateLimits
from ferry.server.auth_cache import AuthCache
from ferry.server.ratelimit import RateLimit

from .conftest import AUTH, Api, FakeClock, bearer, mint_token, open_api, org_with_admin


@pytest.fixture
def acme(api: Api) -> dict[str, str]:
    """acme with alice (admin, user token) and app rocket; globex with bob."""
    alice = org_with_admin(api, "acme", "alice@acme.test")
    bob = org_with_admin(api, "globex", "bob@globex.test")
    made = api.client.post("/v1/apps", json={"app_name": "rocket"}, headers=bearer(alice))
    assert made.status_code == 201, made.text
    return {"alice": alice, "bob": bob}


def _status(api: Api, path: str, token: str) -> int:
    return api.client.get(path, headers=bearer(token)).status_code


def test_a_revoked_token_is_refused_on_the_very_next_request(
    api: Api, acme: dict[str, str]
) -> None:
    deploy = mint_token(api, acme["alice"], kind="deploy", app_name="rocket", name="ci")
    assert _status(api, "/v1/apps/rocket/machines", deploy) == 200
    assert _status(api, "/v1/apps/rocket/machines", deploy) == 200  # now from the cache
    token_id = deploy.split("_")[1]
    assert api.client.delete(f"/v1/tokens/{token_id}").status_code == 200
    refused = api.client.get("/v1/apps/rocket/machines", headers=bearer(deploy))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]


def _member(api: Api, admin: str, email: str) -> str:
    """Invite ``email`` to acme as a member; the user token it gets by accepting."""
    invited = api.client.post(
        "/v1/orgs/acme/invitations",
        json={"email": email, "role": "member"},
        headers=bearer(admin),
    )
    assert invited.status_code == 201, invited.text
    accepted = api.client.post(
        "/v1/invitations/accept", json={"invitation": invited.json()["invitation"]}
    )
    assert accepted.status_code == 201, accepted.text
    token: str = accepted.json()["token"]
    return token


def test_a_removed_member_loses_the_organization_on_the_very_next_request(
    api: Api, acme: dict[str, str]
) -> None:
    carol = _member(api, acme["alice"], "carol@acme.test")
    assert _status(api, "/v1/apps/rocket", carol) == 200
    removed = api.client.delete(
        "/v1/orgs/acme/members/carol@acme.test", headers=bearer(acme["alice"])
    )
    assert removed.status_code == 200, removed.text
    assert _status(api, "/v1/apps/rocket", carol) == 404


def test_a_new_role_counts_on_the_very_next_request(api: Api, acme: dict[str, str]) -> None:
    carol = _member(api, acme["alice"], "carol@acme.test")
    assert _status(api, "/v1/orgs/acme/invitations", carol) == 403  # admins only
    promoted = api.client.put(
        "/v1/orgs/acme/members/carol@acme.test",
        json={"role": "admin"},
        headers=bearer(acme["alice"]),
    )
    assert promoted.status_code == 200, promoted.text
    assert _status(api, "/v1/orgs/acme/invitations", carol) == 200


def test_a_moved_app_answers_from_its_new_organization_at_once(
    api: Api, acme: dict[str, str]
) -> None:
    assert _status(api, "/v1/apps/rocket", acme["alice"]) == 200
    assert _status(api, "/v1/apps/rocket", acme["bob"]) == 404
    moved = api.client.post("/v1/apps/rocket/move", json={"org_slug": "globex"})
    assert moved.status_code == 200, moved.text
    assert _status(api, "/v1/apps/rocket", acme["alice"]) == 404
    assert _status(api, "/v1/apps/rocket", acme["bob"]) == 200


def test_an_app_deleted_and_made_again_elsewhere_belongs_to_its_new_organization(
    api: Api, acme: dict[str, str]
) -> None:
    assert _status(api, "/v1/apps/rocket", acme["alice"]) == 200
    assert api.client.delete("/v1/apps/rocket").status_code in (200, 202)
    assert _status(api, "/v1/apps/rocket", acme["alice"]) == 404
    made = api.client.post("/v1/apps", json={"app_name": "rocket"}, headers=bearer(acme["bob"]))
    assert made.status_code == 201, made.text
    assert _status(api, "/v1/apps/rocket", acme["alice"]) == 404
    assert _status(api, "/v1/apps/rocket", acme["bob"]) == 200


def test_expiry_is_checked_against_the_clock_on_every_request(
    api: Api, acme: dict[str, str], clock: FakeClock
) -> None:
    short = mint_token(api, acme["alice"], kind="deploy", app_name="rocket", expiry="1h")
    assert _status(api, "/v1/apps/rocket", short) == 200
    clock.advance(3601)
    expired = api.client.get("/v1/apps/rocket", headers=bearer(short))
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]


def test_repeated_requests_read_the_token_once(api: Api, acme: dict[str, str]) -> None:
    deploy = mint_token(api, acme["alice"], kind="deploy", app_name="rocket")
    assert api.plane.auth is not None
    assert _status(api, "/v1/apps/rocket/machines", deploy) == 200
    fills = api.plane.auth.cache.fills
    for _ in range(20):
        assert _status(api, "/v1/apps/rocket/machines", deploy) == 200
    assert api.plane.auth.cache.fills == fills


class _RacingStore:
    """A store whose token read is overtaken by a change (the cache is told mid-read)."""

    def __init__(self) -> None:
        self.cache: AuthCache | None = None
        self.revoked = False
        self.info = TokenInfo(
            id="abc",
            name="ci",
            kind=TokenKind.ORG,
            org_slug="acme",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )

    def get_token(self, token_id: str) -> tuple[TokenInfo, str] | None:
        row = (self.info, "digest")
        if not self.revoked:  # the revoke commits and notifies while we hold the old row
            self.revoked = True
            assert self.cache is not None
            self.cache.invalidate()
        else:
            row = (self.info.model_copy(update={"revoked_at": self.info.created_at}), "digest")
        return row

    def roles_of(self, email: str) -> dict[str, Role]:
        return {}

    def app_org(self, name: str) -> str | None:
        return None


def test_a_read_that_raced_a_change_is_not_kept() -> None:
    store = _RacingStore()
    cache = AuthCache(store)  # type: ignore[arg-type]  # the two methods it reads
    store.cache = cache
    first = cache.token("abc")
    assert first is not None and first.info.revoked_at is None  # that request saw the old row
    second = cache.token("abc")
    assert second is not None and second.info.revoked_at is not None


@pytest.fixture
def limited(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    limits = RateLimits(tokens=RateLimit(0.001, 2), infra=RateLimit(0.001, 3))
    yield from open_api(tmp_path / "state.db", clock, rate_limits=limits)


def _mint(api: Api, **body: Any) -> str:
    created = api.client.post("/v1/tokens", json=body)
    assert created.status_code == 201, created.text
    token: str = created.json()["token"]
    return token


def test_a_token_over_its_limit_gets_429_with_retry_after(limited: Api) -> None:
    api = limited
    org = _mint(api, kind="org", org_slug="personal", name="ci")
    other = _mint(api, kind="org", org_slug="personal", name="laptop")
    assert [_status(api, "/v1/apps", org) for _ in range(2)] == [200, 200]
    refused = api.client.get("/v1/apps", headers=bearer(org))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1000"  # 1 request at 0.001/s, whole seconds
    assert "too many requests" in refused.json()["error"]
    assert "retry in 1000 s" in refused.json()["error"]
    assert _status(api, "/v1/apps", other) == 200  # a token of its own
    for _ in range(5):
        assert api.client.get("/v1/apps", headers=AUTH).status_code == 200  # the operator


def test_host_and_edge_credentials_have_their_own_budget(limited: Api) -> None:
    api = limited
    host = _mint(api, kind="host", host_id="ams-1", region="ams", name="host ams-1")
    path = "/v1/hosts/ams-1/machines?timeout=0"
    answers = [_status(api, path, host) for _ in range(4)]
    assert answers[:3] == [404, 404, 404]  # not registered yet, but allowed
    assert answers[3] == 429
