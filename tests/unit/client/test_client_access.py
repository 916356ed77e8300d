"""The access calls of ``FerryClient`` on the real API: what a script using the client sees."""

from __future__ import annotations

import pytest

from ferry.client import FerryClient
from ferry.errors import ApiError
from ferry.model.access import Role, TokenKind

from .test_client_server import TOKEN, base_url

__all__ = ["base_url"]


def test_an_org_admin_invites_and_the_invitee_joins_without_a_token(base_url: str) -> None:
    with FerryClient(base_url, TOKEN) as operator:
        created = operator.create_org("acme", name="Acme", admin_email="A@Acme.test")
        assert (created.org.slug, created.org.name) == ("acme", "Acme")
        assert created.admin_invitation is not None
        invitation = created.admin_invitation
        assert invitation.invitation.role is Role.ADMIN
        assert invitation.invitation.email == "a@acme.test"
        assert invitation.value not in repr(invitation)
    with FerryClient(base_url, "") as anonymous:
        joined = anonymous.accept_invitation(f"  {invitation.value}\n", token_name="laptop")
    assert joined.membership.org_slug == "acme" and joined.token.info.kind is TokenKind.USER
    assert joined.token.info.name == "laptop" and joined.token.token not in repr(joined)

    with FerryClient(base_url, joined.token.token) as alice:
        app = alice.create_app("rocket")  # her only organization
        assert app.organization.slug == "acme"
        deploy = alice.create_token(TokenKind.DEPLOY, app_name="rocket", expiry="1h")
        assert deploy.info.expires_at is not None and deploy.info.app_name == "rocket"
        assert [t.id for t in alice.list_tokens("acme")] == [deploy.info.id]
        carol = alice.invite("acme", "c@acme.test")
        assert [i.email for i in alice.list_invitations("acme")] == ["a@acme.test", "c@acme.test"]
        assert carol.invitation.role is Role.MEMBER
        details = alice.get_org("acme")
        assert details.apps == ["rocket"] and [m.email for m in details.members] == ["a@acme.test"]
        with pytest.raises(ApiError) as last:
            alice.set_member_role("acme", "a@acme.test", Role.MEMBER)
        assert last.value.status == 409 and last.value.hint == "make another member admin first"
    with FerryClient(base_url, deploy.token) as scoped:
        assert [a.name for a in scoped.list_apps()] == ["rocket"]
        assert scoped.list_orgs() == []  # an app token sees no organization
    with FerryClient(base_url, TOKEN) as operator:
        assert operator.revoke_token(deploy.info.id).revoked_at is not None
        assert {o.slug for o in operator.list_orgs()} == {"acme", "personal"}
        operator.create_org("globex")
        assert operator.move_app("rocket", "globex").organization.slug == "globex"
        assert [a.name for a in operator.list_apps("globex")] == ["rocket"]
        operator.delete_org("acme")
        with pytest.raises(ApiError) as gone:
            operator.list_members("acme")
        assert gone.value.status == 404


def test_the_operator_cannot_mint_or_list_for_an_organization_that_does_not_exist(
    base_url: str,
) -> None:
    """A token minted for a missing slug would rule an organization made later under it."""
    with FerryClient(base_url, TOKEN) as operator:
        before = operator.list_tokens()
        for call in (
            lambda: operator.create_token(TokenKind.ORG, org_slug="later"),
            lambda: operator.create_token(TokenKind.READONLY, org_slug="later"),
            lambda: operator.list_members("later"),
            lambda: operator.list_invitations("later"),
            lambda: operator.list_tokens("later"),
        ):
            with pytest.raises(ApiError) as missing:
                call()
            assert missing.value.status == 404
            assert missing.value.message == "organization 'later' not found"
        assert operator.list_tokens() == before
