"""Organizations, members and scoped tokens through the real API: who sees and does what."""

from __future__ import annotations

from .conftest import AUTH, Api, bearer, host_body, mint_token


def test_another_organizations_app_is_404_exactly_like_a_missing_one(
    api: Api, two_orgs: dict[str, str]
) -> None:
    bob = bearer(two_orgs["bob"])
    missing = api.client.get("/v1/apps/no-such-app", headers=bob)
    for method, path in [
        ("GET", "/v1/apps/rocket"),
        ("DELETE", "/v1/apps/rocket"),
        ("GET", "/v1/apps/rocket/machines"),
        ("POST", "/v1/apps/rocket/machines"),
        ("GET", "/v1/apps/rocket/releases"),
        ("PUT", "/v1/apps/rocket/autoscale"),
    ]:
        answer = api.client.request(method, path, headers=bob, json={})
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"] == missing.json()["error"].replace("no-such-app", "rocket")
    listed = api.client.get("/v1/apps", headers=bob).json()
    assert [app["name"] for app in listed["apps"]] == ["widget"]
    assert api.client.get("/v1/apps?org_slug=acme", headers=bob).status_code == 404
    shown = api.client.get("/v1/orgs", headers=bob).json()
    assert [(org["name"], org["slug"]) for org in shown] == [("globex", "globex")]
    assert api.client.get("/v1/apps/rocket", headers=AUTH).status_code == 200  # untouched


def test_a_deploy_token_manages_its_app_and_nothing_else(
    api: Api, two_orgs: dict[str, str]
) -> None:
    alice = two_orgs["alice"]
    api.client.post("/v1/apps", json={"app_name": "moon"}, headers=bearer(alice))
    deploy = bearer(mint_token(api, alice, kind="deploy", app_name="rocket", name="ci"))
    policy = {"regions": ["ams"], "min_per_region": 0}
    assert (
        api.client.put("/v1/apps/rocket/autoscale", json=policy, headers=deploy).status_code == 200
    )
    assert api.client.get("/v1/apps/moon", headers=deploy).status_code == 404
    assert api.client.delete("/v1/apps/moon", headers=deploy).status_code == 404
    assert [a["name"] for a in api.client.get("/v1/apps", headers=deploy).json()["apps"]] == [
        "rocket"
    ]
    refused = api.client.post(
        "/v1/tokens", json={"kind": "deploy", "app_name": "rocket"}, headers=deploy
    )
    assert refused.status_code == 403
    assert api.client.post("/v1/apps", json={"app_name": "sneaky"}, headers=deploy).status_code in (
        403,
        404,
    )
    assert api.client.get("/v1/apps/sneaky", headers=AUTH).status_code == 404  # nothing made


def test_a_readonly_token_reads_and_is_refused_every_change(
    api: Api, two_orgs: dict[str, str]
) -> None:
    readonly = bearer(mint_token(api, two_orgs["alice"], kind="readonly", org_slug="acme"))
    assert api.client.get("/v1/apps/rocket", headers=readonly).status_code == 200
    changed = api.client.delete("/v1/apps/rocket", headers=readonly)
    assert changed.status_code == 403
    assert "may only read app 'rocket'" in changed.json()["error"]
    assert api.client.get("/v1/apps/widget", headers=readonly).status_code == 404
    assert api.client.get("/v1/apps/rocket", headers=AUTH).status_code == 200


def test_expired_and_revoked_tokens_are_401_saying_so(api: Api, two_orgs: dict[str, str]) -> None:
    alice = two_orgs["alice"]
    short = mint_token(api, alice, kind="org", org_slug="acme", name="short", expiry="1h")
    assert api.client.get("/v1/apps", headers=bearer(short)).status_code == 200
    api.clock.advance(3601)
    expired = api.client.get("/v1/apps", headers=bearer(short))
    assert expired.status_code == 401 and "token 'short' expired at" in expired.json()["error"]

    kept = api.client.post(
        "/v1/tokens",
        json={"kind": "org", "org_slug": "acme", "name": "gone"},
        headers=bearer(alice),
    ).json()
    assert "token" in kept and "token_sha256" not in kept
    listed = api.client.get("/v1/tokens?org_slug=acme", headers=bearer(alice)).json()
    assert all("token" not in item for item in listed)  # never the secret again
    assert api.client.delete(f"/v1/tokens/{kept['id']}", headers=bearer(alice)).status_code == 200
    revoked = api.client.get("/v1/apps", headers=bearer(kept["token"]))
    assert revoked.status_code == 401 and "token 'gone' was revoked" in revoked.json()["error"]


