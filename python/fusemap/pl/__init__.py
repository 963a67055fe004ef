"""Figures of the analyses in :mod:`fusemap.tl` (matplotlib; every function returns the Figure and
writes it when given ``save=``). Submodules are imported on first use.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "regions_spatial": "regions", "region_markers_heatmap": "regions",
    "correspondence_heatmap": "nomenclature",
    "gene_modules_umap": "panels", "panel_accuracy": "panels",
    "proximity_heatmap": "proximity", "proximity_summary": "proximity",
    "imputation_check_boxplot": "imputation_check",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'fusemap.pl' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
