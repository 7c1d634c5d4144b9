"""Trainable pixel classifier: a random forest on 3D multiscale features, trained from scribbles.

Saved with :mod:`skops.io` (no pickle): loading checks every type in the file against an explicit
allow-list and refuses anything else, so a tampered or foreign file cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numba as nb
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from volrecon.errors import InputError, ParameterError
from volrecon.phases import REGIONS
from volrecon.segment.features import FeatureSettings, compute_features, feature_channels, feature_names, feature_reach

FORMAT = "volrecon-pixel-classifier"
FORMAT_VERSION = 1

_TRUSTED = frozenset(
    {
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.int64",
        "numpy.random.mtrand.RandomState",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
    }
)
"""Types a classifier file may contain (checked before anything is constructed)."""

VOTE_ROWS = 16384
"""Voxels voted at a time: their feature rows and packed scores (~1.5 MB) stay in a core's cache."""

SEPARATOR_BULK = "separator_bulk"
"""Decision region of :func:`decide_in_regions`: the separator farther from the separator|cathode
surface than the cathode's contact reach (:func:`volrecon.segment.regional.contact_reach` at the
classifier's finest feature scale)."""

DECISION_REGIONS: Mapping[str, int] = MappingProxyType({**REGIONS, SEPARATOR_BULK: 255})
"""Region name -> value of the regions :func:`decide_in_regions` reads: the layers
(:data:`volrecon.phases.REGIONS`) and :data:`SEPARATOR_BULK`."""

IMPOSSIBLE_PHASES: Mapping[str, tuple[str, ...]] = {
    "cathode": ("separator", "sodium", "sei", "collector"),
    "separator": ("sodium", "sei", "collector"),
    SEPARATOR_BULK: ("sodium", "sei", "collector", "active", "binder"),
}
"""Phases (by their default names, see :data:`volrecon.phases.PHASES`) that cannot exist in a
cell layer: sodium metal and its SEI lie beyond the separator, the collector foil beneath the
cathode, the separator membrane between the two electrodes.  A pixel classifier sees grey values
and texture only: frozen electrolyte in the cathode looks like sodium metal, separator fibres like
the SEI; within a detected layer such a label takes the layer's most probable other phase.  The
cathode's solids (active material, carbon-binder domain) lie in the separator only where the
cathode meets it: the detected separator|cathode surface follows the interface to a voxel or two,
so a particle's cap may lie beyond it, within the contact reach
(:func:`volrecon.segment.regional.contact_reach` at the classifier's finest feature scale); farther
into the separator (:data:`SEPARATOR_BULK`) they are the classifier's errors (the partial-volume
grey where the fibre mat meets the electrolyte, and the SEI's edge, read as binder: 8 % of the
separator's voxels of the real-corrected carbonate 24x192 seed 0 phantom, binder or active).  Labels outside these
names (renamed or added phases) are never replaced."""


CHOICE_BITS = 8
"""Bits of one label in packed choices (:func:`pack_choices`) by default; 4 where every label is
below 16 (:func:`choice_bits`)."""


@dataclass(frozen=True)
class ForestSettings:
    """Random-forest size (prediction time grows with ``n_trees`` × depth).

    Attributes
    ----------
    n_trees : int
        Number of trees.
    max_depth : int
        Depth limit of each tree.
    min_samples_leaf : int
        Smallest leaf.
    max_samples_per_phase : int
        Scribbled voxels used per phase (random subsample; all when fewer).
    seed : int
        Random seed (training is deterministic for a given seed).
    """

    n_trees: int = 12
    max_depth: int = 14
    min_samples_leaf: int = 3
    max_samples_per_phase: int = 20000
    seed: int = 0


