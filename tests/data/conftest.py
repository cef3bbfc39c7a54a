"""Shared fixtures for the importer tests: the MANO stand-in files (written once per session)."""

from __future__ import annotations

import pytest
from fixtures.mano_standin import write_standin_mano


@pytest.fixture(scope="session")
def mano_dir(tmp_path_factory):
    return write_standin_mano(tmp_path_factory.mktemp("mano"))
