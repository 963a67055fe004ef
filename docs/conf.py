"""Sphinx configuration of the FuseMap toolkit's documentation (``make docs``).

Besides the usual settings, these are generated here at build time into ignored folders:

- ``_generated/cli_commands.rst.inc``: the ``--help`` text of ``fusemap`` and every sub-command,
  taken from the parser itself, so the CLI reference cannot drift from the code;
- ``tutorials/`` and ``_generated/tutorials_toc.rst.inc``: one page per tutorial
  ``vignettes/NN_*.py``. The executed notebook is taken from ``vignettes/_build``
  (``make vignettes``) or ``build/vignettes-fast`` (written by ``tests/project/test_vignettes.py``
  in ``make test``): a rendering with the default settings when there is one, else the newest,
  with a note saying which settings rendered it and when. Notebooks are never executed by the
  docs build. A tutorial rendered nowhere gets a page that says so and how to render it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "python"))

import fusemap  # noqa: E402

project = "FuseMap toolkit"
author = "FuseMap toolkit developers"
copyright = "FuseMap toolkit developers"
release = fusemap.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False

# notebooks are rendered by vignettes/render.py, never here
nb_execution_mode = "off"
nb_merge_streams = True
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"FuseMap toolkit {release}"
html_static_path = []

# -- generated pages ----------------------------------------------------------------------------
GENERATED = DOCS / "_generated"
TUTORIALS = DOCS / "tutorials"
FAST_NOTE = ("**Rendered with the test-suite settings** (`render.py --fast`: 3 epochs, 300 cells per "
             "section). Every step ran, but the numbers and figures do not show what a real run gives; "
             "`make vignettes` renders the tutorial with the default settings.")
FULL_NOTE = "Rendered with the default settings by `make vignettes`."


def write_if_changed(path: Path, text: str) -> None:
    """Rewrite a generated file only when its content changes (keeps incremental builds incremental)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def cli_reference() -> None:
    """Write the help text of ``fusemap`` and of every sub-command as literal blocks."""
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: make it fixed
    from fusemap.cli import parser

    top = parser()
    sub = next(a for a in top._actions if a.__class__.__name__ == "_SubParsersAction")
    parts = [".. code-block:: text\n", _indent(top.format_help())]
    for name, p in sub.choices.items():
        title = f"fusemap {name}"
        parts += [f"\n.. _cli-{name}:\n", title, "-" * len(title), "",
                  ".. code-block:: text\n", _indent(p.format_help())]
    write_if_changed(GENERATED / "cli_commands.rst.inc", "\n".join(parts) + "\n")


def _indent(text: str) -> str:
    return "\n".join(("   " + line).rstrip() for line in text.strip("\n").splitlines()) + "\n"


def _render_mode(build: Path, stem: str) -> bool | None:
    """Whether ``stem`` in ``build`` was rendered with ``--fast`` (render_times.json); None if unknown."""
    times = build / "render_times.json"
    if not times.exists():
        return None
    entry = json.loads(times.read_text()).get(stem)
    return None if entry is None else bool(entry.get("fast"))


def _title(script: Path) -> str:
    """The first Markdown heading of a percent-format tutorial script."""
    for line in script.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s+#\s+(.+)", line)
        if m:
            return m.group(1).strip()
    return script.stem


def tutorial_pages() -> list[tuple[str, str]]:
    """Copy the executed notebook of every tutorial into ``tutorials/`` (or write a stub).

    Returns (page name, how it was rendered) per tutorial, for the tutorials index.
    """
    if TUTORIALS.exists():
        shutil.rmtree(TUTORIALS)
    TUTORIALS.mkdir()
    found = []
    sources = [(ROOT / "vignettes" / "_build", None), (ROOT / "build" / "vignettes-fast", True)]
    for script in sorted((ROOT / "vignettes").glob("[0-9][0-9]_*.py")):
        stem = script.stem
        candidates = [(nb.stat().st_mtime, nb, fast if fast is not None else _render_mode(build, stem))
                      for build, fast in sources if (nb := build / f"{stem}.ipynb").is_file()]
        if not candidates:
            write_if_changed(TUTORIALS / f"{stem}.md", (
                f"# {_title(script)}\n\n"
                f"This tutorial was not rendered for this build of the documentation. Its source is "
                f"`vignettes/{script.name}`; `make vignettes` (or `make test`, which runs it with the "
                f"test settings) renders it, and the next `make docs` shows it here with its figures.\n"))
            found.append((stem, "not rendered"))
            continue
        # a rendering with the default settings first (it shows real results), then the newest
        mtime, nb_path, fast = max(candidates, key=lambda c: (c[2] is False, c[0]))
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        when = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        note = (FAST_NOTE if fast else FULL_NOTE if fast is False else "Rendering settings unknown.")
        note += f" Source: `vignettes/{script.name}`; rendered {when}."
        cells = nb.get("cells", [])
        at = 1 if cells and cells[0].get("cell_type") == "markdown" else 0  # after the title cell
        cells.insert(at, {"cell_type": "markdown", "id": "fusemap-render-note", "metadata": {},
                          "source": [f"```{{note}}\n{note}\n```\n"]})
        nb["cells"] = cells
        (TUTORIALS / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        found.append((stem, "test settings (``--fast``)" if fast else "default settings" if fast is False
                      else "unknown settings"))
    rendered = "\n".join(f"- ``{stem}``: {how}" for stem, how in found)
    write_if_changed(GENERATED / "tutorials_toc.rst.inc",
                     ".. toctree::\n   :maxdepth: 1\n\n" + "\n".join(f"   tutorials/{s}" for s, _ in found)
                     + "\n\nIn this build:\n\n" + rendered + "\n")


cli_reference()
tutorial_pages()