@dataclass
class PixelClassifier:
    """A trained pixel classifier with the settings needed to apply it.

    Attributes
    ----------
    features : FeatureSettings
        Features the forest was trained on.
    phase_names : dict
        Phase name -> label value the classifier outputs.
    voxel_size_nm : tuple of float
        Voxel size of the training image (scales are physical, so other voxel sizes work).
    normalisation : tuple of float
        ``(low, high)`` grey values of the training image mapped to 0 and 1 (1st/99th
        percentile); images it is applied to are normalised by their own percentiles.
    forest : sklearn.ensemble.RandomForestClassifier
        The trained model; ``classes_`` are label values.
    info : dict
        Training summary (samples per phase, out-of-bag accuracy, feature importances).
    """

    features: FeatureSettings
    phase_names: dict[str, int]
    voxel_size_nm: tuple[float, float, float]
    normalisation: tuple[float, float]
    forest: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> np.ndarray:
        """Label values, in the order of the forest's probability columns."""
        return np.asarray(self.forest.classes_)

    def reach(self, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
        """Overlap (voxels per side, ``(z, y, x)``) chunked application needs."""
        return feature_reach(self.features, voxel_size_nm)

    def predict_block(self, image: np.ndarray, *, voxel_size_nm: Sequence[float],
                      core: tuple[slice, slice, slice] | None = None,
                      exclude: Sequence[int] = (), groups: Sequence[Sequence[int]] = (),
                      bits: int = CHOICE_BITS) -> np.ndarray:
        """Label values of a (padded) block of the normalised image.

        Parameters
        ----------
        image : ndarray (z, y, x)
            Normalised grey values (see :func:`normalise`), padded by :meth:`reach`.
        voxel_size_nm : 3 floats
            Voxel size of ``image``.
        core : tuple of slices, optional
            Part of the block to classify (features use the whole block).
        exclude : sequence of int
            Label values never output (the next most probable class is taken instead), e.g.
            ``frame`` where the frame is known from elsewhere.
        groups : sequence of sequences of int
            Label sets (e.g. from :func:`choice_groups`): with them, each voxel's most probable
            label of each set is returned too, packed with the overall choice (:func:`pack_choices`).
        bits : int
            Bits of one label in the packed choices (:func:`choice_bits`).

        Returns
        -------
        ndarray uint8 (or uint16 for large label values), the core's shape; packed choices
        (:func:`choice_dtype`) with ``groups``
        """
        channels = feature_channels(image, self.features, voxel_size_nm=voxel_size_nm, core=core)
        return self.predict_channels(channels, exclude=exclude, groups=groups, bits=bits).reshape(channels[0].shape)

    def predict_channels(self, channels: Sequence[np.ndarray], *, exclude: Sequence[int] = (),
                         groups: Sequence[Sequence[int]] = (), bits: int = CHOICE_BITS) -> np.ndarray:
        """Label value of each voxel (C order) of feature channels of one shape.

        The same vote as :meth:`predict_table`, :data:`VOTE_ROWS` voxels at a time: their values
        are copied channel by channel (contiguous runs) into a small ``(channels, rows)`` buffer,
        the layout the vote reads (:class:`FlatForest`), so no row table is ever written.

        Parameters
        ----------
        channels : sequence of ndarray
            One array per feature, all of one shape, in the order the forest was trained on.
        exclude : sequence of int
            Label values never output (the next most probable class is taken instead).
        groups : sequence of sequences of int
            Label sets whose most probable member is returned too (see :meth:`predict_block`).
        bits : int
            Bits of one label in the packed choices.

        Returns
        -------
        ndarray (1D)
            The label value of each voxel, in C order of the channels' shape (packed choices,
            :func:`choice_dtype`, with ``groups``).
        """
        flat = [np.ravel(c) for c in channels]
        n = flat[0].size if flat else 0
        if len(flat) != self.forest.n_features_in_:
            raise ParameterError(f"{len(flat)} feature channels: the classifier reads {self.forest.n_features_in_}")
        self._check_groups(groups, bits)
        out = np.empty(n, choice_dtype(len(groups), bits) if groups else self._label_dtype())
        buf = np.empty((len(flat), min(n, VOTE_ROWS)), np.float32)
        for r0 in range(0, n, VOTE_ROWS):
            m = min(n, r0 + VOTE_ROWS) - r0
            for i, f in enumerate(flat):
                buf[i, :m] = f[r0: r0 + m]
            out[r0: r0 + m] = self._vote(buf[:, :m], exclude, groups, bits)
        return out

    def predict_table(self, x: np.ndarray, *, exclude: Sequence[int] = (),
                      groups: Sequence[Sequence[int]] = (), bits: int = CHOICE_BITS) -> np.ndarray:
        """Label value of each row of a C-ordered float32 feature table.

        Soft vote: the class probabilities of the leaf each voxel reaches (quantised to 1/255)
        are summed over the trees, the most probable class wins (the lowest label on a tie).
        Rows are voted :data:`VOTE_ROWS` at a time, so that the scores stay in cache.  With
        ``groups``, packed choices (see :meth:`predict_block`).
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._check_groups(groups, bits)
        out = np.empty(x.shape[0], choice_dtype(len(groups), bits) if groups else self._label_dtype())
        for r0 in range(0, x.shape[0], VOTE_ROWS):
            out[r0: r0 + VOTE_ROWS] = self._vote(x[r0: r0 + VOTE_ROWS].T, exclude, groups, bits)
        return out

    def _label_dtype(self) -> type:
        return np.uint8 if self.classes.max() < 256 else np.uint16

    def _check_groups(self, groups: Sequence[Sequence[int]], bits: int) -> None:
        if groups and self.classes.max() >= 1 << bits:
            raise ParameterError(f"label groups with labels up to {self.classes.max()}: only labels below "
                                 f"{1 << bits} can be packed in {bits} bits")
        choice_dtype(len(groups), bits)

    def _vote(self, xt: np.ndarray, exclude: Sequence[int], groups: Sequence[Sequence[int]] = (),
              bits: int = CHOICE_BITS) -> np.ndarray:
        """Soft vote of the trees (:meth:`FlatForest.choose`) on the float32 ``(features, voxels)``
        values ``xt``; packed choices with ``groups``."""
        member = self._members(tuple(int(v) for v in exclude), tuple(tuple(int(v) for v in g) for g in groups))
        out = np.empty(xt.shape[1], choice_dtype(len(groups), bits) if groups else self._label_dtype())
        self._flat_forest().choose(xt, member, self.classes.astype(np.int64), bits, out)
        return out

    def _members(self, exclude: tuple[int, ...], groups: tuple[tuple[int, ...], ...]) -> np.ndarray:
        """``(1 + len(groups), classes)`` bool: the columns each choice is taken among (cached).

        Row 0: every class but ``exclude``; then each group's classes.  A row with no class
        allows them all.
        """
        cache = self.__dict__.setdefault("_member_cache", {})
        key = (exclude, groups)
        if key not in cache:
            rows = [~np.isin(self.classes, exclude)] + [np.isin(self.classes, g) for g in groups]
            cache[key] = np.array([r if r.any() else np.ones_like(r) for r in rows], dtype=np.bool_)
        return cache[key]

    def _flat_forest(self) -> "FlatForest":
        """The forest laid out for the vote (cached; see :class:`FlatForest`)."""
        cached = self.__dict__.get("_flat")
        if cached is None:
            cached = self.__dict__["_flat"] = FlatForest.of(self.forest)
        return cached

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the classifier to ``path`` (skops format, conventionally ``*.skops``)."""
        import skops.io as sio

        path = Path(path)
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "features": self.features.to_dict(),
            "phase_names": {k: int(v) for k, v in self.phase_names.items()},
            "voxel_size_nm": [float(v) for v in self.voxel_size_nm],
            "normalisation": [float(v) for v in self.normalisation],
            "info": self.info,
        }
        payload = {"header": json.dumps(header), "forest": self.forest}
        try:
            sio.dump(payload, path)
        except OSError as exc:
            raise InputError(f"{path}: cannot write the classifier ({exc.strerror or exc})") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PixelClassifier":
        """Read a classifier written by :meth:`save`, refusing any file with untrusted content.

        Raises
        ------
        InputError
            Missing or unreadable file, a file that is not a volrecon classifier, or a file
            containing types outside the allow-list (possibly tampered with).
        """
        import skops.io as sio

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such classifier file; train one with `volrecon train`")
        try:
            found = set(sio.get_untrusted_types(file=path))
        except Exception as exc:  # noqa: BLE001 - corrupt zip, bad schema …
            raise InputError(f"{path}: not a volrecon classifier file ({type(exc).__name__}); retrain it") from None
        bad = sorted(found - _TRUSTED)
        if bad:
            raise InputError(
                f"{path}: refused, the file contains untrusted types {', '.join(bad)}; "
                "only load classifiers you trained with volrecon"
            )
        try:
            payload = sio.load(path, trusted=sorted(found))
            header = json.loads(payload["header"])
            forest = payload["forest"]
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: not a volrecon classifier file ({type(exc).__name__}); retrain it") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InputError(f"{path}: not a volrecon classifier file; retrain it with `volrecon train`")
        if int(header.get("version", 0)) > FORMAT_VERSION:
            raise InputError(f"{path}: written by a newer volrecon (format {header['version']}); upgrade volrecon")
        from sklearn.ensemble import RandomForestClassifier

        if not isinstance(forest, RandomForestClassifier):
            raise InputError(f"{path}: the model is not a random forest; retrain it with `volrecon train`")
        features = FeatureSettings.from_dict(header["features"])
        n = len(feature_names(features))
        if getattr(forest, "n_features_in_", n) != n:
            raise InputError(f"{path}: the model expects {forest.n_features_in_} features, its settings give {n}; retrain it")
        return cls(
            features=features,
            phase_names={str(k): int(v) for k, v in header["phase_names"].items()},
            voxel_size_nm=tuple(float(v) for v in header["voxel_size_nm"]),  # type: ignore[arg-type]
            normalisation=tuple(float(v) for v in header["normalisation"]),  # type: ignore[arg-type]
            forest=forest,
            info=dict(header.get("info", {})),
        )


