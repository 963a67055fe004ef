"""Command line: ``fusemap integrate | demo | map | impute | transfer | regions | nomenclature |
proximity | panel``.

The commands parse options and call library functions; nothing here computes. Every command
reads its inputs once, writes each result once, and builds its output folder atomically: results
are assembled in a hidden ``.<name>.partial`` folder beside the target and renamed into place at
the end, so an interrupted run never leaves a half-written result; rerunning the same command
resumes training from the checkpoint kept there (``--no-resume`` starts afresh). ``--overwrite``
only ever replaces an earlier fusemap result, never a folder holding other files or an input.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Sequence

from ..errors import FuseMapInputError, FuseMapModelError
from . import analysis, integrate, query
from ._common import in_cli_words

COMMAND_MODULES = (integrate, query, analysis)
"""Each adds its sub-commands with ``add_commands(subparsers)``, setting ``handler`` on each."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fusemap", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also log what dependencies do (fusemap's own progress lines and summaries are always shown)")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="[fusemap] %(message)s")
    # fusemap's INFO lines (progress off a terminal, balance weights, section mixing) reach the log
    # of a batch job even without -v; they are written above a progress bar, never into it
    logging.getLogger("fusemap").setLevel(logging.INFO)
    if not args.verbose:  # dependencies' deprecation chatter is not for command-line users
        for cat in (FutureWarning, DeprecationWarning, SyntaxWarning):
            warnings.filterwarnings("ignore", category=cat)
    try:
        out = args.handler(args)
    except (FuseMapInputError, FuseMapModelError, FileExistsError, FileNotFoundError) as exc:
        print(f"fusemap {args.command}: error: {in_cli_words(str(exc))}", file=sys.stderr)
        return 2
    finally:
        if "fusemap.distributed" in sys.modules:  # leave the torchrun process group, if any
            sys.modules["fusemap.distributed"].shutdown()
    if out is not None and args.command != "demo":
        print(f"fusemap {args.command}: wrote {out}")
    return 0
