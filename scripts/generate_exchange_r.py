"""Write python/fusemap/io/exchange.R from rpkg/R/parts.R: the R side of the AnnData <->
SpatialExperiment exchange has one source, the R package; Python's rpy2 path runs the copy.

Run after editing rpkg/R/parts.R (tests/io/test_io_r.py fails while the two differ).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "rpkg" / "R" / "parts.R"
TARGET = ROOT / "python" / "fusemap" / "io" / "exchange.R"
HEADER = "# Generated from rpkg/R/parts.R by scripts/generate_exchange_r.py: edit that file, then run it.\n"


def generated() -> str:
    return HEADER + SOURCE.read_text()


if __name__ == "__main__":
    TARGET.write_text(generated())
    print(f"wrote {TARGET.relative_to(ROOT)}")