_WORD = 32
"""Leaves per mask word: 32, so that a split is tested on eight voxels at a time (the float32
comparison and the 32-bit masks fill the same 256-bit registers; 64-bit words took four)."""

_MASK_TYPE = np.uint32
"""Type of a mask word (:data:`_WORD` bits)."""

_MASK_LEAVES = 1024
"""Most leaves of a tree the bit masks can take (``_MASK_LEAVES // _WORD`` words per voxel)."""

_BIT_VOTE_LEAVES = 128
"""Trees of at most this many leaves (four 32-bit mask words) are voted by bit masks (:func:`_small_trees`);
bigger ones take scikit-learn's own traversal (``tree.apply``).

Measured (one thread, CPU-s per tree over 524 288 voxels of the 64x256x256 speed chunk, medians of 3
interleaved runs, trees of classifiers trained on the diglyme phantom, max depth 14): 34-57 leaves,
masks 0.007-0.010 vs ``apply`` 0.010-0.015; 62-110 leaves, 0.010-0.015 vs 0.012-0.016; 218-333
leaves, 0.023-0.035 vs 0.014-0.021; 419-837 leaves, 0.059-0.113 vs 0.024-0.030.  Every split is
tested on every voxel, so the masks cost grows with the leaves (about 0.09 ns per leaf and voxel)
while a walk grows with the depth: past about 128 leaves the walk wins.  (Measured with 64-bit
words, before the 32-bit ones, which made the masks' tests ~15 % cheaper: not re-measured.)"""


