"""What the io tests share: PostgreSQL tables for the source tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_pipelines.core.config import SourceConfig


def _pg_url() -> str:
    url = os.environ.get("AIOPS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("AIOPS_TEST_POSTGRES_URL is not set (PostgreSQL source test)")
    return url


@pytest.fixture
def pg_table() -> Iterator[Callable[..., SourceConfig]]:
    """Writes a frame to a throwaway PostgreSQL table (dropped afterwards)."""
    names: list[str] = []

    def write(frame: pd.DataFrame, timestamp: str = "timestamp") -> SourceConfig:
        url = _pg_url()
        names.append(f"log_{uuid.uuid4().hex[:8]}")
        eng = sa.create_engine(url)
        frame.to_sql(names[-1], eng, index=False)
        with eng.begin() as conn:
            conn.execute(sa.text(f'CREATE INDEX "ix_{names[-1]}" ON "{names[-1]}" ("{timestamp}")'))
        eng.dispose()
        return SourceConfig(url=url, table=names[-1], chunk_rows=1000)

    yield write
    if names:
        eng = sa.create_engine(_pg_url())
        with eng.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP TABLE "{name}"'))
        eng.dispose()