def test_bad_expiry_and_kinds_are_400_and_create_nothing(
    api: Api, two_orgs: dict[str, str]
) -> None:
    alice = bearer(two_orgs["alice"])
    before = api.client.get("/v1/tokens", headers=AUTH).json()
    for body, error in [
        ({"kind": "org", "org_slug": "acme", "expiry": "soon"}, "invalid expiry 'soon'"),
        ({"kind": "deploy"}, "a deploy token needs an app"),
        ({"kind": "user"}, "user tokens come with an accepted invitation"),
        ({"kind": "host", "host_id": "ams-1"}, "only the operator creates host credentials"),
    ]:
        answer = api.client.post("/v1/tokens", json=body, headers=alice)
        assert answer.status_code in (400, 403), answer.text
        assert answer.json()["error"] == error
    assert api.client.get("/v1/tokens", headers=AUTH).json() == before


def test_the_last_admin_cannot_leave_and_an_invitation_works_once(
    api: Api, two_orgs: dict[str, str]
) -> None:
    alice = bearer(two_orgs["alice"])
    last = api.client.delete("/v1/orgs/acme/members/alice@acme.test", headers=alice)
    assert last.status_code == 409 and "last admin" in last.json()["error"]
    invited = api.client.post(
        "/v1/orgs/acme/invitations", json={"email": "carol@acme.test"}, headers=alice
    ).json()
    first = api.client.post("/v1/invitations/accept", json={"invitation": invited["invitation"]})
    again = api.client.post("/v1/invitations/accept", json={"invitation": invited["invitation"]})
    assert first.status_code == 201 and again.status_code == 404
    carol = bearer(first.json()["token"])
    assert api.client.get("/v1/apps/rocket", headers=carol).status_code == 200
    refused = api.client.post(
        "/v1/orgs/acme/invitations", json={"email": "dave@acme.test"}, headers=carol
    )
    assert refused.status_code == 403 and "needs an admin" in refused.json()["error"]
    members = api.client.get("/v1/orgs/acme/members", headers=alice).json()
    assert [(m["email"], m["role"]) for m in members] == [
        ("alice@acme.test", "admin"),
        ("carol@acme.test", "member"),
    ]
    assert (
        api.client.delete("/v1/orgs/acme/members/carol@acme.test", headers=alice).status_code == 200
    )
    assert api.client.get("/v1/apps/rocket", headers=carol).status_code == 404


def test_a_host_credential_acts_only_for_its_host(api: Api) -> None:
    host = bearer(
        mint_token(
            api, "test-admin-token", kind="host", host_id="ams-1", region="ams", name="ams-1"
        )
    )
    assert api.client.post("/v1/hosts", json=host_body("ams-1"), headers=host).status_code == 200
    other = api.client.post("/v1/hosts", json=host_body("ams-2"), headers=host)
    assert other.status_code == 403
    api.client.post("/v1/hosts", json=host_body("ams-2", subnet="10.2.0.0/24"), headers=AUTH)
    assert api.client.get("/v1/hosts/ams-1/machines", headers=host).status_code == 200
    assert api.client.get("/v1/hosts/ams-2/machines", headers=host).status_code == 404
    assert api.client.post("/v1/hosts/ams-2/heartbeat", headers=host).status_code == 404
    api.create_app("web")
    assert api.client.get("/v1/apps/web", headers=host).status_code == 404
    assert (
        api.client.post(
            "/v1/apps", json={"app_name": "x", "org_slug": "personal"}, headers=host
        ).status_code
        == 404
    )
    assert api.client.get("/v1/routes?timeout=0", headers=host).status_code == 403


def test_an_edge_credential_reads_routes_and_reports_only_its_region(api: Api) -> None:
    edge = bearer(mint_token(api, "test-admin-token", kind="edge", region="ams", name="edge-ams"))
    api.register_host()
    assert api.client.get("/v1/routes?timeout=0", headers=edge).status_code == 200
    body: dict[str, object] = {"apps": {}}
    other = api.client.post("/v1/edges/iad/traffic", json=body, headers=edge)
    assert other.status_code == 403
    assert api.client.get("/v1/hosts/ams-1/machines", headers=edge).status_code == 404
    assert api.client.get("/v1/hosts", headers=edge).status_code == 403


def test_leases_and_releases_name_the_member_who_took_them(
    api: Api, two_orgs: dict[str, str]
) -> None:
    """Fly shows a lease's owner and a release's user by the person's email."""
    alice = bearer(two_orgs["alice"])
    api.register_host()
    made = api.client.post(
        "/v1/apps/rocket/machines",
        json={"config": {"image": "registry.local/rocket:1"}, "lease_ttl": 30},
        headers=alice,
    )
    assert made.status_code == 200, made.text
    lease = api.client.get(f"/v1/apps/rocket/machines/{made.json()['id']}/lease", headers=alice)
    assert lease.json()["data"]["owner"] == "alice@acme.test"
    ci = bearer(mint_token(api, two_orgs["alice"], kind="deploy", app_name="rocket", name="ci"))
    release = api.client.post(
        "/v1/apps/rocket/releases",
        json={"image": "registry.local/rocket:1", "strategy": "rolling", "description": "v1"},
        headers=ci,
    )
    assert release.status_code == 201, release.text
    assert release.json()["user"] == "ci"
