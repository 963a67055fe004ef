"""The gene vocabulary: union of all panels, with one documented rule for matching symbols.

Case handling: by default symbols are matched ignoring case (``gene_case='ignore'``) because the
same gene is often spelled 'Gad1' in mouse panels and 'GAD1' in panels or references that
upper-case symbols; the first spelling met (in section order) is the one reported. With
``gene_case='exact'`` symbols must match exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


def gene_key(symbol: str, gene_case: str) -> str:
    return symbol.upper() if gene_case == "ignore" else symbol


@dataclass
class GeneVocabulary:
    names: list[str]
    gene_case: str = "ignore"

    def __post_init__(self) -> None:
        self._index = {gene_key(n, self.gene_case): i for i, n in enumerate(self.names)}
        if len(self._index) != len(self.names):
            raise ValueError("gene vocabulary holds duplicate symbols")

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, symbol: str) -> bool:
        return gene_key(symbol, self.gene_case) in self._index

    def index_of(self, symbols: Iterable[str]) -> np.ndarray:
        """Vocabulary positions of ``symbols`` (-1 where absent)."""
        return np.array(
            [self._index.get(gene_key(s, self.gene_case), -1) for s in symbols], dtype=np.int64
        )

    def extended(self, symbols: Sequence[str]) -> "GeneVocabulary":
        """A new vocabulary with the symbols not yet known appended, in the given order."""
        new = [s for s in dict.fromkeys(symbols) if s not in self]
        return GeneVocabulary(self.names + new, self.gene_case)

    @classmethod
    def from_panels(cls, panels: Sequence[Sequence[str]], gene_case: str) -> "GeneVocabulary":
        seen: dict[str, str] = {}
        for panel in panels:
            for s in panel:
                seen.setdefault(gene_key(s, gene_case), s)
        return cls(list(seen.values()), gene_case)
