"""Writing a file that another run may be reading at the same moment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def replace_file(path: Path, write: Callable[[Path], object]) -> Path:
    """Write `path` through `write(temporary path)` beside it, then rename it into place.

    A rename within a folder is atomic: a reader (another run of the same partition, MLflow
    copying the file) sees the previous file or the new one, never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this writer's own (created by `write` with the usual permissions)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
