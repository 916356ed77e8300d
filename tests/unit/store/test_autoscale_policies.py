"""The StateStore contract for autoscale policies, run against every backend."""

from __future__ import annotations

import pytest

from ferry.errors import NotFoundError
from ferry.model.autoscale import AutoscalePolicy
from ferry.store import StateStore

from .factories import make_app


def test_policy_round_trip_replace_and_delete(store: StateStore) -> None:
    store.create_app(make_app("web"))
    assert store.get_autoscale_policy("web") is None

    store.set_autoscale_policy("web", AutoscalePolicy(regions=["ams"], max_total=4))
    store.set_autoscale_policy("web", AutoscalePolicy(regions=["sin"], scale_out_after=45))

    assert store.get_autoscale_policy("web") == AutoscalePolicy(regions=["sin"], scale_out_after=45)
    assert list(store.list_autoscale_policies()) == ["web"]
    assert store.delete_autoscale_policy("web") is True
    assert store.delete_autoscale_policy("web") is False
    assert store.get_autoscale_policy("web") is None


def test_policy_needs_an_existing_app_and_goes_with_it(store: StateStore) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        store.set_autoscale_policy("ghost", AutoscalePolicy())
    store.create_app(make_app("web"))
    store.set_autoscale_policy("web", AutoscalePolicy())

    store.delete_app("web")

    assert store.list_autoscale_policies() == {}
