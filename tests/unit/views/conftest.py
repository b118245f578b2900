"""The `world` of the view tests: a config file and a real SQLite store filled with ten days
of two models (tests/unit/views/support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aiops_pipelines.core.config import AppConfig, load_config
from aiops_pipelines.io.store import MonitoringStore
from tests.unit.views.support import _config_dict, _fill


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, AppConfig, MonitoringStore]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config_dict(tmp_path)))
    cfg = load_config(path)
    store = MonitoringStore(cfg.storage.store_url)
    _fill(store)
    yield path, cfg, store
    store.close()
