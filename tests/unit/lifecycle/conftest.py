"""The lifecycle tests audit into a private SQLite store (one backend is enough here: the store
itself is tested on both in tests/unit/io/test_store.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiops_pipelines.io.store import MonitoringStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitoringStore]:
    with MonitoringStore(f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s
