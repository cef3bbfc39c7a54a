"""Fixtures of the hostile suite (helpers live in hostile_helpers)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep built tokenizers out of the user's home during tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HANDSYNTH_CACHE", str(tmp_path_factory.mktemp("handsynth_cache")))
    yield
    mp.undo()


CASE_TIMEOUT_S = 120  # each hostile case is bounded: a hang (a server, a lock) fails instead of blocking


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "hostile" in item.nodeid and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(CASE_TIMEOUT_S))
