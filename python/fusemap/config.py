"""Typed, immutable configuration. Every run is described by one :class:`FuseMapConfig`.

Flat keyword overrides (``integrate(..., n_latent=32, max_epochs=50)``) are routed to the
sub-configuration that owns the field; field names are unique across sub-configurations so the
routing is unambiguous.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from .errors import FuseMapInputError


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw input becomes the model's input: per section, library-size normalisation, log1p,
    and per-gene scaling by the section's standard deviation (not centred), clipped.

    Scaling each gene within its section removes technology-specific detection levels before the
    sections meet; the input is validated (integer, non-negative counts) instead of being
    silently skipped when it does not look like counts.

    Examples
    --------
    >>> fusemap.integrate(sections, layer="counts", gene_case="exact")  # doctest: +SKIP
    >>> cfg = fusemap.FuseMapConfig(preprocess=fusemap.PreprocessConfig(normalized=True))
    """

    layer: str | None = None
    """Layer holding the counts; ``None`` reads ``X``."""
    normalized: bool = False
    """Input is already library-size normalised and log1p-transformed (not centred)."""
    target_sum: float | None = None
    """Library size after normalisation; ``None`` uses each section's median library size."""
    clip: float = 10.0
    """Upper clip of the per-gene scaled values."""
    gene_case: Literal["ignore", "exact"] = "ignore"
    """Match gene symbols across sections ignoring case ('Gad1' == 'GAD1') or exactly."""