@dataclass(frozen=True)
class FlatForest:
    """A fitted random forest laid out for the soft vote of :meth:`PixelClassifier.predict_table`.

    Every tree's class probabilities are quantised to 0..255 and stored in 16-bit lanes, four
    lanes to a 64-bit word (``leaf``, one row per node of every tree): adding the words of up to
    257 trees adds the lanes without carries, so the soft vote is a handful of integer additions
    per voxel.

    Trees of at most :data:`_BIT_VOTE_LEAVES` leaves are voted without walking them (the bit-vector
    scheme of QuickScorer, Lucchese et al., SIGIR 2015): number a tree's leaves left to right;
    each split whose test fails (the value goes right) rules out the leaves of its left subtree,
    and the leaf a voxel reaches is the leftmost one no failed split ruled out.  Every split is
    tested on every voxel, branch-free and in runs of voxels the core vectorises, where a walk
    down the tree pays a mispredicted branch at most levels.  A tree's leaves take one bit each
    in ``ceil(leaves / 32)`` 32-bit words (:data:`_WORD`); a split's left subtree is a run of consecutive leaves,
    so a failed test clears part of its first and last words and the whole words between.  The
    tests are scikit-learn's: a value goes left when at most the float64 threshold (compared in
    float32 against the largest float32 not above it: the same outcome for every float32 value),
    a NaN by the split's ``missing_go_to_left``; so the leaves, and the votes, are the same as
    the forest's own.

    Attributes
    ----------
    feature, threshold, nan_right : ndarray
        The splits of the bit-voted trees, tree after tree: feature read, float32 threshold, NaN
        goes right.
    word_lo, word_hi, mask_lo, mask_hi : ndarray
        The words a failed test of each split touches (``word_lo..word_hi`` of its tree's words):
        the leaves that survive in its first (``mask_lo``) and last (``mask_hi``) word (bit ``k``
        of word ``w``: leaf ``32 w + k`` from the left); the words between are cleared.
    starts : ndarray of int64
        Tree ``t``'s splits are ``starts[t]:starts[t + 1]``.
    leaf_start : ndarray of int64
        Tree ``t``'s leaves are ``leaf_row[leaf_start[t]:leaf_start[t + 1]]`` (padded to whole words).
    leaf_row : ndarray of int64
        Row of ``leaf`` of each bit-voted tree's ``k``-th leaf.
    leaf : ndarray (nodes, words) uint64
        Packed class probabilities of every node of every tree (bit-voted trees first).
    walked : list of (tree, int)
        The trees with more leaves (``sklearn.tree._tree.Tree``) and their first row in ``leaf``.
    """

    feature: np.ndarray
    threshold: np.ndarray
    nan_right: np.ndarray
    word_lo: np.ndarray
    word_hi: np.ndarray
    mask_lo: np.ndarray
    mask_hi: np.ndarray
    starts: np.ndarray
    leaf_start: np.ndarray
    leaf_row: np.ndarray
    leaf: np.ndarray
    walked: list[tuple[Any, int]]

    @classmethod
    def of(cls, forest: Any, bit_vote_leaves: int | None = None) -> "FlatForest":
        """The layout of a fitted ``RandomForestClassifier``; trees of at most ``bit_vote_leaves``
        (default :data:`_BIT_VOTE_LEAVES`, at most :data:`_MASK_LEAVES`) leaves are bit-voted.

        Raises
        ------
        ParameterError
            More than 257 trees (the packed lanes would carry).
        """
        estimators = forest.estimators_
        if len(estimators) > 257:
            raise ParameterError(f"{len(estimators)} trees: at most 257 are supported")
        limit = min(_BIT_VOTE_LEAVES if bit_vote_leaves is None else bit_vote_leaves, _MASK_LEAVES)
        n_classes = len(forest.classes_)
        lanes = 4 * (-(-n_classes // 4))
        small = [e.tree_ for e in estimators if e.tree_.n_leaves <= limit]
        big = [e.tree_ for e in estimators if e.tree_.n_leaves > limit]
        leaf, splits, leaf_rows, walked, starts, leaf_start, row = [], [], [], [], [0], [0], 0
        for tree in small + big:
            value = tree.value[:, 0, :].astype(np.float64)
            value /= np.maximum(value.sum(axis=1, keepdims=True), 1e-12)
            q = np.zeros((value.shape[0], lanes), "<u2")
            q[:, :n_classes] = np.rint(value * 255)
            leaf.append(np.ascontiguousarray(q).view("<u8"))
            if tree.n_leaves <= limit:
                nodes, leaves = _leaf_masks(tree)
                splits += nodes
                starts.append(len(splits))
                padded = _WORD * -(-len(leaves) // _WORD)
                leaf_rows.append(np.pad(np.asarray(leaves, np.int64) + row, (0, padded - len(leaves))))
                leaf_start.append(leaf_start[-1] + padded)
            else:
                walked.append((tree, row))
            row += value.shape[0]
        columns = list(zip(*splits)) if splits else [()] * 7
        # explicit types: the masks are unsigned words
        f, t, nr, wl, wh, ml, mh = (np.array(c, dtype=d) for c, d in zip(columns, (
            np.int64, np.float64, np.bool_, np.int64, np.int64, _MASK_TYPE, _MASK_TYPE)))
        return cls(f, _float32_at_most(t), nr, wl, wh, ml, mh, np.asarray(starts, np.int64), np.asarray(leaf_start, np.int64),
                   np.concatenate(leaf_rows) if leaf_rows else np.zeros(0, np.int64),
                   np.ascontiguousarray(np.concatenate(leaf)), walked)

    def vote(self, xt: np.ndarray) -> np.ndarray:
        """Summed packed probabilities ``(voxels, words)`` uint64 of the float32 ``(features, voxels)`` values."""
        score = np.empty((xt.shape[1], self.leaf.shape[1]), np.uint64)
        self._run(xt, np.zeros((0, 0), np.bool_), np.zeros(0, np.int64), 0, score, np.zeros(0, np.uint8))
        return score

    def choose(self, xt: np.ndarray, member: np.ndarray, labels: np.ndarray, bits: int, out: np.ndarray) -> None:
        """``out[i]``: voxel ``i``'s most voted label of each row of ``member`` (packed, as :func:`_pick`
        writes them) from the float32 ``(features, voxels)`` values ``xt``, without the whole score table."""
        self._run(xt, member, labels, bits, np.zeros((0, self.leaf.shape[1]), np.uint64), out)

    def _run(self, xt: np.ndarray, member: np.ndarray, labels: np.ndarray, bits: int, score: np.ndarray,
             out: np.ndarray) -> None:
        """The vote (:func:`_small_trees`), the walked trees' sum passed in first."""
        extra = np.zeros((0, self.leaf.shape[1]), np.uint64)
        if self.walked:
            extra = np.zeros((xt.shape[1], self.leaf.shape[1]), np.uint64)
            part = np.empty_like(extra)
            for tree, row in self.walked:
                # gather into a reused buffer: far cheaper than ``extra += table[leaves]``
                np.take(self.leaf, tree.apply(xt.T) + row, axis=0, out=part)
                extra += part
        # contiguous rows of voxels: the split tests vectorise
        _small_trees(np.ascontiguousarray(xt), self.feature, self.threshold, self.nan_right, self.word_lo,
                     self.word_hi, self.mask_lo, self.mask_hi, self.starts, self.leaf_start, self.leaf_row,
                     self.leaf, extra, member, labels, bits, score, out)


def _leaf_masks(tree: Any) -> tuple[list[tuple[int, float, bool, int, int, int, int]], list[int]]:
    """A tree's splits as ``(feature, threshold, nan_right, word_lo, word_hi, mask_lo, mask_hi)``
    (see :class:`FlatForest`: a failed test rules out the leaves of the split's left subtree,
    leaves numbered left to right) and its leaves' node ids in that order."""
    left, right = tree.children_left, tree.children_right
    nan_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, np.uint8))
    leaves: list[int] = []
    first: dict[int, int] = {}
    # depth first, left before right: each subtree's leaves get consecutive numbers
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        first[node] = len(leaves)
        if left[node] < 0:
            leaves.append(int(node))
        else:
            stack += [int(right[node]), int(left[node])]
    full = (1 << _WORD) - 1
    splits = []
    for node in order:
        if left[node] >= 0:
            lo, hi = first[int(left[node])], first[int(right[node])]  # ruled out: leaves lo..hi-1
            w_lo, w_hi = lo // _WORD, (hi - 1) // _WORD
            ruled_out = ((1 << hi) - 1) ^ ((1 << lo) - 1)
            mask_lo = full ^ ((ruled_out >> (_WORD * w_lo)) & full)
            mask_hi = full ^ ((ruled_out >> (_WORD * w_hi)) & full)
            splits.append((int(tree.feature[node]), float(tree.threshold[node]), not nan_left[node],
                           w_lo, w_hi, mask_lo, mask_hi))
    return splits, leaves


def _float32_at_most(t: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 value: ``x <= t`` iff ``x <= result`` for every float32 ``x``."""
    f = t.astype(np.float32)
    above = f.astype(np.float64) > t
    f[above] = np.nextafter(f[above], np.float32(-np.inf))
    return f


_RUN = 1024
"""Voxels a split is tested on at a time (their masks stay in the first-level cache)."""

@intrinsic
def _trailing_zeros(typingctx: Any, word: Any) -> Any:
    """Position of the lowest set bit of a nonzero unsigned integer (the processor's count of trailing zeros)."""
    sig = word(word)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@nb.njit(cache=True, nogil=True)
def _small_trees(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray, nan_right: np.ndarray,
                 word_lo: np.ndarray, word_hi: np.ndarray, mask_lo: np.ndarray, mask_hi: np.ndarray,
                 starts: np.ndarray, leaf_start: np.ndarray, leaf_row: np.ndarray, leaf: np.ndarray,
                 extra: np.ndarray, member: np.ndarray, labels: np.ndarray, bits: int,
                 score: np.ndarray, out: np.ndarray) -> None:
    """The soft vote of every bit-voted tree (see :class:`FlatForest`) on the ``(features, voxels)``
    values ``x``, :data:`_RUN` voxels at a time.

    A run's packed probabilities (``extra``'s rows where it has any: the walked trees' sum) plus
    those of the leaf each voxel reaches in each tree are summed in a run-sized buffer that stays
    in the first-level cache; then written to ``score`` (voxels, words) when ``member`` has no
    rows, else picked straight into ``out`` (:func:`_pick`).
    """
    n = x.shape[1]
    words = leaf.shape[1]
    most = 1
    for t in range(starts.size - 1):
        most = max(most, (leaf_start[t + 1] - leaf_start[t]) // _WORD)
    alive = np.empty((most, _RUN), _MASK_TYPE)
    run = np.empty((_RUN, words), np.uint64)
    everything = _MASK_TYPE((1 << _WORD) - 1)
    none = _MASK_TYPE(0)
    for r0 in range(0, n, _RUN):
        m = min(_RUN, n - r0)
        if extra.shape[0]:
            run[:m] = extra[r0:r0 + m]
        else:
            run[:m] = 0
        for t in range(starts.size - 1):
            alive[:(leaf_start[t + 1] - leaf_start[t]) // _WORD, :m] = everything
            for k in range(starts[t], starts[t + 1]):
                row = x[feature[k], r0:r0 + m]
                th = threshold[k]
                w0, w1 = word_lo[k], word_hi[k]
                for w in range(w0, w1 + 1):
                    mk = mask_lo[k] if w == w0 else (mask_hi[k] if w == w1 else none)
                    # one comparison either way (NaN fails ``<=`` and ``>`` alike), no test for NaN
                    if nan_right[k]:
                        for j in range(m):
                            alive[w, j] &= everything if row[j] <= th else mk
                    else:
                        for j in range(m):
                            alive[w, j] &= mk if row[j] > th else everything
            base = leaf_start[t]
            for j in range(m):
                w = 0
                b = alive[0, j]
                while b == 0:  # the leaf reached is never ruled out: some word is not empty
                    w += 1
                    b = alive[w, j]
                r = leaf_row[base + _WORD * w + _trailing_zeros(b)]
                for v in range(words):
                    run[j, v] += leaf[r, v]
        if member.shape[0]:
            _pick(run[:m], member, labels, bits, out[r0:r0 + m])
        else:
            score[r0:r0 + m] = run[:m]


@nb.njit(cache=True, nogil=True)
def _pick(score: np.ndarray, member: np.ndarray, labels: np.ndarray, bits: int, out: np.ndarray) -> None:
    """``out[r]``: for each set ``s`` of ``member``, the label of the most voted class of row ``r``
    of ``score`` (packed 16-bit lanes; the first on a tie, as ``argmax``) in bits ``bits * s`` onwards."""
    k = member.shape[1]
    for r in range(score.shape[0]):
        packed = 0
        for s in range(member.shape[0]):
            best, top = 0, np.int64(-1)
            for c in range(k):
                if member[s, c]:
                    vote = np.int64((score[r, c >> 2] >> np.uint64(16 * (c & 3))) & np.uint64(0xFFFF))
                    if vote > top:
                        best, top = c, vote
            packed |= labels[best] << (bits * s)
        out[r] = packed


@dataclass(frozen=True)
class LayerRule:
    """Which labels a detected layer replaces (:func:`layer_rules`), and by what.

    Attributes
    ----------
    region : str
        Region name (:data:`DECISION_REGIONS`).
    impossible : tuple of int
        Label values that cannot exist in the layer.
    allowed : tuple of int
        Label values a replacement is chosen among: every named phase but ``impossible`` and
        ``frame``.
    """

    region: str
    impossible: tuple[int, ...]
    allowed: tuple[int, ...]


def layer_rules(phase_names: Mapping[str, int]) -> tuple[LayerRule, ...]:
    """The rules of :data:`IMPOSSIBLE_PHASES` in the label values of ``phase_names``.

    A layer none of whose impossible phases is named is left out (nothing to replace there).
    """
    out = []
    for region, phases in IMPOSSIBLE_PHASES.items():
        bad = tuple(sorted({int(phase_names[p]) for p in phases if p in phase_names}))
        skip = set(bad) | ({int(phase_names["frame"])} if "frame" in phase_names else set())
        allowed = tuple(sorted({int(v) for v in phase_names.values()} - skip - {0}))
        if bad and allowed:
            out.append(LayerRule(region, bad, allowed))
    return tuple(out)


def choice_groups(rules: Sequence[LayerRule]) -> list[tuple[int, ...]]:
    """The distinct ``allowed`` sets of ``rules``, in order: the label groups the classifier
    chooses among (:meth:`PixelClassifier.predict_block`); layers that allow the same labels share one."""
    return list(dict.fromkeys(r.allowed for r in rules))


def choice_bits(max_label: int) -> int:
    """Bits of one label in packed choices: 4 where every label value is below 16, else 8."""
    return 4 if max_label < 16 else CHOICE_BITS


def choice_dtype(n_groups: int, bits: int = CHOICE_BITS) -> type:
    """Unsigned dtype holding the overall choice and ``n_groups`` group choices of ``bits`` bits."""
    total = bits * (1 + n_groups)
    if total > 32:
        raise ParameterError(f"{n_groups} label groups of {bits} bits: at most {32 // bits - 1} can be packed")
    return np.uint8 if total <= 8 else np.uint16 if total <= 16 else np.uint32


def pack_choices(choices: Sequence[np.ndarray], bits: int = CHOICE_BITS) -> np.ndarray:
    """Labels (below ``2**bits``) packed into one integer of :func:`choice_dtype`: ``choices[i]``
    in bits ``bits*i`` to ``bits*(i+1)-1``."""
    dt = choice_dtype(len(choices) - 1, bits)
    out = np.asarray(choices[0]).astype(dt)
    for i, c in enumerate(choices[1:], 1):
        out |= np.asarray(c).astype(dt) << dt(bits * i)
    return out


def unpack_choice(packed: np.ndarray, index: int, bits: int = CHOICE_BITS) -> np.ndarray:
    """Choice ``index`` of :func:`pack_choices` (0: the overall most probable label), uint8."""
    packed = np.asarray(packed)
    dt = packed.dtype.type
    return ((packed >> dt(bits * index)) & dt((1 << bits) - 1)).astype(np.uint8)


def decide_in_regions(phases: np.ndarray, packed: np.ndarray, regions: np.ndarray,
                      rules: Sequence[LayerRule], region_values: Mapping[str, int] = DECISION_REGIONS,
                      relabel: Mapping[int, int] | None = None, bits: int = CHOICE_BITS) -> np.ndarray:
    """Labels that cannot exist in their detected layer replaced by the layer's most probable other phase.

    Parameters
    ----------
    phases : ndarray (z, y, x) uint8
        The classifier's phases (after cleanup).
    packed : ndarray, ``phases``' shape
        The classifier's choices (:meth:`PixelClassifier.predict_block` with the groups of
        :func:`choice_groups` of ``rules``), ``bits`` bits each.
    regions : ndarray, ``phases``' shape
        Detected layers (``region_values``; by default :data:`DECISION_REGIONS`: the separator
        beyond the cathode's contact reach may be marked :data:`SEPARATOR_BULK`).
    rules : sequence of LayerRule
        From :func:`layer_rules`.
    relabel : mapping int -> int, optional
        A replacement ``a`` is written as ``relabel[a]``: e.g. void -> electrolyte, where which
        part of the pore is empty is decided by other cues than the classifier's vote.

    Returns
    -------
    ndarray uint8
        ``phases`` where a voxel of a rule's layer holds one of its ``impossible`` labels: the
        group choice instead (unchanged where that choice is 0).  Every other voxel is unchanged.
    """
    groups = choice_groups(rules)
    table = np.zeros((256, 256), np.uint8)
    for rule in rules:
        table[region_values[rule.region], list(rule.impossible)] = 1 + groups.index(rule.allowed)
    lut = np.arange(256, dtype=np.uint8)
    for a, b in (relabel or {}).items():
        lut[a] = b
    out = np.array(phases, dtype=np.uint8, copy=True)
    _decide(out.reshape(-1), np.ascontiguousarray(packed).reshape(-1),
            np.ascontiguousarray(regions, np.uint8).reshape(-1), table, lut, bits)
    return out


@nb.njit(cache=True, nogil=True)
def _decide(out: np.ndarray, packed: np.ndarray, regions: np.ndarray, table: np.ndarray, lut: np.ndarray,
            bits: int) -> None:
    """In place: ``out[i]`` becomes ``lut`` of choice ``table[regions[i], out[i]]`` of ``packed[i]``
    (none for 0, nor where that choice is 0)."""
    for i in range(out.size):
        c = table[regions[i], out[i]]
        if c:
            pick = (np.uint32(packed[i]) >> (bits * c)) & ((1 << bits) - 1)
            if pick:
                out[i] = lut[pick]


def normalisation_range(image: Any, *, sample: int = 2_000_000, seed: int = 0) -> tuple[float, float]:
    """1st and 99th percentile of the image's grey values (from a random sample of voxels)."""
    arr = image
    n = int(np.prod(arr.shape))
    rng = np.random.default_rng(seed)
    if n > sample:
        # a few whole slices keep dask reads cheap
        nz = arr.shape[0]
        k = max(1, min(nz, sample // max(1, n // nz)))
        zs = np.unique(np.linspace(0, nz - 1, k).round().astype(int))
        vals = np.asarray(arr[zs] if not hasattr(arr, "compute") else arr[zs].compute()).ravel()
        if vals.size > sample:
            vals = rng.choice(vals, sample, replace=False)
    else:
        vals = np.asarray(arr if not hasattr(arr, "compute") else arr.compute()).ravel()
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise InputError("the image holds no finite grey values; check the input volume")
    lo, hi = np.percentile(vals, [1, 99])
    if not hi > lo:
        raise InputError("the image is empty (one grey value everywhere); check the input volume or the crop")
    return float(lo), float(hi)


def normalise(block: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    """Map grey values so ``rng`` becomes 0..1 (float32, not clipped)."""
    lo, hi = rng
    # one new array (never ``block`` itself), scaled in place
    out = np.subtract(block, np.float32(lo), dtype=np.float32)
    out *= np.float32(1.0 / (hi - lo))
    return out


def train_classifier(
    image: Any,
    scribbles: Any,
    *,
    voxel_size_nm: Sequence[float],
    phase_names: Mapping[str, int],
    features: FeatureSettings | None = None,
    forest: ForestSettings | None = None,
) -> PixelClassifier:
    """Train a pixel classifier from sparse scribbles.

    Parameters
    ----------
    image : ndarray or dask array (z, y, x)
        The (corrected) volume.
    scribbles : ndarray or dask array (z, y, x), integer
        Painted strokes on the image grid: the label value of a phase where painted, 0 elsewhere.
        A few strokes per phase on a few slices are enough; paint every phase you want out.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size in nm.
    phase_names : mapping
        Phase name -> label value used in ``scribbles`` (e.g. :data:`volrecon.phases.PHASES`).
    features : FeatureSettings, optional
        Features to compute (default :class:`FeatureSettings`).
    forest : ForestSettings, optional
        Forest size and sampling.

    Returns
    -------
    PixelClassifier

    Raises
    ------
    ParameterError
        Scribbles of another shape, values not named in ``phase_names``, fewer than two phases
        painted, or an empty image.
    """
    from sklearn.ensemble import RandomForestClassifier

    from volrecon.segment._validate import check_image, check_phase_names, check_scribbles, check_voxel

    vox = check_voxel(voxel_size_nm)
    check_image(image)
    names = check_phase_names(phase_names)
    scr = check_scribbles(scribbles, image.shape, names)
    features = features or FeatureSettings()
    forest = forest or ForestSettings()
    norm = normalisation_range(image)
    reach = feature_reach(features, vox)
    rng = np.random.default_rng(forest.seed)
    # features only around the painted slices (z range with reach), in-plane bounding box
    zs = np.nonzero(scr.reshape(scr.shape[0], -1).any(axis=1))[0]
    xs_list, ys_list = [], []
    # group consecutive painted slices so each slab is filtered once
    groups: list[list[int]] = []
    for z in zs:
        if groups and z - groups[-1][-1] <= 2 * reach[0]:
            groups[-1].append(int(z))
        else:
            groups.append([int(z)])
    for g in groups:
        z0, z1 = max(0, g[0] - reach[0]), min(scr.shape[0], g[-1] + 1 + reach[0])
        sub = scr[z0:z1]
        painted = np.nonzero(sub)
        y0, y1 = max(0, painted[1].min() - reach[1]), min(scr.shape[1], painted[1].max() + 1 + reach[1])
        x0, x1 = max(0, painted[2].min() - reach[2]), min(scr.shape[2], painted[2].max() + 1 + reach[2])
        block = image[z0:z1, y0:y1, x0:x1]
        block = np.asarray(block.compute() if hasattr(block, "compute") else block)
        f = compute_features(normalise(block, norm), features, voxel_size_nm=vox)
        s = sub[:, y0:y1, x0:x1]
        m = s > 0
        xs_list.append(f[:, m].T)
        ys_list.append(s[m])
    x = np.concatenate(xs_list)
    y = np.concatenate(ys_list)
    keep = []
    counts = {}
    for v in np.unique(y):
        idx = np.nonzero(y == v)[0]
        counts[int(v)] = int(idx.size)
        if idx.size > forest.max_samples_per_phase:
            idx = rng.choice(idx, forest.max_samples_per_phase, replace=False)
        keep.append(idx)
    sel = np.sort(np.concatenate(keep))
    model = RandomForestClassifier(
        n_estimators=forest.n_trees, max_depth=forest.max_depth, min_samples_leaf=forest.min_samples_leaf,
        class_weight="balanced", oob_score=True, n_jobs=1, random_state=forest.seed,
    )
    model.fit(x[sel], y[sel])
    by_value = {v: k for k, v in names.items()}
    fn = feature_names(features)
    importance = sorted(zip(fn, model.feature_importances_.tolist()), key=lambda t: -t[1])
    info = {
        "samples_per_phase": {by_value[v]: n for v, n in counts.items()},
        "out_of_bag_accuracy": float(model.oob_score_),
        "forest": {"n_trees": forest.n_trees, "max_depth": forest.max_depth, "min_samples_leaf": forest.min_samples_leaf},
        "top_features": [{"name": n, "importance": round(i, 4)} for n, i in importance[:8]],
    }
    used = {k: v for k, v in names.items() if v in counts}
    return PixelClassifier(features, used, vox, norm, model, info)


MIN_LEVEL_VOXELS = 50
"""Fewest interior voxels a phase's level is measured on (:func:`interior_levels`)."""


def boundary_voxels(labels: np.ndarray) -> np.ndarray:
    """Voxels with a face neighbour (6-connectivity) of another label."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, bool)
    for ax in range(labels.ndim):
        step = np.diff(labels, axis=ax) != 0
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        out[tuple(lo)] |= step
        out[tuple(hi)] |= step
    return out


def interior_levels(grey: np.ndarray, labels: np.ndarray, where: np.ndarray, values: Sequence[int],
                    *, min_voxels: int = MIN_LEVEL_VOXELS, interior: np.ndarray | None = None) -> dict[int, float]:
    """Median grey of each label's voxels in ``where`` that have no in-plane neighbour of another label.

    Those are the voxels the classifier decided from the phases' interiors, where its scribbles
    lie; the voxels beside a boundary carry the blur and edge rims of the other phase.  In-plane
    (:func:`boundary_voxels` of each slice), so that ``labels`` may be a sample of slices far
    apart.  A label with fewer than ``min_voxels`` such voxels is left out.

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Grey values (the ones the levels are wanted on).
    labels : ndarray (z, y, x)
        Phases.
    where : ndarray of bool
        Voxels read (e.g. the cathode).
    values : sequence of int
        Labels whose level is wanted.
    min_voxels : int
        Fewest interior voxels a level is measured on.
    interior : ndarray of bool, optional
        The voxels of ``labels`` with no in-plane neighbour of another label, where ``labels`` is a
        sample of every few rows, whose neighbours across y are not its own rows
        (:func:`sampled_interior`); by default from ``labels`` itself.

    Returns
    -------
    dict
        Label value -> median grey.
    """
    inner = _interior(labels, where) if interior is None else np.asarray(where, bool) & interior
    return _levels_of(grey, labels, inner, values, min_voxels=min_voxels)


def sampled_interior(labels: np.ndarray, rows: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """Which voxels of the stack rows ``picked`` have no in-plane neighbour of another label.

    A row's neighbours across y are the stack's rows ``y - 1`` and ``y + 1``: on a sample of every
    few rows the rows beside each other in the array lie that many rows apart in the stack, and a
    voxel a row from a boundary would pass for the interior.  At the stack's edge a row has one.

    Parameters
    ----------
    labels : ndarray (z, len(rows), x)
        Labels of the stack rows ``rows``.
    rows : ndarray of int
        Increasing stack rows held in ``labels``: ``picked`` and their neighbours within the stack.
    picked : ndarray of int
        The rows wanted (among ``rows``).

    Returns
    -------
    ndarray of bool (z, len(picked), x)
    """
    labels, rows, picked = np.asarray(labels), np.asarray(rows), np.asarray(picked)
    mid = labels[:, np.searchsorted(rows, picked)]
    edge = np.zeros(mid.shape, bool)
    step = np.diff(mid, axis=2) != 0
    edge[..., :-1] |= step
    edge[..., 1:] |= step
    for beside in (picked - 1, picked + 1):
        at = np.searchsorted(rows, beside).clip(0, rows.size - 1)
        held = rows[at] == beside
        edge[:, held] |= mid[:, held] != labels[:, at[held]]
    return ~edge


def _interior(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``where`` less the voxels with an in-plane neighbour of another label (slice by slice)."""
    labels = np.asarray(labels)
    every = np.arange(labels.shape[1])
    return np.asarray(where, bool) & sampled_interior(labels, every, every)


def _levels_of(grey: np.ndarray, labels: np.ndarray, inner: np.ndarray, values: Sequence[int], *,
               min_voxels: int) -> dict[int, float]:
    """Median grey of each label's voxels in ``inner`` (labels with fewer than ``min_voxels`` left out)."""
    labels = np.asarray(labels)
    out = {}
    for v in values:
        m = inner & (labels == v)
        if int(m.sum()) >= min_voxels:
            out[int(v)] = float(np.median(np.asarray(grey)[m]))
    return out


def redecide_boundaries(labels: np.ndarray, grey: np.ndarray, editable: np.ndarray,
                        levels: Mapping[int, float], *, passes: int = 1,
                        dark: tuple[np.ndarray, Mapping[int, float]] | None = None) -> np.ndarray:
    """The voxels on a boundary between labels of ``levels`` re-decided by their grey: the label
    whose level is nearest (cuts halfway between consecutive levels).

    A forest trained from scribbles, which lie inside the phases, never saw a boundary voxel: there
    it extrapolates, and its multiscale features carry the brighter neighbour's blur and edge rim
    into the darker phase (the pore beside a particle reads as binder).  ``grey`` is meant to be
    denoised and rim-corrected (:func:`volrecon.segment.cathode_rims.rim_corrected`): on it a
    boundary voxel is the phase its own grey says, on the classifier's own scale of levels.

    Parameters
    ----------
    labels : ndarray (z, y, x) uint8
        Phases.
    grey : ndarray, ``labels``' shape
        Denoised, rim-corrected grey values.
    editable : ndarray of bool
        Voxels that may change (e.g. the cathode).
    levels : mapping int -> float
        Label value -> grey level (e.g. :func:`interior_levels`); only voxels holding one of these
        labels, with a face neighbour of another label (any), change, and only to one of them.
    passes : int
        Each pass re-decides the boundary voxels of the labels the pass before left, so a boundary
        moves by up to ``passes`` voxels (a voxel only ever takes the label its grey picks, so the
        passes converge).
    dark : (ndarray, mapping), optional
        ``(grey, levels)`` of the darker phases' own cut: a voxel whose nearest level on ``grey``
        is one of these labels takes the one of them nearest on this grey instead (the pore |
        binder cut read on a grey whose rim correction is set for the dark side of a boundary,
        :func:`volrecon.segment.cathode_rims.dark_side_rim_length`).

    Returns
    -------
    ndarray uint8
        ``labels`` with those voxels re-decided.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    if len(levels) < 2:
        return out
    order = list(levels)
    edit = np.asarray(editable, bool)
    pick = nearest_level(grey, levels)
    if dark is not None and len(dark[1]) >= 2:
        among = np.isin(pick, list(dark[1]))
        pick[among] = nearest_level(np.asarray(dark[0])[among], dark[1])
    for _ in range(passes):
        m = edit & np.isin(out, order) & boundary_voxels(out) & (out != pick)
        if not m.any():
            break
        out[m] = pick[m]
    return out


FIBRE_EVIDENCE_SOURCES: tuple[str, ...] = ("binder", "active")
"""Labels :func:`fibre_evidence` re-reads as separator fibres where the grey says fibre."""
FIBRE_EVIDENCE_LEVELS: tuple[str, ...] = ("void", "electrolyte", "binder", "separator", "active")
"""Phases whose interior levels :func:`fibre_evidence_levels` compares a voxel's grey with: those
the separator and the cathode hold."""
FIBRE_LEVEL_AGREEMENT = 0.75
"""Least share of the classifier's interior fibre voxels whose grey lies nearest the fibre level
for :func:`fibre_evidence_levels` to trust the grey: below it the fibres' grey overlaps a cathode
solid's (polymer fibres as dark as the carbon-binder domain), and the nearest level would turn a
share of the cathode's binder into fibres instead."""


def fibre_evidence_levels(grey: np.ndarray, labels: np.ndarray, where: np.ndarray,
                          phase_names: Mapping[str, int], *,
                          interior: np.ndarray | None = None) -> tuple[dict[int, float] | None, float]:
    """The classifier's interior levels (:func:`interior_levels`) of :data:`FIBRE_EVIDENCE_LEVELS`,
    if the fibres' grey tells them from the cathode's solids.

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Denoised grey values (a sample of slices will do).
    labels : ndarray (z, y, x)
        The classifier's phases there.
    where : ndarray of bool
        The specimen's voxels (no frame, nothing unassigned).
    phase_names : mapping
        Phase name -> label value.
    interior : ndarray of bool, optional
        As in :func:`interior_levels`, for a sample of every few rows.

    Returns
    -------
    levels : dict or None
        Label value -> level; None where there is no separator level, no other, or fewer than
        :data:`FIBRE_LEVEL_AGREEMENT` of the interior fibre voxels lie nearest their own level.
    agreement : float
        That share (NaN without a separator level).
    """
    sep = phase_names.get("separator")
    values = [phase_names[p] for p in FIBRE_EVIDENCE_LEVELS if p in phase_names]
    labels = np.asarray(labels)
    # once, for the levels and the fibres' agreement
    inner = _interior(labels, where) if interior is None else np.asarray(where, bool) & interior
    levels = _levels_of(grey, labels, inner, values, min_voxels=MIN_LEVEL_VOXELS)
    if sep not in levels or len(levels) < 2:
        return None, float("nan")
    agreement = float((nearest_level(np.asarray(grey)[inner & (labels == sep)], levels) == sep).mean())
    return (levels if agreement >= FIBRE_LEVEL_AGREEMENT else None), agreement


def nearest_level(grey: np.ndarray, levels: Mapping[int, float]) -> np.ndarray:
    """Per voxel, the label (uint8) whose level is nearest ``grey`` (cuts halfway between
    consecutive levels)."""
    order = sorted(levels, key=lambda v: levels[v])
    lv = np.array([levels[v] for v in order], np.float32)
    return np.array(order, np.uint8)[np.digitize(np.asarray(grey), 0.5 * (lv[1:] + lv[:-1]))]


def fibre_evidence(labels: np.ndarray, grey: np.ndarray, levels: Mapping[int, float],
                   phase_names: Mapping[str, int]) -> np.ndarray:
    """The classifier's phases as evidence of the separator's fibre mat: a voxel labelled a
    cathode solid (:data:`FIBRE_EVIDENCE_SOURCES`) whose grey lies nearest the fibre level reads
    ``separator``.

    The forest's features reach tens of nm: in the mat's last rows, the cathode's bright
    particles beyond lift the context of a fibre, which it labels binder or active although its
    own grey is the fibres' (24x192 diglyme phantom, seed 0: of the true fibres 1 to 4 rows
    before the cathode, 30 to 87 % labelled binder or active; their grey 143-151, the binder's
    110-116, the active's 173-180).  Counted as the cathode's solids, they moved the
    separator|cathode cut two voxels towards the anode.  For the layers only: the phases keep
    the forest's labels.

    Parameters
    ----------
    labels : ndarray (z, y, x) uint8
        The classifier's phases.
    grey : ndarray, ``labels``' shape
        Denoised grey values, on the scale of ``levels``.
    levels : mapping int -> float
        From :func:`fibre_evidence_levels`.
    phase_names : mapping
        Phase name -> label value.

    Returns
    -------
    ndarray uint8
        ``labels`` with those voxels set to the separator's value.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    sep = phase_names["separator"]
    # the grey values nearest the fibre level: halfway to the levels on either side of it
    lv = np.sort(np.array(list(levels.values()), np.float64))
    at = float(levels[sep])
    lo = 0.5 * (at + lv[lv < at].max()) if (lv < at).any() else -np.inf
    hi = 0.5 * (at + lv[lv > at].min()) if (lv > at).any() else np.inf
    grey = np.asarray(grey)
    fibre_grey = (grey >= lo) & (grey < hi)
    for p in FIBRE_EVIDENCE_SOURCES:
        if p in phase_names:
            out[(out == phase_names[p]) & fibre_grey] = sep
    return out
