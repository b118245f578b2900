"""Display helpers shared by every view."""

from __future__ import annotations

from aiops_pipelines.core.values import version_label


def test_version_label_never_doubles_the_v() -> None:
    assert version_label(3) == "v3" and version_label("3") == "v3"
    assert version_label("v1") == "v1" and version_label("V2") == "V2"
    assert version_label("blue-7") == "blue-7"
    assert version_label("2026.11") == "v2026.11"