@dataclass(frozen=True)
class GraphConfig:
    """Spatial neighbourhood graph of each section, over which the spatial embedding is computed.

    Built per section (cells of different sections are never neighbours) and stored in squidpy's
    keys (``obsp['spatial_connectivities']``, ``obsp['spatial_distances']``); a graph already
    present there is reused unless ``rebuild``.

    Examples
    --------
    >>> fusemap.integrate(sections, method="knn", n_neighbors=10)  # doctest: +SKIP
    >>> fusemap.integrate(sections, max_edge_length=50)  # drop Delaunay edges over 50 units  # doctest: +SKIP
    """

    method: Literal["delaunay", "knn", "radius"] = "delaunay"
    """'delaunay' (default; computed as squidpy does), 'knn' (``n_neighbors``) or 'radius'
    (``radius``)."""
    n_neighbors: int = 8
    """Neighbours per cell for ``method='knn'``."""
    radius: float | None = None
    """Radius in coordinate units for ``method='radius'``."""
    max_edge_length: float | None = None
    """Drop edges longer than this (coordinate units), e.g. Delaunay edges across tissue gaps."""
    rebuild: bool = False
    """Rebuild the graph even when squidpy's keys already hold one."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: per-section cell encoders, the spatial (graph) part, the shared gene embedding
    and the discriminators.

    These settings are fixed when a model is created and saved with it; a mapping
    (:func:`fusemap.map_query`) cannot change them.

    Examples
    --------
    >>> fusemap.integrate(sections, n_latent=32, spatial_mode="gcn")  # doctest: +SKIP
    """

    n_latent: int = 64
    """Width of the cell, spatial and gene embeddings."""
    n_hidden: int = 512
    """Width of the encoders' hidden layers."""
    n_hidden_layers: int = 2
    """Hidden layers of each cell encoder."""
    dropout: float = 0.2
    """Dropout in the encoders' hidden layers during training."""
    normalization: Literal["batch", "layer", "none"] = "layer"
    """Normalisation in the encoders' hidden layers. Batch statistics computed per section let each
    section's batches carry a signature the discriminators exploit, which stalls alignment; layer
    normalisation works per cell and has no such side channel."""
    spatial_mode: Literal["aggregate", "gcn"] = "aggregate"
    """'aggregate': parameter-free graph convolution Z_T = Â Z_c and decoding through a second
    aggregation; 'gcn': trainable graph convolution layers with a symmetric graph decoder."""
    gcn_layers: int = 1
    """Trainable layers in the graph encoder (and decoder) when ``spatial_mode='gcn'``."""
    n_disc_hidden: int = 256
    """Width of the discriminators' hidden layers."""
    variational: bool = True
    """Reconstruct from a reparameterised sample of q(z|x) during training, so the KL term makes
    the cell embedding a proper variational posterior mean; ``False`` reconstructs from the mean
    and the KL term only shrinks the embedding towards the origin."""
    section_gene_bias: bool = True
    """Learn a per-section offset for each gene in the decoder (technology-specific detection)."""
    cell_recon_weight: float = 1.0
    """Weight of an extra reconstruction of each cell from its own (unsmoothed) embedding."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, training phases, early stopping, alignment terms and balance weights.

    These are the only settings a mapping (:func:`fusemap.map_query`) may change.

    Examples
    --------
    >>> fusemap.integrate(sections, max_epochs=100, seed=1, device="cuda")  # doctest: +SKIP
    >>> fusemap.integrate(sections, mmd_weight=0)  # the paper's discriminator-only alignment  # doctest: +SKIP
    """

    max_epochs: int = 300
    """Maximum epochs of each of the two training phases."""
    batch_size: int = 256
    """Seed cells per section per step (their graph neighbours come along)."""
    max_epoch_steps: int | None = 16
    """Steps in one epoch at most. The epoch is the unit that validation, ``patience``,
    ``plateau_window`` and ``max_epochs`` count; once a section holds more than
    ``max_epoch_steps * batch_size`` training cells, an epoch takes that many batches of a fresh
    random order instead of a whole pass, so the stopping budget is counted in steps and an epoch
    costs the same at any size. On every development and report case a pass is at most 11 steps,
    so the cap changes nothing there; without it, an atlas of 8 sections of 125,000 cells would run
    ~420 steps an epoch, up to 300 epochs a phase, and wait ``patience`` = 20 such epochs (8,400
    steps) before stopping. ``None``: an epoch is a whole pass over the largest
    section (as in the paper)."""
    max_val_cells: int | None = 2048
    """Held-out cells per section that the validation loss is computed on at most (an evenly spaced,
    fixed subset of the random ``val_fraction`` split), so validation costs the same at any size.
    ``None``: all of them."""
    lr: float = 1e-3
    """Learning rate of the encoders, decoders and gene embedding (Adam)."""
    disc_lr: float = 1e-4
    """Discriminators learn ten times slower than the encoders: a fast discriminator makes the
    min-max oscillate (sections swap places instead of mixing)."""
    weight_decay: float = 0.0
    """Weight decay of the optimisers."""
    val_fraction: float = 0.15
    """Share of each section's cells held out to compute the validation loss for early stopping."""
    patience: int = 20
    """Epochs without improvement of the validation loss before a phase stops."""
    min_delta: float = 1e-3
    """Relative improvement of the validation loss that counts as improvement."""
    plateau_pretrain: float = 0.01
    """Phase 1 (pretraining, or the only phase) also ends once its best validation loss has improved
    by less than this fraction over the last ``plateau_window`` epochs (0: only ``patience`` ends
    it). The loss creeps down long after the embedding stops changing: on the STARmap mosaic, kNN
    label transfer and section mixing stopped rising after ~60 of phase 1's 152 epochs (an earlier
    run of benchmarks/performance/time_to_quality.py, in that folder's git history). On three
    development cases, ending phase 1 this way (at 37-52 epochs instead of 100-152) changed the scIB
    totals by -0.006 to +0.010 and shortened the whole training by 5-25 % (benchmarks/results/ablation,
    rows ``plateau_p1``). Ending it sooner still (3 %, rows ``p1_plateau_03``) left the scores
    unchanged, but phase 2 ran longer and the mosaic reached the authors' scores later."""
    plateau_balanced: float = 0.0
    """The loss rule of ``plateau_pretrain`` for phase 2 (the balanced phase); off by default:
    section mixing keeps improving there after the loss flattens, and ending phase 2 at 1 % (or
    0.5 %) per 10 epochs cost 0.01-0.04 of the scIB totals on the STARmap mosaic and thinned
    Xenium cases while training 3x faster (ablation rows ``plateau_both``, ``plateau_mid``).
    Phase 2 ends on ``plateau_mixing`` instead."""
    plateau_window: int = 10
    """Epochs over which ``plateau_pretrain`` / ``plateau_balanced`` compare the best validation loss."""
    plateau_mixing: float = 0.01
    """Phase 2 (the balanced phase) also ends once the sections have stopped mixing further on the
    held-out cells (:func:`fusemap.mixing.neighbour_mixing`, mean of the cell and spatial
    embeddings, after every epoch): over the last ``2 * mixing_window`` epochs its least-squares
    slope plus two standard errors, times ``mixing_window``, is below this. A noisy curve does not
    stop it. The loss keeps creeping long after the embedding stops changing: on the four
    development cases x 3 seeds (ablation rows ``mixing_plateau`` against ``default``) this ended
    phase 2 after 57-207 instead of 129-300 epochs (1.05-2.3x fewer epochs in all, median 1.65x;
    on one machine at seed 0, 2.0x and 1.7x less training time on the mosaic and Xenium cases) and
    changed the scIB totals by -0.015 to +0.003 (mean -0.004 cell, -0.002 spatial).
    0: off (``patience`` and ``plateau_balanced`` only, the earlier default)."""
    mixing_window: int = 20
    """Epochs per unit of rise that ``plateau_mixing`` bounds (the fit spans twice as many)."""
    restore_best: bool = True
    """At the end of a phase, go back to the weights of its best validation epoch."""
    adversarial: bool = True
    """Train the encoders against the section discriminators (off: no adversarial alignment)."""
    adversarial_loss: Literal["confusion", "reverse"] = "confusion"
    """'confusion': encoders push the discriminator towards a uniform guess (bounded below);
    'reverse': encoders maximise the discriminator's cross-entropy (the paper's min-max)."""
    adv_ratio: float = 0.5
    """λ_dis is set so the adversarial term starts at this fraction of the reconstruction term."""
    kl_weight: float = 1.0
    """Weight of the KL term of the variational cell encoders."""
    balance: bool = True
    """Compute per-cell balance weights after phase 1 and use them in phase 2."""
    balance_rule: Literal["relative_overlap", "overlap", "cosine"] = "relative_overlap"
    """How a cluster without counterpart is recognised: 'overlap', its nearest centroid in another
    section lies beyond its own spread; 'relative_overlap', the same measured against how far the
    section's cells typically lie from a counterpart (differs from 'overlap' only where pretraining
    left most of a section beyond its spread); 'cosine', centred centroids less alike than
    ``balance_low``/``balance_high`` (see fusemap.balance)."""
    balance_resolution: float = 1.0
    """Leiden resolution of the per-section clusters that balance weights are computed on."""
    balance_low: float = 0.5
    """Cosine similarity to the best counterpart cluster below which a cluster gets the floor weight."""
    balance_high: float = 0.8
    """Similarity above which a cluster gets full weight (linear in between)."""
    balance_floor: float = 0.05
    """Smallest balance weight a cell can get (its cluster has no counterpart)."""
    query_balance: Literal["novelty", "all"] = "novelty"
    """Query mapping: how the balanced phase weights cells. 'novelty': each query cluster by its
    median novelty against the reference (fusemap.novelty; all query sections pooled, so a state the
    reference lacks keeps a low weight even when several query sections share it), and each
    reference cluster by whether the query holds a counterpart; 'all': the integration rule, every
    section's clusters against every other section's. Xenium, two cell types held out of the
    reference, the third pseudo-section mapped: with 'novelty' their novelty AUROC was 0.917 (47 %
    of them above 0.99, none of the other cells) and accuracy on the other cells 0.860; on the
    STARmap mosaic (BZ14 onto BZ5 + BZ9) transfer accuracy equals that of 'all' (MLP 0.581)."""
    query_pretrain: Literal["reconstruction", "aligned"] = "aligned"
    """Query mapping, phase 1: 'aligned' aligns from the first epoch, as integration does;
    'reconstruction' trains the query encoders through the frozen reference decoder without
    alignment, so each query cluster lands where its expression puts it. 'reconstruction' lowered
    transfer accuracy on the STARmap mosaic (MLP 0.525 vs 0.581: the panels differ and the
    unaligned query looked new as a whole), so it is opt-in."""
    mmd_weight: float = 20.0
    """Weight of a maximum mean discrepancy between sections on both embeddings, beside the
    discriminators (fusemap.module.mmd_loss); 0 leaves alignment to the discriminators alone, as in
    the paper. The discriminators alone left each section offset (scIB batch score of thinned
    copies of one Xenium tissue 0.69 vs Harmony's 0.88; spatial kBET on the STARmap mosaic 0.11):
    see benchmarks/results/ablation/ABLATION.md."""
    mmd_phase: Literal["both", "balanced"] = "balanced"
    """Training phases with the MMD term: 'balanced' (phase 2 only; phase 1 pretrains as in the
    paper, so the reconstruction settles before the term pulls sections together) or 'both'.
    'both' scored about 0.01 higher (scIB total, STARmap mosaic 0.635 / 0.681 vs 0.630 / 0.668;
    thinned Xenium 0.707 / 0.694 vs 0.699 / 0.676) but trained twice as long (phase 1 ran to its
    300-epoch cap: 450 vs 295 epochs on the mosaic) and learned slowly in short runs. Without
    balance weights (one phase) the term acts from the first epoch."""
    structure_weight: float = 0.0
    """Weight of a neighbourhood-preservation term (opt-in; 0 leaves it out, as in the paper):
    within each section's seeds of a step, a cell's soft nearest neighbours in the cell embedding
    should be its soft nearest neighbours in its own section's expression PCA
    (fusemap.module.neighbourhood_loss). Reconstruction keeps what a linear read-out needs, not
    which cells are alike: on thinned copies of one Xenium tissue, 15-NN cell-type accuracy within
    a section was 0.80-0.83 in our embedding against 0.82-0.86 in the section's PCA.

    At 0.1 (balanced phase), on the four development cases x 3 seeds (rows ``structure_p2_0.1``
    against ``mixing_plateau`` of benchmarks/results/ablation/ABLATION.md), 15-NN transfer to the
    held-out section rose by 0.015-0.037 in accuracy and 0.022-0.061 in macro-F1 and the scIB
    totals moved by -0.009 to +0.008 (bio up, cell batch score -0.035 to +0.004). On the report
    cases it lost: scIB cell totals 0.000-0.023 lower, cell batch scores 0.014-0.108 lower, 15-NN
    transfer on the single-cell reference case 0.389 instead of 0.440 (benchmarks/results/
    report_cases, rows ``structure_p2_0.1``, seed 0 or seeds 0-1), so it is not the default. Use
    it where sections share one panel and differ in depth (thinned Xenium: transfer 0.857 / 0.831
    against 0.819 / 0.770). It costs 8-14 % per balanced-phase epoch
    (benchmarks/performance/results/structure_cost.csv)."""
    structure_phase: Literal["both", "balanced"] = "balanced"
    """Training phases with the neighbourhood term: 'balanced' (phase 2 only, once pretraining has
    aligned the sections) or 'both'. From the first epoch it kept each section's own structure
    apart before alignment could act: on the STARmap mosaic, whose sections measure different
    genes, the cell total fell to 0.533 (weight 0.1) from 0.628."""
    structure_k: int = 15
    """Perplexity (effective neighbours) of each cell's soft neighbourhood in that term."""
    structure_pcs: int = 30
    """Principal components of each section's expression that the term's neighbourhoods are read in."""
    shift_sections: bool = True
    """After training (and after mapping, for the query sections), move each section's embeddings
    by one vector so that mutual nearest neighbours across sections coincide on average
    (fusemap.shift). The minibatch alignment terms leave global offsets of a few percent of the
    embedding's spread; on thinned copies of one Xenium tissue the shifts were 4-5 % of it and
    removing them raised the scIB batch score of the cell embedding from 0.715 to 0.864 (its PCR
    comparison from 0.18 to 0.93). ``False`` keeps the encoders' output as it is (the paper's)."""
    seed: int = 0
    """Seed of the weights, the validation split and the minibatches: same seed, same result."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    progress: bool | None = None
    """Progress display: ``None`` picks it (a bar on a terminal or in Jupyter, log lines elsewhere;
    off when a ``callback`` is given), ``True`` always shows it, ``False`` never."""
    num_workers: int = 0
    """Background threads preparing minibatches (0: prepare in the training thread)."""
    precision: Literal["auto", "float32", "bfloat16"] = "float32"
    """Arithmetic of the cell encoders' matrix products during training (weights, losses, graph
    aggregation and all read-outs stay float32). 'float32' (default): the same seed gives the same
    result on every CPU. 'auto': bfloat16 on CPUs with native bfloat16 instructions (AVX512-BF16 or
    AMX; 1.2x faster training on the STARmap benchmark), float32 elsewhere."""
    patch_size: int | None = None
    """Seed cells of a minibatch come in spatially compact graph patches of about this many cells
    (several patches per batch), so their graph neighbourhoods overlap and each step encodes far
    fewer cells; ``None`` draws seeds independently at random (see fusemap.patches). Opt-in: the
    alignment terms then compare a few tissue regions of each section per step, and at seed 0 the
    scIB totals fell by 0.04-0.21 on the STARmap mosaic and thinned Xenium cases (patches of 8-64;
    benchmarks/results/ablation, rows ``patch_*``)."""


_SUBCONFIGS = {
    "preprocess": PreprocessConfig,
    "graph": GraphConfig,
    "model": ModelConfig,
    "train": TrainConfig,
}


@dataclass(frozen=True)
class FuseMapConfig:
    """The complete, immutable configuration of a run: four parts, each a frozen dataclass.

    Field names are unique across the parts, so any field can be set by name as a keyword to
    :func:`fusemap.integrate`, :class:`fusemap.FuseMap` or :meth:`with_overrides`, which routes
    it to its part. Values are checked (type and range) when a configuration is made this way,
    with a message naming the option. The configuration is saved with a model and restored by
    :meth:`FuseMap.load`.

    Parameters
    ----------
    preprocess
        :class:`PreprocessConfig`: from counts to the model's input.
    graph
        :class:`GraphConfig`: the spatial graph of each section.
    model
        :class:`ModelConfig`: the architecture.
    train
        :class:`TrainConfig`: optimisation, phases, alignment, balance weights, device.

    Examples
    --------
    >>> import fusemap
    >>> cfg = fusemap.FuseMapConfig().with_overrides(n_latent=32, max_epochs=100)
    >>> cfg.model.n_latent, cfg.train.max_epochs
    (32, 100)
    >>> fusemap.FuseMapConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The configuration as a nested dict (part -> field -> value), as saved in ``config.json``.

        Returns
        -------
        dict
            ``{'preprocess': {...}, 'graph': {...}, 'model': {...}, 'train': {...}}``.

        Examples
        --------
        >>> fusemap.FuseMapConfig().to_dict()["model"]["n_latent"]
        64
        """
        return {name: dataclasses.asdict(getattr(self, name)) for name in _SUBCONFIGS}

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, Any]]) -> "FuseMapConfig":
        """Make a configuration from its nested dict form (:meth:`to_dict`); missing fields keep
        their defaults.

        Parameters
        ----------
        d
            Part name -> {field: value}; parts may be missing.

        Returns
        -------
        FuseMapConfig

        Raises
        ------
        FuseMapInputError
            For an unknown field (for example, a model saved by a newer fusemap).

        Examples
        --------
        >>> fusemap.FuseMapConfig.from_dict({"train": {"max_epochs": 50}}).train.max_epochs
        50
        """
        parts = {}
        for name, sub in _SUBCONFIGS.items():
            given = dict(d.get(name, {}))
            known = {f.name for f in fields(sub)}
            unknown = set(given) - known
            if unknown:
                raise FuseMapInputError(
                    f"config[{name!r}] has unknown field(s) {sorted(unknown)}; known fields are "
                    f"{sorted(known)}. Was the model saved by a newer fusemap?"
                )
            parts[name] = sub(**given)
        return cls(**parts)

    def with_overrides(self, **overrides: Any) -> "FuseMapConfig":
        """A copy with single fields changed, each routed to the part that owns it, then checked.

        Parameters
        ----------
        **overrides
            Field names of any part with their new values (``n_latent=32``, ``method='knn'``).
            Whole numbers given as floats (as R and JSON send them) are accepted for integer
            fields.

        Returns
        -------
        FuseMapConfig
            The new configuration (this one is unchanged; it is immutable).

        Raises
        ------
        FuseMapInputError
            For an unknown option (the message lists the valid ones) or an invalid value.

        Examples
        --------
        >>> fusemap.FuseMapConfig().with_overrides(method="knn", n_neighbors=10).graph.method
        'knn'
        """
        if not overrides:
            return self
        owner = {f.name: name for name, sub in _SUBCONFIGS.items() for f in fields(sub)}
        types = {f.name: str(f.type) for sub in _SUBCONFIGS.values() for f in fields(sub)}
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            if key not in owner:
                raise FuseMapInputError(
                    f"unknown option {key!r}. Valid options: {sorted(owner)}."
                )
            grouped.setdefault(owner[key], {})[key] = _whole_to_int(value, types[key])
        parts = {name: replace(getattr(self, name), **grouped.get(name, {})) for name in _SUBCONFIGS}
        out = FuseMapConfig(**parts)
        out.check()
        return out

    def check(self) -> None:
        """Reject values that cannot work, naming the option and the allowed range.

        Called by :meth:`with_overrides` and whenever a model is set up; call it yourself after
        building the parts directly.

        Raises
        ------
        FuseMapInputError
            For the first invalid value, e.g. ``option dropout=1.5 is invalid; use a number in
            [0, 1).``

        Examples
        --------
        >>> fusemap.FuseMapConfig(model=fusemap.ModelConfig(dropout=1.5)).check()  # doctest: +SKIP
        Traceback (most recent call last):
        fusemap.errors.FuseMapInputError: option dropout=1.5 is invalid; use a number in [0, 1).
        """
        for name in _SUBCONFIGS:
            for f in fields(getattr(self, name)):
                _check_type(f.name, getattr(getattr(self, name), f.name), f.type)
        p, g, m, t = self.preprocess, self.graph, self.model, self.train
        rules = [
            (p.gene_case in ("ignore", "exact"), "gene_case", p.gene_case, "'ignore' or 'exact'"),
            (p.clip > 0, "clip", p.clip, "a positive number"),
            (p.target_sum is None or p.target_sum > 0, "target_sum", p.target_sum, "None or > 0"),
            (g.method in ("delaunay", "knn", "radius"), "method", g.method, "'delaunay', 'knn' or 'radius'"),
            (g.n_neighbors >= 1, "n_neighbors", g.n_neighbors, "an integer >= 1"),
            (g.method != "radius" or (g.radius is not None and g.radius > 0), "radius", g.radius,
             "a positive number when method='radius'"),
            (g.max_edge_length is None or g.max_edge_length > 0, "max_edge_length", g.max_edge_length, "None or > 0"),
            (m.n_latent >= 2, "n_latent", m.n_latent, "an integer >= 2"),
            (m.n_hidden >= 1, "n_hidden", m.n_hidden, "an integer >= 1"),
            (m.n_hidden_layers >= 1, "n_hidden_layers", m.n_hidden_layers, "an integer >= 1"),
            (0 <= m.dropout < 1, "dropout", m.dropout, "a number in [0, 1)"),
            (m.normalization in ("batch", "layer", "none"), "normalization", m.normalization,
             "'batch', 'layer' or 'none'"),
            (m.spatial_mode in ("aggregate", "gcn"), "spatial_mode", m.spatial_mode, "'aggregate' or 'gcn'"),
            (m.gcn_layers >= 1, "gcn_layers", m.gcn_layers, "an integer >= 1"),
            (m.cell_recon_weight >= 0, "cell_recon_weight", m.cell_recon_weight, "a number >= 0"),
            (t.max_epochs >= 1, "max_epochs", t.max_epochs, "an integer >= 1"),
            (t.batch_size >= 2, "batch_size", t.batch_size, "an integer >= 2"),
            (t.lr > 0 and t.disc_lr > 0, "lr/disc_lr", (t.lr, t.disc_lr), "positive numbers"),
            (0 < t.val_fraction < 0.5, "val_fraction", t.val_fraction, "a number in (0, 0.5)"),
            (t.patience >= 1, "patience", t.patience, "an integer >= 1"),
            (t.max_epoch_steps is None or t.max_epoch_steps >= 1, "max_epoch_steps", t.max_epoch_steps,
             "None or an integer >= 1"),
            (t.max_val_cells is None or t.max_val_cells >= 1, "max_val_cells", t.max_val_cells,
             "None or an integer >= 1"),
            (0 <= t.plateau_pretrain < 1 and 0 <= t.plateau_balanced < 1, "plateau_pretrain/plateau_balanced",
             (t.plateau_pretrain, t.plateau_balanced), "numbers in [0, 1)"),
            (t.plateau_window >= 1, "plateau_window", t.plateau_window, "an integer >= 1"),
            (0 <= t.plateau_mixing < 1, "plateau_mixing", t.plateau_mixing, "a number in [0, 1)"),
            (t.mixing_window >= 1, "mixing_window", t.mixing_window, "an integer >= 1"),
            (t.adversarial_loss in ("confusion", "reverse"), "adversarial_loss", t.adversarial_loss,
             "'confusion' or 'reverse'"),
            (t.adv_ratio >= 0, "adv_ratio", t.adv_ratio, "a number >= 0"),
            (0 <= t.balance_floor <= 1, "balance_floor", t.balance_floor, "a number in [0, 1]"),
            (t.balance_low < t.balance_high, "balance_low/balance_high", (t.balance_low, t.balance_high),
             "balance_low < balance_high"),
            (t.balance_rule in ("relative_overlap", "overlap", "cosine"), "balance_rule", t.balance_rule,
             "'relative_overlap', 'overlap' or 'cosine'"),
            (t.query_balance in ("novelty", "all"), "query_balance", t.query_balance, "'novelty' or 'all'"),
            (t.query_pretrain in ("reconstruction", "aligned"), "query_pretrain", t.query_pretrain,
             "'reconstruction' or 'aligned'"),
            (t.mmd_weight >= 0, "mmd_weight", t.mmd_weight, "a number >= 0"),
            (t.mmd_phase in ("both", "balanced"), "mmd_phase", t.mmd_phase, "'both' or 'balanced'"),
            (t.structure_weight >= 0, "structure_weight", t.structure_weight, "a number >= 0"),
            (t.structure_phase in ("both", "balanced"), "structure_phase", t.structure_phase, "'both' or 'balanced'"),
            (t.structure_k >= 1, "structure_k", t.structure_k, "an integer >= 1"),
            (t.structure_pcs >= 1, "structure_pcs", t.structure_pcs, "an integer >= 1"),
            (t.num_workers >= 0, "num_workers", t.num_workers, "an integer >= 0"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(t.device)) is not None, "device", t.device,
             "'auto', 'cpu', 'cuda' or 'cuda:N'"),
            (t.precision in ("auto", "float32", "bfloat16"), "precision", t.precision,
             "'auto', 'float32' or 'bfloat16'"),
            (t.patch_size is None or t.patch_size >= 2, "patch_size", t.patch_size, "None or an integer >= 2"),
        ]
        for ok, name, value, allowed in rules:
            if not ok:
                raise FuseMapInputError(f"option {name}={value!r} is invalid; use {allowed}.")


_KINDS = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def _whole_to_int(value: Any, annotation: str) -> Any:
    """64.0 -> 64 for an integer option (R and JSON send whole numbers as doubles); 2.5 stays, and
    :func:`_check_type` names it."""
    kinds = [k.strip() for k in annotation.split("|")]
    if "int" in kinds and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_type(name: str, value: Any, annotation: str) -> None:
    """``n_latent='x'`` -> a message naming the option, not a TypeError deep inside the model."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if "None" in kinds and value is None:
        return
    if any(k.startswith("Literal") for k in kinds):
        return  # the value rules below name the allowed choices
    want = next((k for k in kinds if k in _KINDS), None)
    if want is None:
        return
    if want == "bool":
        ok = isinstance(value, (bool, np.bool_))
    elif want == "int":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif want == "float":
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        noun = {"bool": "True or False", "int": "an integer", "float": "a number", "str": "a string"}[want]
        if "None" in kinds:
            noun += " or None"
        raise FuseMapInputError(f"option {name}={value!r} ({type(value).__name__}) is invalid; use {noun}.")


def make_config(config: FuseMapConfig | dict | None = None, **overrides: Any) -> FuseMapConfig:
    """Accept a config object, a nested dict (as saved in config.json) or nothing, plus overrides."""
    if config is None:
        base = FuseMapConfig()
    elif isinstance(config, FuseMapConfig):
        base = config
    elif isinstance(config, dict):
        base = FuseMapConfig.from_dict(config)
    else:
        raise FuseMapInputError(
            f"config must be a FuseMapConfig, a dict or None; found {type(config).__name__}."
        )
    out = base.with_overrides(**overrides)
    out.check()
    return out
