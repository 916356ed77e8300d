"""`ferry orgs …`: organizations, their members and invitations (flyctl's `fly orgs`).

An invitation's value and a new user token are secrets: each is printed once,
by the command that creates it, and never again (the server keeps digests).
`orgs join` reads the invitation from a hidden prompt or stdin when it is not
given as an argument, so it need not appear on a command line.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer

from ferry.cli import context, output
from ferry.client import NewInvitation
from ferry.errors import ValidationError
from ferry.model.access import Member, Role
from ferry.net import sixpn

app = typer.Typer(no_args_is_help=True, help="Organizations, their members and invitations.")

JSON_HELP = "Print the API objects as JSON"


def timestamp(moment: datetime | None) -> str:
    """``2026-01-08 00:00 UTC``; ``never`` for no moment (a token without expiry)."""
    if moment is None:
        return "never"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _members_table(members: list[Member]) -> None:
    rows = [(m.email, m.role.value, output.ago(m.joined_at)) for m in members]
    output.stdout().print(output.simple_table(("EMAIL", "ROLE", "JOINED"), rows))


def _show_invitation(created: NewInvitation) -> None:
    """The invitation's value, once, and how the invitee uses it."""
    invitation = created.invitation
    output.say(
        f"Invitation for {invitation.email} to join {invitation.org_slug} as "
        f"{invitation.role.value} (shown once; valid until {timestamp(invitation.expires_at)}, "
        "for one use):"
    )
    output.say("")
    output.say(f"  {created.value}")
    output.say("")
    output.say(
        f"Give it to {invitation.email} privately. They accept it with `ferry orgs join` "
        "(it asks for the invitation; no token needed) and get their own API token."
    )


@app.command("create")
def create(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Organization slug: lowercase letters, digits, dashes"),
    name: str | None = typer.Option(None, "--name", "-n", help="Display name (default: SLUG)"),
    admin: str | None = typer.Option(
        None, "--admin", help="Operator only: email of the first admin (gets an invitation)"
    ),
    as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP),
) -> None:
    """Create an organization. With a user token you become its admin; the operator
    (admin token) names the first admin with --admin and gets their invitation."""
    created = context.client(ctx).create_org(slug, name=name, admin_email=admin)
    if as_json:
        answer = output.to_jsonable(created.org)
        if created.admin_invitation is not None:
            answer["admin_invitation"] = {
                "invitation": created.admin_invitation.value,
                **output.to_jsonable(created.admin_invitation.invitation),
            }
        output.print_json(answer)
        return
    output.say(f"Created organization {created.org.slug} ({created.org.name})", style="green")
    if created.admin_invitation is not None:
        _show_invitation(created.admin_invitation)


@app.command("list")
def list_orgs(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP)
) -> None:
    """List the organizations your token can see."""
    orgs = context.client(ctx).list_orgs()
    if as_json:
        output.print_json(orgs)
        return
    if not orgs:
        output.say("No organizations. Accept an invitation with `ferry orgs join`.")
        return
    rows = [(org.name, org.slug) for org in sorted(orgs, key=lambda org: org.slug)]
    output.stdout().print(output.simple_table(("NAME", "SLUG"), rows))


@app.command("show")
def show(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Organization slug"),
    as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP),
) -> None:
    """Show an organization: its members and its apps."""
    details = context.client(ctx).get_org(slug)
    if as_json:
        output.print_json(
            {**output.to_jsonable(details.org), "members": details.members, "apps": details.apps}
        )
        return
    network = details.org.sixpn_network
    rows = [("Name", details.org.name), ("Slug", slug)]
    if network:
        rows.append(("6PN network", f"{network} ({sixpn.org_prefix(network)})"))
    output.stdout().print(output.key_values(rows))
    output.say("")
    output.say(f"Members ({len(details.members)}):", style="bold")
    _members_table(details.members)
    output.say("")
    output.say(f"Apps ({len(details.apps)}):", style="bold")
    for name in details.apps:
        output.say(f"  {name}")
    if not details.apps:
        output.say(f"  none yet: `ferry apps create NAME --org {slug}`")


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="The organization to destroy"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
) -> None:
    """Destroy an organization (admins). It must have no apps left: destroy them or
    `ferry apps move` them first. Its members, invitations and tokens go with it."""
    client = context.client(ctx)
    client.get_org(slug)  # a missing or invisible one is refused before asking
    if not yes and not typer.confirm(
        f"Destroy organization {slug}? Its members, invitations and tokens are deleted. "
        "This cannot be undone",
        default=False,
    ):
        raise typer.Exit(1)
    client.delete_org(slug)
    output.say(f"Destroyed organization {slug}")


