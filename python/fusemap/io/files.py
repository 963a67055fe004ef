"""The one place that writes files: atomic replacement, output folders and what they may delete.

Why one module: every result is built beside its target under a hidden name and renamed into
place, so a reader sees either the whole old result or the whole new one, never half of either;
and the toolkit only ever deletes or replaces what it wrote itself. An output folder carries a
manifest (:data:`MANIFEST`) listing what fusemap wrote there; ``overwrite`` replaces such a folder
only while it holds nothing else, and never a folder or file that holds or is one of the inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .._constants import CONFIG_FILE, MODEL_FORMAT, VERSION
from ..errors import FuseMapInputError, FuseMapModelError

MANIFEST = ".fusemap-output.json"
"""Written into every output folder; lists the entries fusemap wrote, so ``--overwrite`` can tell
its own folder from a user's."""


def safe_filename(name: str) -> str:
    """A section name usable as a file name (path separators and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "section"


def temp_beside(target: str | os.PathLike, tag: str = "tmp") -> Path:
    """A hidden, unique name in ``target``'s folder (same file system, so a rename is atomic)."""
    target = Path(target)
    return target.parent / f".{target.name}.{tag}-{uuid.uuid4().hex[:8]}"


def replace_dir(built: Path, target: Path) -> Path:
    """Move the finished directory ``built`` to ``target``, replacing what was there.

    The old ``target`` is renamed aside first and removed only after the new one is in place, so
    at every moment ``target`` is either the complete old directory or the complete new one.
    """
    built, target = Path(built), Path(target)
    if target.exists():
        old = temp_beside(target, "old")
        os.rename(target, old)
        os.rename(built, target)
        shutil.rmtree(old)
    else:
        os.rename(built, target)
    return target


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it goes.

    ``suffix`` keeps the extension for writers that choose the format from it (e.g. ``.rds``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    tmp = tmp.with_name(tmp.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON with numpy scalars and arrays as plain numbers and lists, written atomically."""
    with atomic_file(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1, default=_json_default)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


# -- what fusemap may replace ----------------------------------------------------------------------
def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _input_paths(inputs: Iterable[Any]) -> list[Path]:
    out = []
    for p in inputs:
        if isinstance(p, (str, os.PathLike)):
            out.append(Path(p).resolve())
    return out


def is_model_dir(path: Path) -> bool:
    """A folder written by ``FuseMap.save`` (its config names the fusemap model format)."""
    try:
        return json.loads((Path(path) / CONFIG_FILE).read_text()).get("format") == MODEL_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` that its fusemap manifest does not list (all of them without one)."""
    entries = sorted(e.name for e in Path(folder).iterdir() if e.name != MANIFEST)
    try:
        ours = set(json.loads((Path(folder) / MANIFEST).read_text())["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        return entries
    return [e for e in entries if e not in ours]


def check_target(target: str | os.PathLike, *, overwrite: bool, inputs: Sequence[Any] = (),
                 flag: str = "--out", is_ours=None) -> Path:
    """Refuse, before any work, an output that would destroy something fusemap did not write.

    ``inputs`` are the paths the job reads; ``is_ours(path)`` tells whether an existing target was
    written by fusemap (default: a folder whose manifest lists everything in it). ``flag`` is how
    the caller names the output: a CLI flag (``--out``) or a Python argument (``out``).
    """
    target = Path(target)
    cli = flag.startswith("--")
    shown = f"{flag} {str(target)!r}" if cli else f"{flag}={str(target)!r}"
    again = "--overwrite" if cli else "overwrite=True"
    resolved = target.resolve()
    for src in _input_paths(inputs):
        if _inside(src, resolved):
            raise FuseMapInputError(
                f"{shown} {'is' if src == resolved else 'holds'} the input {str(src)!r}; writing there "
                f"would replace the input. Choose {flag} outside the inputs' paths."
            )
    if _inside(Path.cwd().resolve(), resolved):
        raise FuseMapInputError(
            f"{shown} is the current directory (or one above it), which cannot be replaced; name a new "
            f"folder, e.g. {flag}{' ' if cli else '='}results/run1."
        )
    if not target.exists():
        return target
    if target.is_dir() and not any(target.iterdir()):
        return target
    if not overwrite:
        raise FuseMapInputError(
            f"{shown} already exists and is not empty; pass {again} to replace an earlier fusemap "
            "result there, or choose another path."
        )
    ours = is_ours(target) if is_ours is not None else (target.is_dir() and not foreign_entries(target))
    if not ours:
        what = (f"holds {foreign_entries(target)[:5]}, which fusemap did not write" if target.is_dir()
                else "is a file fusemap did not write")
        raise FuseMapInputError(
            f"{shown} {what}; {again} only replaces fusemap's own results. Choose another path, or "
            "move those files away first."
        )
    return target


class OutputDir:
    """Build ``target`` in ``.target.partial`` and rename it into place on :meth:`commit`.

    Used as a context manager, a partial folder that this run created is removed again when the
    job stops on bad input (an interrupted training keeps it: the next run resumes from it).
    """

    def __init__(self, target: str | os.PathLike, overwrite: bool = False, *, inputs: Sequence[Any] = (),
                 command: str = ""):
        self.target = check_target(target, overwrite=overwrite, inputs=inputs)
        self.command = command
        self.partial = self.target.parent / f".{self.target.name}.partial"
        self.fresh = not self.partial.exists()
        self.partial.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "OutputDir":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None and issubclass(kind, (FuseMapInputError, FuseMapModelError)) and self.fresh:
            shutil.rmtree(self.partial, ignore_errors=True)

    def path(self, *parts: str) -> Path:
        p = self.partial.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self, drop: Sequence[str] = ()) -> Path:
        for d in drop:
            shutil.rmtree(self.partial / d, ignore_errors=True)
        entries = sorted(e.name for e in self.partial.iterdir() if e.name != MANIFEST)
        write_json(self.partial / MANIFEST, {"written_by": "fusemap", "fusemap_version": VERSION,
                                             "command": self.command, "entries": entries})
        return replace_dir(self.partial, self.target)
