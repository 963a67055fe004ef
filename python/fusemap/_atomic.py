"""Atomic replacement of a directory: the one place that swaps a finished build into place."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def replace_dir(built: Path, target: Path) -> Path:
    """Move the finished directory ``built`` to ``target``, replacing what was there.

    The old ``target`` is renamed aside first and removed only after the new one is in place, so
    at every moment ``target`` is either the complete old directory or the complete new one.
    """
    built, target = Path(built), Path(target)
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(built, target)
        shutil.rmtree(old)
    else:
        os.rename(built, target)
    return target
