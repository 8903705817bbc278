"""Fixtures shared by the env tests (no torch here: env tests assert it is never imported)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def alfworld_data(tmp_path_factory):
    """alfworld creates $ALFWORLD_DATA (default ~/.cache/alfworld) on import: use a temp dir."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ALFWORLD_DATA", str(tmp_path_factory.mktemp("alfworld_data")))
    yield
    mp.undo()