app.command("delete", hidden=True)(destroy)


@app.command("invite")
def invite(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Organization slug"),
    email: str = typer.Argument(..., help="Email of the person to invite"),
    role: Role = typer.Option(Role.MEMBER, "--role", "-r", help="Their role", case_sensitive=False),
    as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP),
) -> None:
    """Invite someone (admins): prints the invitation once; it is good for 7 days."""
    created = context.client(ctx).invite(slug, email, role)
    if as_json:
        output.print_json({"invitation": created.value, **output.to_jsonable(created.invitation)})
        return
    _show_invitation(created)


@app.command("invitations")
def invitations(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Organization slug"),
    as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP),
) -> None:
    """List an organization's invitations (admins), without their values."""
    found = context.client(ctx).list_invitations(slug)
    if as_json:
        output.print_json(found)
        return
    rows = [
        (
            i.id,
            i.email,
            i.role.value,
            "accepted" if i.accepted_at is not None else "pending",
            timestamp(i.expires_at),
        )
        for i in found
    ]
    columns = ("ID", "EMAIL", "ROLE", "STATUS", "EXPIRES")
    output.stdout().print(output.simple_table(columns, rows))


@app.command("members")
def members(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Organization slug"),
    as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP),
) -> None:
    """List an organization's members and their roles."""
    found = context.client(ctx).list_members(slug)
    if as_json:
        output.print_json(found)
        return
    _members_table(found)


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Organization slug"),
    email: str = typer.Argument(..., help="The member"),
    role: Role = typer.Argument(..., help="admin or member", case_sensitive=False),
) -> None:
    """Change a member's role (admins); the last admin cannot be demoted."""
    member = context.client(ctx).set_member_role(slug, email, role)
    output.say(f"{member.email} is now {member.role.value} of {slug}")


@app.command("remove")
def remove(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Organization slug"),
    email: str = typer.Argument(..., help="The member to remove"),
) -> None:
    """Remove a member (admins): their user token loses this organization at once.
    The last admin cannot be removed."""
    context.client(ctx).remove_member(slug, email)
    output.say(f"Removed {email} from {slug}")


@app.command("join")
def join(
    ctx: typer.Context,
    invitation: str | None = typer.Argument(
        None, help="The invitation (default: asked for, or read from stdin)"
    ),
    token_name: str | None = typer.Option(None, "--name", "-n", help="Name of your new token"),
    as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP),
) -> None:
    """Accept an invitation: you become a member and get your user token, shown once.

    Needs no token. Pass the invitation as an argument, or leave it out to be
    asked for it (hidden) or to pipe it in: `ferry orgs join < invitation.txt`.
    """
    value = invitation if invitation is not None else _read_secret("Invitation")
    joined = context.client(ctx).accept_invitation(value, token_name=token_name)
    if as_json:
        output.print_json(
            {
                "membership": joined.membership,
                "token": joined.token.token,
                **output.to_jsonable(joined.token.info),
            }
        )
        return
    membership = joined.membership
    output.say(
        f"Joined {membership.org_slug} as {membership.role.value} ({membership.email})",
        style="green",
    )
    output.say("Your API token (shown once; Ferry keeps only its digest). Use it with:")
    output.say("")
    output.say(f"  export FERRY_API_TOKEN={joined.token.token}")
    output.say("")
    output.say(
        f"It is token {joined.token.info.id} ({joined.token.info.name}); revoke it with "
        f"`ferry tokens revoke {joined.token.info.id}`."
    )


def _read_secret(what: str) -> str:
    """A secret from a hidden prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        value: str = typer.prompt(what, hide_input=True)
    else:
        value = sys.stdin.readline()
    value = value.strip()
    if not value:
        raise ValidationError(
            f"no {what.lower()} given",
            hint="paste it when asked, pipe it in, or pass it as the argument",
        )
    return value
