"""A 429 from the API reaches the user as a sentence saying when to retry."""

from __future__ import annotations

import httpx
import pytest

from ferry.client import FerryClient
from ferry.errors import ApiError


def _client(response: httpx.Response) -> FerryClient:
    return FerryClient(
        "http://ferry.test", "secret", transport=httpx.MockTransport(lambda _r: response)
    )


def test_the_servers_429_keeps_its_sentence_and_says_when_to_retry() -> None:
    answer = httpx.Response(
        429,
        headers={"Retry-After": "3"},
        json={
            "error": "too many requests for org token 'ci': the limit is 100 per second "
            "(bursts of 200); retry in 3 s",
            "hint": "slow down",
        },
    )
    with pytest.raises(ApiError) as caught:
        _client(answer).list_apps()
    assert caught.value.status == 429
    assert "retry in 3 s" in caught.value.message
    assert caught.value.hint == "slow down"


def test_a_bare_429_from_a_proxy_in_between_still_says_when_to_retry() -> None:
    answer = httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")
    with pytest.raises(ApiError) as caught:
        _client(answer).list_apps()
    assert "rate limited" in caught.value.message
    assert "retry in 7 s" in caught.value.message
    assert caught.value.hint is not None and "retry in 7 s" in caught.value.hint


def test_a_429_without_retry_after_says_retry_later() -> None:
    with pytest.raises(ApiError) as caught:
        _client(httpx.Response(429, json={"error": "busy"})).list_apps()
    assert "retry later" in caught.value.message
