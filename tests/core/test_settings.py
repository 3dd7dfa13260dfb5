"""Settings read comma lists from the environment, as the README and the chart pass them."""

from __future__ import annotations

from vdup.settings import Settings


def test_comma_lists_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("VDUP_FETCH_ALLOW", "127.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("VDUP_API_KEYS", "k-1,k-2")
    monkeypatch.setenv("VDUP_INDEXER_URLS", "")
    settings = Settings()
    assert settings.fetch_allow == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.api_keys == ["k-1", "k-2"]
    assert settings.indexer_urls == []


def test_lists_given_in_code_stay_lists():
    assert Settings(fetch_allow=["127.0.0.1"]).fetch_allow == ["127.0.0.1"]
