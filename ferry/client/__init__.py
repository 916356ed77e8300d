"""The public HTTP client of the Ferry control-plane API (see docs/api.md).

from ferry.client import FerryClient
with FerryClient() as client:
    for machine in client.list_machines("web"):
        print(machine.id, machine.state)
"""

from __future__ import annotations

from ferry.client._access import CreatedOrg, Joined, NewInvitation, NewToken, OrgDetails
from ferry.client._client import LONG_POLL_SLACK, MAX_WAIT_SECONDS, FerryClient, placement_note
from ferry.client._settings import (
    DEFAULT_API_URL,
    admin_token_path,
    default_api_url,
    default_token,
    ferry_home,
    read_admin_token,
)

__all__ = [
    "DEFAULT_API_URL",
    "LONG_POLL_SLACK",
    "MAX_WAIT_SECONDS",
    "CreatedOrg",
    "FerryClient",
    "Joined",
    "NewInvitation",
    "NewToken",
    "OrgDetails",
    "admin_token_path",
    "default_api_url",
    "default_token",
    "ferry_home",
    "placement_note",
    "read_admin_token",
]
