"""``segment_volume``: phases and regions of a corrected volume, chunked over dask."""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Protocol, Sequence

import dask
import dask.array as da
import numpy as np
from scipy import ndimage as ndi

from volrecon._memory import release_memory
from volrecon.errors import ParameterError
from volrecon.phases import PHASES, REGIONS
from volrecon.segment._rows import store_by_rows
from volrecon.segment._validate import check_image, check_voxel
from volrecon.segment.classifier import (
    DECISION_REGIONS, SEPARATOR_BULK, LayerRule, PixelClassifier, choice_bits, choice_dtype, choice_groups,
    decide_in_regions, fibre_evidence, fibre_evidence_levels, interior_levels, layer_rules, normalisation_range,
    normalise, redecide_boundaries, sampled_interior,
    train_classifier, unpack_choice,
)
from volrecon.segment.cleanup import cleanup_reach, remove_small_pieces
from volrecon.segment.cathode_rims import (
    RIM_GRADIENT_NM, RIM_LENGTH_MAX_NM, RIM_LENGTH_STEP_NM, dark_side_rim_length, fit_rim_length, gradient_magnitude,
    gradient_noise_power, gradient_reach, gradient_reliability, particle_edge_rim_length, particle_edges, rim_corrected,
    robust_cuts, separability,
)
from volrecon.segment import forward_refine as fr
from volrecon.segment.chunking import DEFAULT_CHUNKS  # noqa: F401  (segment_volume's default chunks)
from volrecon.segment.chunking import (_as_dask, _banded_tiles, _compact, _frame_chunks, _overlap, _reduced_chunks,
                                       _specimen_voxels)
from volrecon.segment.foil_spill import FoilSpill, _beside_foil, _fit_foil_spill, _foil_spill_grey, _foil_unspilled, _spill_read
from volrecon.segment.frame import find_frame
from volrecon.segment.layers import (EDGE_RIM_NM, OUTLIER_NM, REFERENCE_EDGES, REFINE_NM, Layers, detect_layers,
                                     gaussian_reach, move_interface, refine_interface, region_block,
                                     topping_voids_slabs)
from volrecon.segment.output import write_segmentation  # noqa: F401  (public here before it moved)
from volrecon.segment.particle_edges import (
    ParticleEdgeRule, _classifier_particle_edges, _edge_rims, _gradient, _particle_edge_cut, _particle_edges,
)
from volrecon.segment.thresholds import apply_thresholds, multi_otsu, multi_otsu_thresholds
from volrecon.segment.regional import (
    CONTACT_LATERAL_NM, CONTACT_LEVEL_POOL_NM, band_rows, classify_regions, contact_cuts, contact_margin, contact_reach,
    contact_rows, fibre_contact_steps, level_contact_cuts, rim_cut, rim_threshold, sei_outer_surface, separator_contacts,
    smooth, smoothing_reach, smoothing_sigma, sodium_surface, specimen_filter,
)
from volrecon.segment.voids import (
    ShineDepth,
    VoidCues,
    _morph,
    dark_core_ends,
    dark_cores,
    electrolyte_level,
    filled_pore_cut,
    measure_shine_depth,
    pore_vote_reach,
    refine_pores,
    slice_histograms,
    slice_level_edges,
    slice_levels,
    split_grey,
    split_reach,
    split_voids,
    spread_floor,
    stripe_darkening,
    stripe_reach,
    vote_joined,
    wall_shift,
)

Progress = Callable[[int, int], None]
OTSU_ORDER: tuple[str, ...] = ("electrolyte", "sodium", "separator", "active", "collector")
"""Default dark-to-bright phases of the ``otsu`` method (one multi-Otsu class each), and the
classes of the layers' grey-value first guess (:func:`_layer_guess`)."""
LAYER_PHASES: tuple[str, ...] = ("sodium", "separator", "active", "collector")
"""The phases of :data:`OTSU_ORDER` that name a cell layer (anode, separator, cathode, collector):
only a classifier whose phases include them all (a classifier of that cell design) can find its
layers on the grey-value first guess (``segment_volume(layers_from="grey")``)."""
LayersFrom = Literal["auto", "grey", "phases"]


class GreyReader(Protocol):
    """``read(zs, box=None)``: the slices ``zs`` of a lazily computed grey volume over the in-plane
    ``box`` (rows, columns; None: whole slices), computed for those voxels alone
    (:func:`_smoothed_slices`; :func:`volrecon.segment.thresholds.multi_otsu_thresholds` calls it
    with the slices alone)."""

    def __call__(self, zs: np.ndarray, box: tuple[slice, slice] | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class SegmentationResult:
    """Phases and regions of a volume.

    Attributes
    ----------
    phases : ndarray or dask array (z, y, x) uint8
        Phase label of every voxel (values of ``phase_names``; 0 unassigned).
    regions : ndarray or dask array (z, y, x) uint8
        Cell layer of every voxel (values of :data:`volrecon.phases.REGIONS`; frame = 5).
    phase_names : dict
        Phase name -> label value.
    region_names : dict
        Region name -> label value.
    interfaces : dict
        ``through_plane`` axis, ``order``, ``absent_layers`` and, per interface
        (``sodium|sei`` …), the height map in nm over the two other axes (``heights_nm``) with
        summary statistics (``interfaces``).
    method : str
        ``"layers"`` (what ``"auto"`` runs), ``"otsu"`` or ``"classifier"``.
    voxel_size_nm : tuple of float
        ``(z, y, x)`` voxel size.
    parameters : dict
        Effective parameters (thresholds, classifier summary, cleanup sizes).
    warnings : tuple of str
        What a user should know (absent layers, few scribbles …).
    """

    phases: Any
    regions: Any
    phase_names: dict[str, int]
    region_names: dict[str, int]
    interfaces: dict[str, Any]
    method: str
    voxel_size_nm: tuple[float, float, float]
    parameters: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (height maps summarised, lengths nm)."""
        inter = {k: v for k, v in self.interfaces.items() if k != "heights_nm"}
        return {
            "method": self.method,
            "voxel_size_nm": dict(zip("zyx", self.voxel_size_nm)),
            "shape": list(self.phases.shape),
            "phase_names": dict(self.phase_names),
            "region_names": dict(self.region_names),
            "layers": inter,
            "parameters": self.parameters,
            "warnings": list(self.warnings),
        }


def segment_volume(
    image: Any,
    *,
    voxel_size_nm: Sequence[float],
    method: Literal["otsu", "classifier", "layers", "auto"] = "auto",
    classifier: PixelClassifier | str | Path | None = None,
    scribbles: Any = None,
    phase_names: Mapping[str, int] | Sequence[str] | None = None,
    thresholds: Sequence[float] | None = None,
    frame_mask: Any = None,
    frame: Literal["auto", "none"] = "auto",
    layers: bool = True,
    layers_from: LayersFrom = "auto",
    layer_phases: bool = True,
    refine_anode: bool = True,
    through_plane: str | None = None,
    min_size_nm: float = 30.0,
    pore_vote_nm: float = 20.0,
    lateral_nm: float = 120.0,
    level_passes: int = 2,
    chunks: Sequence[int] | None = None,
    scratch: str | Path | None = None,
    progress: Progress | None = None,
    smooth_nm: float = 10.0,
    sei_lateral_nm: float = 60.0,
    void_split: bool = True,
    void_cues: VoidCues | None = None,
    edge_rim_nm: float | None = EDGE_RIM_NM,
    forward_refine: bool | None = None,
) -> SegmentationResult:
    """Segment a corrected FIB-SEM volume into named phases and the cell's layers.

    Parameters
    ----------
    image : ndarray or dask array (z, y, x)
        Corrected volume (registered, intensity-corrected).
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size in nm.
    method : {"otsu", "classifier", "layers", "auto"}
        ``otsu``: multi-Otsu (or ``thresholds``) classes mapped dark to bright onto the phases
        listed in ``phase_names`` (default :data:`OTSU_ORDER`), one global grey scale (the plain
        baseline).  ``classifier``: a random-forest pixel classifier, given as ``classifier`` or
        trained here from ``scribbles``; its layers are found on its own phases, the specimen's
        voxels beside the frame left out (``detect_layers(specimen_core=True)``: its rim reads as a
        bright phase) and its binder and active voxels whose denoised grey is nearest its fibre
        level read as fibres (:func:`_fibre_layer_phases`: the mat's last fibres, beside the
        cathode's bright particles, are labelled binder), or on the grey-value guess of ``layers``
        (``layers_from``); within the
        detected cathode and separator a phase that cannot exist there
        (:data:`volrecon.segment.classifier.IMPOSSIBLE_PHASES`: in the separator farther than
        :func:`volrecon.segment.regional.contact_reach` from the cathode, its solids too) takes the
        layer's most probable other phase, before the void split and never void
        (:func:`volrecon.segment.classifier.decide_in_regions`, :func:`_layers_decide`), and the
        sodium surface and the SEI's outer surface are followed on the grey values as in ``layers``
        (with ``refine_anode``: :func:`volrecon.segment.regional.sodium_surface`; the forest's own sodium | film
        cut sat 2 rows early on the 24x192 diglyme phantoms, and the refinement from it took a fibre's rise
        beyond the film or, beside a trench wall, kept it: diglyme seed 2 SEI Dice 0.845 / 0.874 -> 0.861 /
        0.887, corrected / oracle-corrected).  Last, the voxels on a boundary between the
        cathode's electrolyte, binder and active, or the separator's electrolyte and fibres, take
        the phase whose level (the classifier's own, over its interior voxels) is nearest their
        denoised, rim-corrected grey (:func:`_boundaries_redecided`): the forest, trained on strokes
        inside the phases, reads the blur and edge rim of a bright neighbour as the next brighter
        phase.  In the separator region the cathode's solids the forest put there (the fibres and
        the pore it read beside the particles) are the separator's fibres or pore by their grey, and
        the particles take back their caps, as in ``layers`` (:func:`_classifier_separator_contacts`;
        24x192, seeds 0-3: carbonate separator Dice 0.942 / 0.947 -> 0.956 / 0.957 on seed 0).
        The cathode's pore | binder cut there is read on the grey corrected for the dark
        side of a boundary, by a length taken from the image model (probe blur, edge rims) fitted
        on the stack (:func:`volrecon.segment.cathode_rims.dark_side_rim_length`).  The grey is
        denoised over the specimen alone (the frame's walls lend it none of their glow), and the
        cathode's rows within the collector foil's spill are read unmixed
        (:mod:`volrecon.segment.foil_spill`; 24x192, seeds 0-1, both presets, corrected and
        oracle-corrected: pore Dice +0.0009 to +0.0055, binder fraction 0.003-0.015 nearer the
        truth).  Then the binder shell the re-decision leaves where a particle meets the pore is
        given back: its voxels touching a particle within the edge artefact's reach of the pore that
        read at least half-way between the pore and the particles go to the particle, those touching
        both the pore and a particle that read under it to the pore, on the grey corrected by the
        image model's rim length, the particle's side only where the model says the blur made it a
        shell (:func:`volrecon.segment.cathode_rims.particle_edges`; 24x192, seeds 0-2, both
        presets, corrected and oracle-corrected: pore Dice +0.003 to +0.013, binder fraction
        0.163-0.180 -> 0.125-0.151 for 0.143-0.157, nearer the truth on all twelve rows; 20 nm
        pixels: pore +0.012 / +0.018, the particle's side off).  ``layers
        (unsupervised, physically informed): the
        ``otsu`` classes serve only to find the layers (cut again with the sodium | separator
        threshold at the SEI film's measured level where the multi-Otsu put it above that level,
        ``parameters["layer_guess"]["below_sei"]``; carbonate 24x192 seed 0 corrected: separator
        0.946 -> 0.952); then each region is classified on its
        own histogram (:mod:`volrecon.segment.regional`): cathode pore/binder/active (3-class
        multi-Otsu), separator electrolyte/fibres (2-class), anode sodium/SEI from the sodium
        surface and the SEI's outer surface, collector.  ``auto`` (default, as in ``volrecon
        segment``): ``layers``.  ``otsu`` is only a baseline: one grey scale for the whole cell
        puts phases of equal grey in different layers into one class.
    classifier : PixelClassifier or path, optional
        A trained classifier (or its ``.skops`` file).
    scribbles : ndarray or dask array, optional
        Painted labels on the image grid (0 = not painted) to train a classifier from.
    phase_names : mapping or sequence of str, optional
        For ``classifier`` with ``scribbles``: name -> value of the scribble labels (default
        :data:`volrecon.phases.PHASES`).  For ``otsu``: phase names dark to bright.
    thresholds : sequence of float, optional
        User thresholds for ``otsu`` (grey values, increasing), instead of multi-Otsu.
    frame_mask : ndarray of bool, optional
        ``(y, x)`` or ``(z, y, x)`` mask of the face's frame (cap, trench walls), e.g. from
        :func:`volrecon.correct.detect_frame`; labelled ``frame`` and excluded from layers.  A
        classifier trained with ``frame`` scribbles finds the frame itself.
    frame : {"auto", "none"}
        ``auto`` (default): when no ``frame_mask`` is given, find the cap and trench walls of the
        (registered) stack with :func:`volrecon.segment.frame.find_frame` and label them
        ``frame`` (region ``frame``), so they never count as a phase; what was found is in
        ``parameters["frame"]``.  ``none``: no frame detection.
    layers : bool
        Detect the layers (regions and interfaces).
    layers_from : {"auto", "grey", "phases"}
        What the layers are found on.  ``grey``: the first guess of ``layers`` (global multi-Otsu
        classes of the grey values denoised by ``2 * smooth_nm``, over :data:`OTSU_ORDER`,
        cleaned): the same layers as ``layers`` where that guess is not cut again below the SEI's
        level (the other methods' grey layers are not).  ``phases``: the method's own phases.  ``auto``
        (default): ``grey`` for ``layers`` (its only choice), ``phases`` for ``otsu`` and
        ``classifier``.  A classifier whose phases lack one of :data:`LAYER_PHASES` (another cell
        design or vocabulary: the guess's classes would not name its layers) always uses its own
        phases, also when ``grey`` is asked for (with a warning).  The choice and its reason are
        in ``parameters["layers_from"]``.  The layers are large-scale geometry, and a pixel
        classifier trained from sparse strokes is least reliable at a layer boundary (its
        multiscale features carry the next layer's context: on the real-corrected 24x192 diglyme
        phantom, binder, active and void in the separator's last rows move its separator|cathode
        cut 2.3 voxels towards the anode; its mean distance 2.28 -> 1.45 voxels once its solids of
        fibre grey count as fibres, :func:`_fibre_layer_phases`), so ``grey`` is worth trying where
        the classifier's cut is off; but the grey guess has its own bias (it goes deep under the voids at the cathode's
        top), and it is not the classifier's default because it is not better everywhere.
        Measured (``benchmarks/segmentation.py --methods classifier``, both presets, corrected
        and oracle-corrected, 24x192 seeds 0-2 and 48x256 seed 0: 16 rows): separator|cathode mean
        distance 2.07 -> 1.83 voxels, better on 10 rows (24x192 seed 0 corrected: diglyme
        2.40 -> 1.47, carbonate 2.11 -> 0.90) and worse on 6 (every 48x256 row, +0.4 to +0.9:
        diglyme corrected 1.46 -> 2.17, bias -0.45 -> +1.42; carbonate seed 1 0.95 -> 1.35 and
        0.94 -> 1.40, with the separator's Dice 0.761 -> 0.722 and 0.743 -> 0.677);
        cathode|collector 0.66 -> 0.56; the other Dice move by -0.02 to +0.04 (void), at most
        -0.011 for sodium, -0.016 for the SEI.  CPU: 64x512x512, three
        base/head pairs, 21.0/21.0/22.5 -> 21.1/22.6/22.8 CPU-s (the guess and its cleanup, kept
        in ``scratch`` for a dask input while the layers are found).  These figures predate the
        level passes' per-column solids cut (:func:`volrecon.segment.layers._solids_pair`),
        which took the classifier's own separator|cathode rows to 1.34 voxels on average over
        the same kind of rows; ``grey`` was not re-measured against it.
    layer_phases : bool
        Within the detected anode, assign ``sodium``/``sei`` from the sodium surface (the SEI is
        the film between the sodium surface and the anode's outer surface); within the detected
        collector layer, ``collector`` (a dense foil).
    refine_anode : bool
        Move the sodium surface onto the grey-value edge between sodium and SEI
        (:func:`volrecon.segment.layers.refine_interface`, corrected for the edge-brightening
        rims; the rim fit, ``parameters["sei"]["edge"]``, also places the SEI's outer surface and
        the separator's fibre threshold, and, where :data:`RIM_EDGES` names it (not by default),
        with the collector's votes in the cathode's rim length, ``parameters["cathode_rims"]``)
        instead of the class-based cut; ``classifier``: from the surface found on the grey values
        first (:func:`volrecon.segment.regional.sodium_surface`, ``parameters["sodium"]``), as for
        the grey layers.
    edge_rim_nm : float or None
        Half-width (nm) of the edge-brightening rims of the instrument
        (:data:`volrecon.segment.layers.EDGE_RIM_NM`), used by the rim fit of ``refine_anode``;
        None fits it from the stack (less stable next to a thin film).
    through_plane : {"z", "y", "x"}, optional
        Stacking axis; found from the data when omitted.
    min_size_nm : float
        Pieces of a phase smaller than this diameter are merged into their surroundings.
    pore_vote_nm : float
        Scale of the 3D void/electrolyte vote inside pores (0 disables): on the classifier's labels,
        and at the end of the cathode's void split (:attr:`volrecon.segment.voids.VoidCues.vote_nm`).
    lateral_nm : float
        Lateral smoothing of layer detection.
    level_passes : int
        Passes re-cutting ``separator|cathode`` along the interface found
        (:func:`volrecon.segment.layers.detect_layers`; 2 by default, 0: none).
    chunks : 3 ints, optional
        Processing chunk shape (default :data:`DEFAULT_CHUNKS`, 64×256×256, whatever the
        input's chunks); results do not depend on it, and dask results come in these chunks.
    scratch : path, optional
        Folder for the intermediate volumes of a dask input (phases, the coarse counts of the layer
        detection, the classes and the grey values the per-region thresholds and the void split
        read; one float32 copy of the volume at a time), as zarr arrays; the dask results read
        from it, so the caller removes it once they are computed.  By default a temporary folder,
        removed when the last dask array reading it is garbage-collected, or at once if the
        segmentation fails (:class:`Scratch`).
    progress : callable, optional
        ``progress(done, total)`` over the stages.
    smooth_nm : float
        ``layers``: Gaussian denoising (nm) of the grey values the per-region thresholds are
        estimated and applied on (0: none); ``classifier``: of the grey values its boundary voxels
        are re-decided on.
    sei_lateral_nm : float
        ``layers``: lateral averaging (nm) when following the SEI film from the sodium surface
        (:func:`volrecon.segment.regional.sei_outer_surface`).
    void_split : bool
        ``layers``: split the cathode's pore into void and electrolyte from physical cues
        (:func:`volrecon.segment.voids.split_voids`: darker than the electrolyte level around a
        core far below it, the shine-through tail along the milling direction, 3D continuity, and
        the rim whose face shows the material beyond the void's far wall, as wide as half the
        walls' sideways shift over the shine-through depth measured on the stack) and return the thin bright
        rims that edge effects leave on particle surfaces from binder to the pore.  The electrolyte
        level is the narrow peak of the pore class, measured per slice (``parameters["void_split"]``).  ``classifier``
        (with ``void``, ``electrolyte`` and ``binder`` classes): the classifier decides the cathode's
        pore (void + electrolyte) and the same cues split it (no edge-rim rule), after the layers'
        decision; the pore its boundary re-decision gives back later takes the split's closing vote
        (:func:`_joined_pore_voted`), and the classifier's own void is kept nowhere (outside the cathode
        every pore is electrolyte, as method ``auto`` reads it: void is the cathode's,
        :func:`_forest_void_filled`); pixel classifiers
        trained from a few strokes scatter false voids over the pore, which inflates the void
        fraction of a cell that has almost none.  False: the cathode's pore stays ``electrolyte``
        (``layers``) or keeps the classifier's own void class.
    void_cues : VoidCues, optional
        Lengths of those cues (shine-through depth, lateral growth, edge width; defaults of
        :class:`volrecon.segment.voids.VoidCues`; its ``wall_shift_nm`` is measured on the stack
        unless given; its ``vote_nm`` is set to ``pore_vote_nm``: one that differs from both its
        default and ``pore_vote_nm`` is refused, not overwritten).
    forward_refine : bool or None
        ``layers``, and ``classifier`` (with ``electrolyte``, ``binder`` and ``active`` classes):
        move the cathode's electrolyte | binder boundaries onto a forward model of the image fitted
        on the stack (phase levels, probe blur, edge brightening, voids' shine-through, noise;
        :mod:`volrecon.segment.forward_refine`), after the void split; the fitted model is in
        ``parameters["forward_refine"]``.  What it gains and loses is measured in that module's
        docstring.  None (default): on for ``auto``/``layers``, off for ``classifier``: its 0.5-0.7
        CPU-s per Mvoxel would take the 200x1024x1024 classifier run past 2 minutes on 2 cores, and
        the classifier's boundary re-decision (:func:`_boundaries_redecided`), which runs after it,
        takes nearly all it gave (pore Dice +0.007 to +0.027 on the 24x192 phantoms without the
        re-decision; with it and its dark-side pore | binder cut, on the real-corrected seed 0:
        diglyme 0.9409 -> 0.9410, carbonate 0.9421 -> 0.9432, active -0.0003 / -0.0005).

    Returns
    -------
    SegmentationResult
        numpy arrays for numpy input; dask arrays (backed by zarr in ``scratch``) for dask input.

    Raises
    ------
    ParameterError, InputError
        Bad method, missing classifier/scribbles, scribbles of another shape or naming unknown
        phases, one phase scribbled, an empty volume.

    Examples
    --------
    >>> from volrecon.sample import make_phantom
    >>> ph = make_phantom("diglyme", slices=8, shape=(96, 96), artefacts="none", workers=1)
    >>> res = segment_volume(ph.clean, voxel_size_nm=ph.voxel_size_nm)
    >>> res.phases.shape == ph.labels.shape
    True
    """
    vox = check_voxel(voxel_size_nm)
    check_image(image)
    if method not in ("otsu", "classifier", "layers", "auto"):
        raise ParameterError(f"method={method!r}: use 'otsu', 'layers', 'auto' or 'classifier'")
    if method == "auto":
        method = "layers"
    regional = method == "layers"
    refine = method != "classifier" if forward_refine is None else bool(forward_refine)
    if layers_from not in ("auto", "grey", "phases"):
        raise ParameterError(f"layers_from={layers_from!r}: use 'auto', 'grey' or 'phases'")
    if not layers and layers_from != "auto":
        raise ParameterError(f"layers_from={layers_from!r} needs layers=True (no layers are found without it); "
                             "leave layers_from='auto'")
    if regional and layers_from == "phases":
        raise ParameterError("layers_from='phases' is not for method='layers': its phases are decided within the layers "
                             "found on the grey-value guess (use 'auto' or 'grey')")
    if regional and thresholds is not None:
        raise ParameterError("thresholds=... is for method='otsu'; method='layers' estimates them per region")
    if regional and not layers:
        raise ParameterError("method='layers' needs layers=True (it classifies within the detected layers)")
    lazy_input = isinstance(image, da.Array)
    # the void split ends with the pore vote, on the same scale as the classifier's pore vote
    if void_cues is not None and void_cues.vote_nm not in (VoidCues().vote_nm, float(pore_vote_nm)):
        raise ParameterError(f"void_cues.vote_nm={void_cues.vote_nm:g} and pore_vote_nm={pore_vote_nm:g} disagree: the "
                             f"void split votes on pore_vote_nm; pass pore_vote_nm={void_cues.vote_nm:g} instead")
    void_cues = replace(void_cues or VoidCues(), vote_nm=float(pore_vote_nm))
    warnings: list[str] = []
    params: dict[str, Any] = {"min_size_nm": min_size_nm, "pore_vote_nm": pore_vote_nm, "lateral_nm": lateral_nm,
                              "level_passes": level_passes}
    steps = 4
    report = progress or (lambda d, t: None)
    src = _as_dask(image, chunks)
    norm = normalisation_range(image)

    if frame not in ("auto", "none"):
        raise ParameterError(f"frame={frame!r}: use 'auto' or 'none'")
    rim_shell: np.ndarray | None = None
    if frame_mask is None and frame == "auto":
        found = find_frame(image)
        params["frame"] = found.to_dict()
        if found.found:
            frame_mask = found.mask
            rim_shell = found.shell if found.shell is not None and found.shell.any() else None
    # the classifier's layers' choices, packed beside its overall choice (see decide_in_regions)
    rules: tuple[LayerRule, ...] = ()
    bits = 0
    guess_grey: da.Array | None = None  # the grey values method 'layers' cut its first guess on
    guess_read: GreyReader | None = None  # and how a few of their slices are read alone
    if method == "classifier":
        if classifier is None:
            if scribbles is None:
                raise ParameterError("method='classifier' needs classifier=... (a trained file) or scribbles=... to train one")
            names_in = PHASES if phase_names is None else phase_names
            if not isinstance(names_in, Mapping):
                raise ParameterError("phase_names for scribbles: give a mapping name -> label value")
            classifier = train_classifier(image, scribbles, voxel_size_nm=vox, phase_names=names_in)
        elif isinstance(classifier, (str, Path)):
            classifier = PixelClassifier.load(classifier)
        clf: PixelClassifier = classifier
        names = dict(clf.phase_names)
        params["classifier"] = {"features": clf.features.to_dict(), **clf.info}
        reach = clf.reach(vox)
        # with the frame known, the classifier's own "frame" class would only add false frame
        exclude = (names["frame"],) if frame_mask is not None and "frame" in names else ()
        # each voxel's most probable phase among those its layer allows is kept beside the overall
        # one, for the layers' decision (one per distinct set of allowed phases)
        rules = layer_rules(names) if layers else ()
        groups = choice_groups(rules)
        # the frame's label is written into the overall choice when the frame is known
        bits = choice_bits(max([*names.values(), PHASES["frame"], int(clf.classes.max())]))

        def classify(block: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
            return clf.predict_block(normalise(block, norm), voxel_size_nm=vox, core=core, exclude=exclude, groups=groups, bits=bits)

        raw = _overlap(classify, src, reach, choice_dtype(len(groups), bits) if groups else np.uint8)
    else:
        order = list(OTSU_ORDER) if (phase_names is None or regional) else list(phase_names)
        if isinstance(phase_names, Mapping) and not regional:
            order = sorted(phase_names, key=lambda k: phase_names[k])  # type: ignore[index]
        unknown = [p for p in order if p not in PHASES]
        if unknown:
            raise ParameterError(f"phase_names for otsu: unknown phase(s) {unknown}; use names of volrecon.phases.PHASES")
        names = {p: PHASES[p] for p in order}
        if regional:
            names = _guess_names()
        values = [names[p] for p in order]
        if regional:
            raw, params["layer_guess"], guess_grey, guess_read = _layer_guess(image, src, order=order, values=values,
                                                                              smooth_nm=smooth_nm, vox=vox)
        else:
            t = np.asarray(thresholds, dtype=float) if thresholds is not None else multi_otsu_thresholds(image, len(order))
            params["thresholds"] = [float(v) for v in t]
            params["classes"] = order
            raw = src.map_blocks(apply_thresholds, t, values, dtype=np.uint8)
    report(1, steps)

    fm: np.ndarray | None = None
    if frame_mask is not None:
        fm = np.asarray(frame_mask, dtype=bool)
        if fm.shape not in (tuple(image.shape[1:]), tuple(image.shape)):
            raise ParameterError(f"frame_mask shape {fm.shape}: give (y, x) {tuple(image.shape[1:])} or the image shape")
        names.setdefault("frame", PHASES["frame"])
    frame_value = names.get("frame")
    # the intermediate volumes of a dask input go to zarr arrays in scratch; a folder made here
    # goes with the last array that reads it, or at once when the segmentation fails
    folder = (Scratch(Path(scratch)) if scratch is not None else Scratch.temporary()) if lazy_input else None

    def settled(classes: da.Array, name: str) -> Any:
        """``classes`` with the frame, cleaned locally (pore vote, small pieces; chunk-exact with
        overlap): computed for a numpy input, kept in scratch as ``name`` for a dask one."""
        if fm is not None:
            classes = da.where(_frame_chunks(fm, classes.chunks), np.uint8(names["frame"]), classes)
        out = _cleaned(classes, names=names, vox=vox, min_size_nm=min_size_nm, pore_vote_nm=pore_vote_nm,
                       bits=bits if rules else 0)
        return out.compute() if folder is None else _materialise(out, folder, name).rechunk(src.chunks)

    try:
        phases = settled(raw, "phases")
        packed = None
        if rules:
            packed = phases
            phases = unpack_choice(phases, 0, bits) if folder is None else phases.map_blocks(unpack_choice, 0, bits, dtype=np.uint8)
        report(2, steps)

        region_names = {k: v for k, v in REGIONS.items()}
        inter: dict[str, Any] = {"through_plane": None, "order": None, "absent_layers": [], "interfaces": {}, "heights_nm": {}}
        if layers:
            params["layers_from"] = source = _layers_source(method, layers_from, names)
            grey_layers = source["source"] == "grey"
            if source["source"] != layers_from and layers_from != "auto":
                warnings.append(source["reason"])
            lay_phases, lay_names, lay_frame = phases, names, frame_value
            # the grey a guess's dark voids are read on (:func:`_cut_beside_voids`): method 'layers'' own, or the
            # guess another method takes its layers from
            cut_grey, cut_read = guess_grey, guess_read
            if grey_layers and not regional:
                lay_phases, lay_names, cut_grey, cut_read = _grey_layer_phases(image, src, phases, frame_value=frame_value, smooth_nm=smooth_nm,
                                                           vox=vox, min_size_nm=min_size_nm, folder=folder, params=params)
                lay_frame = lay_names.get("frame")
            # a first guess cut above the SEI's own level is cut again there and the layers found again
            # (:func:`_guess_below_sei`; method 'layers' only: its phases are the guess)
            for guess_pass in range(1 if guess_grey is None else 2):
                # the frame's rim shell reads the frame's grey as much as the specimen's: its first-guess
                # classes decide no layer and no surface
                specimen = _unassigned(lay_phases, rim_shell)
                # the rows of the phases (and of the layer guess) leave their chunks' heap resident, and the
                # layer detection's share maps (a block of rows of the coarse counts, ~100 MB each at
                # 2048x1536) are beyond glibc's mmap threshold: mapped on top of it, not in it.  Handed back
                # first (the per-step peaks before and after: benchmarks/results/pipeline_2048x1536.md)
                release_memory()
                evidence, clf_grey = specimen, None
                if method == "classifier":
                    # denoised once, for the fibre evidence and the boundary re-decision; over the specimen alone,
                    # as the regional grey (the walls' glow read the pore beside them as binder)
                    clf_grey = _materialise(_smoothed(src, smooth_nm, vox, _specimen_voxels(frame_mask, rim_shell, src.chunks)),
                                            folder, "denoised").rechunk(src.chunks)
                if method == "classifier" and not grey_layers:
                    # for the layers' cut only: the anode's surfaces below read the forest's own labels
                    evidence = _fibre_layer_phases(clf_grey, specimen, names=names, frame_value=frame_value,
                                                   smooth_nm=smooth_nm, params=params)
                # the classifier's labels beside the frame's wall read its rim as a bright phase: not layer evidence
                lay = detect_layers(evidence, phase_names=lay_names, voxel_size_nm=vox, axis=through_plane, lateral_nm=lateral_nm,
                                    frame_value=lay_frame, level_passes=level_passes, scratch=None if folder is None else folder.path,
                                    specimen_core=method == "classifier" and not grey_layers)
                # the surface finders below work in the calling thread, in slabs, and do not reuse the heap
                # the dask workers freed in their own arenas (the rows of the phases, the layer counts), which
                # glibc keeps resident and which grows with the number of rows: handed back here, once
                del evidence
                release_memory()
                if lay.heights.get("cathode|collector") is not None:
                    # the foil's cut from the layer shares sat 0.4 voxels late on the phantoms (43 % of the columns
                    # one row into the foil): its grey step, corrected for the rims, is where the foil begins
                    lay = refine_interface(image, lay, "cathode|collector", voxel_size_nm=vox, rim=True, rim_nm=edge_rim_nm)
                # the sodium surface from the grey values, for the classifier too: the refinement below looks for the
                # steepest rise near the forest's sodium | film cut (2 rows off on the 24x192 diglyme phantoms), up to
                # its film surface: where that lay rows beyond the film, the window held the film's rise onto a fibre
                # and took it, and beside a trench wall, whose glow lights the sodium and flattens the step, no step
                # was clear and the cut stayed (up to 6 rows into the sodium).  Found from the anode end over the
                # specimen alone (the columns a wall cuts short take their nearest measured neighbour's), the
                # first half-way rise is the sodium's; the refinement then moves it onto the step there, for the rims
                grey_na = grey_layers or (method == "classifier" and refine_anode)
                if grey_na and lay.heights.get("sodium|sei") is not None:
                    lay, na_info = sodium_surface(image, specimen, lay, voxel_size_nm=vox,
                                                  frame_value=lay_frame, lateral_nm=sei_lateral_nm)
                    params["sodium"] = na_info
                # each surface finder's slabs (a band of the volume, ~100 MB each at 2048x1536) are mapped beyond
                # the heap the one before left resident, which grows with the slice count (its column profiles):
                # handed back before each
                if refine_anode and lay.heights.get("sodium|sei") is not None:
                    release_memory()
                    lay = refine_interface(image, lay, "sodium|sei", voxel_size_nm=vox,
                                           upper=None if grey_na else "sei|separator", rim=True, rim_nm=edge_rim_nm)
                # the film's outer surface from the grey values beyond the sodium surface: a classifier's few
                # SEI strokes know less about a film a few voxels thick than its grey profile does
                # (after an unbounded sodium surface, i.e. grey layers, it must follow: it resets sei|separator)
                has_na = lay.heights.get("sodium|sei") is not None
                if regional or (has_na and (grey_layers or (method == "classifier" and refine_anode))):
                    release_memory()
                    lay, sei_info = sei_outer_surface(image, lay, voxel_size_nm=vox, lateral_nm=sei_lateral_nm,
                                                      phases=specimen, frame_value=lay_frame)
                    params["sei"] = sei_info
                if cut_grey is not None and "void" in lay_names and lay.heights.get("separator|cathode") is not None:
                    lay = _cut_beside_voids(specimen, cut_grey, lay, names=lay_names, frame_value=lay_frame, params=params,
                                            dark_k=void_cues.dark_k, read=cut_read, cues=void_cues, folder=folder,
                                            layer_options=dict(voxel_size_nm=vox, axis=through_plane, lateral_nm=lateral_nm,
                                                               level_passes=level_passes,
                                                               scratch=None if folder is None else folder.path))
                recut = None if guess_pass or guess_grey is None else \
                    _guess_below_sei(guess_grey, lay, specimen, params["layer_guess"], frame_value=lay_frame,
                                     read=guess_read)
                if recut is None:
                    break
                phases = lay_phases = settled(guess_grey.map_blocks(apply_thresholds, recut, values, dtype=np.uint8),
                                              "phases_below_sei")
            if lay_phases is not phases:
                del specimen, lay_phases
                if folder is not None:
                    folder.drop("layer_guess")
            inter = lay.to_dict(vox)
            inter["heights_nm"] = lay.heights_nm(vox)
            for layer in lay.absent:
                warnings.append(f"layer {layer!r} not found in the field of view")
            report(3, steps)
            na_v, sei_v = names.get("sodium"), names.get("sei")
            use_anode = layer_phases and na_v is not None and lay.heights.get("sodium|sei") is not None

            def regions_fn(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
                loc = block_info[0]["array-location"]
                sl = tuple(slice(a, b) for a, b in loc)
                return region_block(lay, sl, block.shape, phases=block, frame_value=frame_value)

            coll_v = names.get("collector")
            use_coll = layer_phases and coll_v is not None and lay.heights.get("cathode|collector") is not None

            def phases_fn(block: np.ndarray, reg: np.ndarray, block_info: dict | None = None) -> np.ndarray:
                if not (use_anode or use_coll):
                    return block
                loc = block_info[0]["array-location"]
                sl = tuple(slice(a, b) for a, b in loc)
                if use_coll:
                    # the collector is a dense metal foil: whatever the classifier saw inside its layer
                    # (bright specks taken for active particles, mostly) is collector
                    block = np.where((reg == REGIONS["collector"]) & (block != 0), np.uint8(coll_v), block).astype(block.dtype)
                if not use_anode:
                    return block
                below = region_block(_sodium_only(lay), sl, block.shape) == REGIONS["anode"]
                out = block.copy()
                anode = reg == REGIONS["anode"]
                out[anode & below] = na_v
                if sei_v is not None:
                    out[anode & ~below] = sei_v
                return out

            pd = phases if isinstance(phases, da.Array) else da.from_array(phases, chunks=src.chunks)
            regions = pd.map_blocks(regions_fn, dtype=np.uint8)
            if folder is not None:
                # kept once in scratch, read from there by every later step: computed in the chains, the
                # regions of the row ahead (a computing task, for the context of the void split) were
                # kept whole for the next row beside the row's own (the split's middle rows: +750 MB at
                # 2048x1536)
                regions = _materialise(regions, folder, "regions")
            # the regions of a block are computed once, for both outputs
            phases_out = da.map_blocks(phases_fn, pd, regions, dtype=np.uint8)
            if packed is not None:
                reach = contact_reach(min(clf.features.sigmas_nm), vox, lay.axis)
                params["separator_bulk_reach_voxels"] = reach  # the cathode's solids ruled out beyond it
                bulk = move_interface(lay, "separator|cathode", reach, -1.0)
                phases_out = _layers_decide(phases_out, regions, packed, rules, names=names, bits=bits, chunks=src.chunks,
                                            bulk=bulk)
            split_pore = not regional and void_split and {"void", "electrolyte", "binder"} <= set(names)
            if split_pore:
                # the classifier decides the cathode's pore (void + electrolyte); which part of it is
                # empty comes from the physical cues, as in method 'layers' (its binder was learnt from
                # scribbles: no edge-rim rule)
                reg_d = regions.rechunk(src.chunks)
                pore = _forest_void_filled(phases_out.rechunk(src.chunks), reg_d, names, cathode=True)
                phases_out = _cathode_voids(src, reg_d, pore, names=names, vox=vox, smooth_nm=smooth_nm,
                                            cues=replace(void_cues or VoidCues(), edge_nm=0.0), params=params,
                                            warnings=warnings, folder=folder)
            if not regional and refine and {"electrolyte", "binder", "active"} <= set(names):
                # the classifier's pore | binder boundary (beside its particles, mostly) is moved as in 'layers'
                phases_out = _forward_refined(src, regions.rechunk(src.chunks),
                                              _materialise(phases_out.rechunk(src.chunks), folder, "refine_input"),
                                              names=names, vox=vox, params=params, warnings=warnings)
            if method == "classifier":
                # computed once: the levels' sample and the decision both read it
                forest = _materialise(phases_out.rechunk(src.chunks), folder, "boundaries_input")
                phases_out = _boundaries_redecided(clf_grey, regions.rechunk(src.chunks), forest,
                                                   image=src, names=names, vox=vox, smooth_nm=smooth_nm, params=params,
                                                   stack_axis=lay.axis, edge_nm=(void_cues or VoidCues()).edge_nm)
                phases_out = _classifier_separator_contacts(clf_grey, regions.rechunk(src.chunks), phases_out, forest,
                                                            names=names, vox=vox, smooth_nm=smooth_nm, params=params,
                                                            edge=lay.edges.get("sodium|sei"),
                                                            stack=(lay.axis, lay.anode_first), image=src,
                                                            step_edge=_thick_edge(lay))
                if split_pore:
                    phases_out = _joined_pore_voted(forest, phases_out, regions.rechunk(src.chunks), names=names, vox=vox,
                                                    sigma_nm=void_cues.vote_nm)
                    phases_out = _forest_void_filled(phases_out, regions.rechunk(src.chunks), names, cathode=False)
            if regional:
                phases_out = _regional_phases(image, src, regions, phases_out, names=names, vox=vox, smooth_nm=smooth_nm,
                                              min_size_nm=min_size_nm, frame_value=frame_value, void_split=void_split, void_cues=void_cues,
                                              params=params, warnings=warnings, edge=lay.edges.get("sodium|sei"), folder=folder,
                                              rim_edges=[lay.edges[k] for k in RIM_EDGES if k in lay.edges],
                                              step_edge=_thick_edge(lay), shell=rim_shell,
                                              stack=(lay.axis, lay.anode_first),
                                              forward_refine=refine)
            regions = _fibres_with_the_separator(regions, phases_out, names)
            if not lazy_input:
                regions, phases_out = da.compute(regions, phases_out)
            phases = phases_out
        else:
            regions = np.zeros(phases.shape, np.uint8) if not lazy_input else da.zeros(phases.shape, dtype=np.uint8, chunks=src.chunks)
        report(4, steps)
        params["normalisation"] = list(norm)
        return SegmentationResult(
            phases=phases, regions=regions, phase_names=names, region_names=region_names, interfaces=inter,
            method=method, voxel_size_nm=vox, parameters=params, warnings=tuple(warnings),
        )
    except BaseException:
        if folder is not None and folder.owned:
            folder.remove()
        raise


def _fibres_with_the_separator(regions: da.Array, phases: da.Array, names: Mapping[str, int]) -> da.Array:
    """``regions`` with the cathode's voxels labelled separator given to the separator region.

    The fibres lying on the cathode's particles are placed per column past the layers' smooth cut
    (:func:`_fibre_contacts_placed`: the mat's last row, where the cut lies a fraction of a row early);
    the region follows the material, so no cathode holds a separator fibre
    (:data:`volrecon.segment.classifier.IMPOSSIBLE_PHASES`) and the regions' fractions count the
    fibres with their layer.  Nothing else labels a cathode voxel separator."""
    sep = names.get("separator")
    if sep is None:
        return regions
    regions = (regions if isinstance(regions, da.Array) else da.from_array(regions)).rechunk(phases.chunks)
    moved = (regions == REGIONS["cathode"]) & (phases == sep)
    return da.where(moved, np.uint8(REGIONS["separator"]), regions).astype(np.uint8)


CLASSIFIER_BOUNDARY_PHASES: Mapping[str, tuple[str, ...]] = {
    "cathode": ("electrolyte", "binder", "active"),
    "separator": ("electrolyte", "separator"),
}
"""Region -> the phases whose shared boundaries :func:`_boundaries_redecided` re-decides there."""

CLASSIFIER_DARK_PHASES: Mapping[str, tuple[str, ...]] = {
    "cathode": ("electrolyte", "binder"),
}
"""Region -> the darker phases of :data:`CLASSIFIER_BOUNDARY_PHASES` whose cut
:func:`_boundaries_redecided` reads on the grey rim-corrected for the dark side of a boundary
(:func:`volrecon.segment.cathode_rims.dark_side_rim_length`): the cathode's pore against its
binder, the pore being the dark side of all its boundaries with the solids.

Measured (``benchmarks/segmentation.py --slices 24 --size 192 --methods classifier``, seeds 0 and 1,
both presets, corrected and oracle-corrected): pore Dice +0.007 to +0.017 on all eight rows, binder
Dice +0.008 to +0.023, the cathode's binder fraction and porosity each 0.017-0.024 nearer the truth
(the voxels move between the two); active, separator, void and the interfaces unchanged.  At 20 nm voxels (24x160,
seed 0, corrected): pore +0.007 / +0.007 (diglyme / carbonate), binder fraction 0.194 -> 0.180 /
0.215 -> 0.201 (truth 0.141 / 0.160), active and separator unchanged."""

CLASSIFIER_BOUNDARY_PASSES = 2
"""Passes of :func:`_boundaries_redecided`: a boundary moves by up to this many voxels.  The
forest's binder reaches two voxels into the pore beside particles (24x192 benchmark phantoms, seed
0, corrected: of the pore read as binder, 58 % one voxel from the true pore's edge, 33 % two);
a second pass raised the carbonate pore Dice 0.923 -> 0.928, a third by under 0.001."""


def _boundaries_redecided(smoothed: da.Array, reg: da.Array, out: da.Array, *, image: da.Array, names: Mapping[str, int],
                          vox: tuple[float, float, float], smooth_nm: float, params: dict[str, Any],
                          stack_axis: int | None = None, edge_nm: float = 0.0) -> da.Array:
    """The classifier's boundary voxels in the cathode and the separator re-decided on the
    rim-corrected grey, chunked.

    The forest was trained on scribbles inside the phases and extrapolates at their boundaries,
    where the blur and edge rim of a brighter neighbour lift the darker phase (the pore beside a
    particle reads as binder, the electrolyte beside a fibre as separator).  There, in each region
    of :data:`CLASSIFIER_BOUNDARY_PHASES`, a voxel of those phases takes the one whose level is
    nearest its grey denoised by ``smooth_nm`` (:func:`volrecon.segment.regional.smooth`) and
    rim-corrected (:func:`volrecon.segment.cathode_rims.rim_corrected`, the length fitted as in
    ``layers``, :func:`volrecon.segment.cathode_rims.fit_rim_length`, one class per phase); the
    levels are the classifier's own, the medians of that grey over its interior voxels
    (:func:`volrecon.segment.classifier.interior_levels`).  The length and the levels are measured
    per region, on the classifier's voxels of those phases in up to 64 evenly spread slices (every
    few rows of them on large slices, each row's interior tested against its neighbours in the
    stack, :func:`_rows_beside`).

    Among the darker phases of :data:`CLASSIFIER_DARK_PHASES` (the cathode's pore and binder) the
    cut is read on the grey corrected by the length that returns a boundary's dark side to its
    level (:func:`_dark_rim_length`, from the image model fitted on ``image``): the separability's
    length, a compromise with the bright sides, left the pore's edge voxels beside the particles
    brighter than the pore | binder cut (24x192 phantoms, seed 0, corrected: of the true pore
    labelled binder, 14 200 of 17 900 voxels at the pore's edge; cathode binder fraction 0.192 /
    0.193 for 0.150 / 0.143).  Voids, other phases and every voxel farther than
    :data:`CLASSIFIER_BOUNDARY_PASSES` from a boundary keep the classifier's label.  What was used
    is in ``parameters["classifier_boundaries"]``.  ``smoothed``: the grey values denoised by
    ``smooth_nm`` (:func:`_smoothed`), chunked; ``image``: the grey values, chunked.

    ``edge_nm``: the edge artefact's reach.  With it and the cathode's image model (fitted for the
    dark side, :func:`_dark_rim_length`), the binder shell the re-decision leaves where a particle
    meets the pore is given back on both sides of the step
    (:func:`volrecon.segment.cathode_rims.particle_edges` with ``pore_side``, on the grey, at the cut
    and with the sides of :func:`_classifier_particle_edges`): a binder voxel touching a particle
    within that reach of the pore that reads at least half-way between the classifier's pore and
    particle levels is the particle's own edge (where the model says the blur made it binder), one
    touching the pore and a particle that reads under it the pore's.
    The blurred step puts the particle's edge voxel under the binder | active midpoint and the
    pore's beside it above the pore | binder one, so the re-decision left the particles a binder
    shell two voxels thick where they meet the pore (24x192 diglyme seed 0, corrected: of the true
    particles' voxels beside the pore 4 700 binder, of the pore's beside a particle 4 900).
    Measured (``benchmarks/segmentation.py --slices 24 --size 192 --methods classifier``,
    corrected / oracle-corrected, before -> after): pore Dice, seed 0, 0.944 / 0.947 -> 0.947 /
    0.950 (diglyme), 0.948 / 0.949 -> 0.952 / 0.955 (carbonate); seed 1 0.945 / 0.955 -> 0.953 /
    0.960, 0.918 / 0.921 -> 0.929 / 0.934; seed 2 0.945 / 0.941 -> 0.949 / 0.946, 0.946 / 0.947 ->
    0.951 / 0.954.  Cathode binder fraction, seed 0, 0.173 / 0.168 -> 0.140 / 0.136 (truth 0.150),
    0.167 / 0.163 -> 0.128 / 0.125 (0.143); seed 1 0.180 / 0.179 -> 0.151 / 0.147 (0.157), 0.172
    / 0.174 -> 0.135 / 0.138 (0.146); seed 2 0.175 / 0.172 -> 0.140 / 0.138 (0.146), 0.169 / 0.168
    -> 0.133 / 0.133 (0.147): nearer the truth on all twelve rows, under it now (a true binder film
    one voxel thick between the pore and a particle reads under the half-way level too).  Porosity
    nearer the truth on all twelve rows; active -0.004 (diglyme seed 1 corrected) to +0.005; the
    separator, void and the interfaces unchanged.  At 20 nm pixels (24x160, seed 0, oracle-corrected,
    the particle's side off): pore 0.919 -> 0.932 / 0.905 -> 0.923, binder Dice +0.013 / +0.014,
    binder fraction 0.161 -> 0.129 (0.141) / 0.189 -> 0.152 (0.160), active unchanged.

    Each slice's grey is first shifted so that the cathode's electrolyte sits at one level in every
    slice (:func:`_electrolyte_levelled`, as the void split does): the levels and cuts are the
    stack's, and what the brightness correction leaves moves a whole slice's grey against them
    (24x192 diglyme seed 0, corrected: slice 0's electrolyte read 8 grey levels above the others',
    its binder 5, and 669 of its electrolyte voxels binder, 149 oracle-corrected; levelled, 123).
    Measured on the classifier rows of ``benchmarks/segmentation.py --slices 24 --size 192``
    (corrected / oracle-corrected, pore Dice before -> after): seed 0, diglyme 0.9489 / 0.9509 ->
    0.9497 / 0.9509, carbonate 0.9529 / 0.9563 -> 0.9531 / 0.9562; seed 1, diglyme 0.9553 /
    0.9614 -> 0.9586 / 0.9615, carbonate 0.9317 / 0.9362 -> 0.9318 / 0.9359.

    The separator's electrolyte the forest reads as binder beside the cathode (the cathode's blur
    lifts it; 1 540 voxels on 24x192 diglyme seed 0, corrected) is given back by
    :func:`_classifier_separator_contacts`, which runs after this step.
    Tried and not kept (24x192, pore Dice against the above): the slices levelled on the particles
    too (a gain per slice as well as the offset): -0.0001 to +0.0003, seed 0 diglyme corrected alone
    above noise; the voxels beside a void (the bright side of their step with it) read on the
    plain grey instead of the dark side's: diglyme seed 0 +0.0004 / +0.0003 but seed 1 -0.0007 /
    -0.0003 (electrolyte beside a void then read binder); the dark pair's cut at the midpoint of
    what a straight pore | binder step's two voxels read on the model
    (:func:`volrecon.segment.cathode_rims.step_reads`): -0.008 (the pore beside the solids reads
    far above the model's straight step); the forward refinement after the re-decision (before the
    two steps above): +0.0003 for its 0.5-0.7 CPU-s per Mvoxel.

    ``stack_axis``: the layers' stacking axis.  With it, the collector foil's spill into the
    cathode's first rows is fitted (:func:`_fit_foil_spill`, ``parameters["foil_spill"]``) and those
    rows are read on their unmixed grey (:func:`_foil_spill_grey`): the foil's blur and rim lifted
    their pore to the binder's level, and every voxel of the first row, beside the collector's
    label, is a boundary voxel.  The spill's share is matched on the pore's level
    (:func:`volrecon.segment.foil_spill.fit_spill`): the rows at the foil hold more pore than the bulk (0.48-0.52
    against 0.29-0.40), and the lower quartile's match came out short (carbonate seed 1,
    corrected: the first two rows' electrolyte read 15-22 grey levels above the bulk's, and their
    share labelled pore fell, 0.21 / 0.49 -> 0.15 / 0.23).  24x192, corrected, the first / second row labelled pore: carbonate seed 0
    0.09 / 0.48 -> 0.50 / 0.54 (true 0.48 / 0.48), seed 1 0.21 / 0.49 -> 0.45 / 0.52 (true 0.52 /
    0.51).
    """
    zs, stride = _sample_index(smoothed.shape)
    params["classifier_boundaries"] = info = {"smooth_nm": smooth_nm}
    smoothed = _electrolyte_levelled(smoothed, reg, out, electrolyte=names.get("electrolyte"), zs=zs, stride=stride, info=info)
    g, o, inner, r, (d,) = _interior_sample(smoothed, out, reg, zs=zs, stride=stride,
                                            extra=(_gradient(smoothed[zs], vox)[:, ::stride],))
    rules: list[tuple[int, float, dict[int, float], tuple[float, dict[int, float]] | None]] = []
    models: dict[str, fr.ImageModel] = {}
    for region, phases in CLASSIFIER_BOUNDARY_PHASES.items():
        if not set(phases) <= set(names):
            continue
        values = [names[p] for p in phases]
        where = r == REGIONS[region]
        # the rims to undo are those between these phases: the length is fitted on their voxels alone
        cls = where & np.isin(o, values)
        if cls.sum() < 100:
            continue
        length, _, eta = fit_rim_length(g[cls], d[cls], classes=len(values))
        levels = interior_levels(rim_corrected(g, d, length), o, where, values, interior=inner)
        info[region] = {"rim_length_nm": length, "separability": eta,
                        "levels": {k: levels[v] for k, v in names.items() if v in levels}}
        if len(levels) < 2:
            continue
        dark = None
        dark_values = [names[p] for p in CLASSIFIER_DARK_PHASES.get(region, ())]
        if dark_values and all(v in levels for v in dark_values):
            fitted = _dark_rim_length(image, smoothed, reg, out, region=REGIONS[region], values=values,
                                      rule=(length, levels), vox=vox, smooth_nm=smooth_nm, info=info[region])
            dark_length = None if fitted is None else fitted[0]
            if fitted is not None:
                models[region] = fitted[1]
            dark_levels = {} if dark_length is None else interior_levels(rim_corrected(g, d, dark_length), o, where, dark_values,
                                                                                interior=inner)
            if len(dark_levels) == len(dark_values):
                info[region]["dark_levels"] = {k: dark_levels[v] for k, v in names.items() if v in dark_levels}
                if levels_keep_order(levels, dark_levels):
                    dark = (dark_length, dark_levels)
                else:
                    info[region]["dark_levels_rejected"] = "out of the plain levels' order"
        rules.append((REGIONS[region], length, levels, dark))
    if not rules:
        return out
    edges = None
    if "cathode" in models:
        edges = _classifier_particle_edges(info["cathode"], models["cathode"], g, d, o, r == REGIONS["cathode"],
                                           names=names, vox=vox, smooth_nm=smooth_nm, edge_nm=edge_nm, interior=inner)

    foil = None if stack_axis is None else _fit_foil_spill(smoothed, reg, axis=stack_axis, params=params)
    spill_reach = 0 if foil is None else foil.reach

    def decide(o_: np.ndarray, g_: np.ndarray, d_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...],
               faces: Any) -> np.ndarray:
        res_ = o_
        spill_ = None if spill_reach == 0 else _foil_spill_grey(g_, r_, foil, axis=stack_axis, vox=vox)
        for value, length_, levels_, dark_ in rules:
            plain_ = _spill_read(g_, d_, length_, spill_)
            cut = None if dark_ is None else (_spill_read(g_, d_, dark_[0], spill_), dark_[1])
            res_ = redecide_boundaries(res_, plain_, r_ == value, levels_, passes=CLASSIFIER_BOUNDARY_PASSES, dark=cut)
        if edges is not None:
            # the unmixed rows' noise is the bulk's over (1 - w): their binder falls under the
            # half-way cut by noise alone, so the pore side's rule stays out of them
            res_ = particle_edges(res_, _spill_read(g_, d_, edges.length_nm, spill_), r_ == REGIONS["cathode"],
                                  electrolyte=names["electrolyte"], binder=names["binder"], active=names["active"],
                                  cut=edges.cut, reach_px=edges.reach_px, void=names.get("void"), particle_side=edges.sides,
                                  pore_side=True if spill_ is None else ~spill_[0])
        return np.ascontiguousarray(res_[core])

    depth = [CLASSIFIER_BOUNDARY_PASSES] * 3
    if edges is not None:
        # the particle side reads the pore within the reach, the pore side one voxel beyond its result
        depth = [depth[0], *(p + r + 2 for p, r in zip(depth[1:], edges.reach_px))]
    if spill_reach:
        # the unmixed grey's gradient, and the foil's distance along the stacking axis
        depth = [p + g for p, g in zip(depth, gradient_reach(vox))]
        depth[stack_axis] += spill_reach
    return _overlap(decide, out, depth, np.uint8,
                    extra=(smoothed, _gradient(smoothed, vox), reg)).rechunk(out.chunks)


def _forest_void_filled(phases: da.Array, reg: da.Array, names: Mapping[str, int], *, cathode: bool) -> da.Array:
    """The classifier's ``void`` labels made ``electrolyte`` in the cathode region (``cathode``
    True), or everywhere else (False), chunked.

    Which part of a pore is empty is read from physical cues (a dark core far below the
    electrolyte's level, the shine-through tail behind it), not from a voxel's grey and texture:
    an empty pore's face shows the material beyond it, and electrolyte far from any bright solid
    reads darker than beside one.  The cathode's pore is filled before the void split, which
    decides it; the rest (the separator's pore, where no split runs and method ``layers`` finds no
    void) after the classifier's boundary steps, which leave void alone: filled before them, its
    darker voxels lowered the separator's electrolyte level and the fibre cut with it (24x192
    diglyme seed 1, corrected: separator Dice 0.977 -> 0.975).  The forest's void kept in the
    detected separator region before (24x192 diglyme, oracle-corrected): 1 689 voxels on seed 0,
    9 738 on seed 1, of them 8 252 the truth's electrolyte and ~1 500 the cathode's true void beyond
    the detected separator|cathode cut (the layers' error, not the split's).  Measured
    (``benchmarks/segmentation.py --slices 24 --size 192 --methods classifier``, corrected /
    oracle-corrected, kept -> filled): void Dice, seed 0, 0.765 / 0.765 -> 0.772 / 0.771
    (diglyme), 0.284 / 0.321 -> 0.299 / 0.333 (carbonate); seed 1 0.750 / 0.742 -> 0.767 / 0.775,
    0.486 / 0.611 -> 0.500 / 0.622; electrolyte Dice up on all eight rows, every other phase and
    interface unchanged.
    """
    void_v, elec_v, cat_v = np.uint8(names["void"]), np.uint8(names["electrolyte"]), np.uint8(REGIONS["cathode"])

    def fill(p: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.where((p == void_v) & ((r == cat_v) == cathode), elec_v, p)

    return da.map_blocks(fill, phases, reg.rechunk(phases.chunks), dtype=np.uint8)


def _joined_pore_voted(before: da.Array, after: da.Array, reg: da.Array, *, names: Mapping[str, int],
                       vox: tuple[float, float, float], sigma_nm: float) -> da.Array:
    """The cathode's voxels a step after the void split returned to the pore (``electrolyte`` in
    ``after``, a solid in ``before``) voted void or electrolyte as the split's own pore voxels were
    (:func:`volrecon.segment.voids.vote_joined`), chunked.

    The classifier's boundary re-decision (:func:`_boundaries_redecided`) gives the pore back the
    edge voxels the forest read as binder, beside the voids too, where the split (which ran on the
    forest's binder) could not take them; it labels them electrolyte.  Measured
    (``benchmarks/segmentation.py --slices 24 --size 192 --methods classifier``, corrected /
    oracle-corrected, without -> with the vote): void Dice, seed 0, 0.755 / 0.761 -> 0.765 / 0.765
    (diglyme), 0.280 / 0.311 -> 0.284 / 0.321 (carbonate); seed 1 0.734 / 0.729 -> 0.750 / 0.742,
    0.487 / 0.611 -> 0.486 / 0.611; diglyme seed 0 void fraction 0.166 / 0.171 -> 0.179 / 0.182
    (truth 0.185), its false void 0.032 / 0.034 -> 0.038 / 0.040; electrolyte Dice +0.007 to
    +0.015 on diglyme; pore and binder unchanged (the vote swaps pore labels only).
    """
    void_v, elec_v, cat_v = names["void"], names["electrolyte"], REGIONS["cathode"]

    def vote(a_: np.ndarray, b_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        cat = r_ == cat_v
        joined = (b_ != elec_v) & (b_ != void_v)
        return np.ascontiguousarray(vote_joined(a_, cat, joined, void=void_v, electrolyte=elec_v, sigma_nm=sigma_nm,
                                                voxel_size_nm=vox)[core])

    return _overlap(vote, after, pore_vote_reach(sigma_nm, vox), np.uint8, extra=(before, reg)).rechunk(after.chunks)


def _electrolyte_levelled(smoothed: da.Array, reg: da.Array, out: da.Array, *, electrolyte: int | None,
                          zs: np.ndarray, stride: int, info: dict[str, Any]) -> da.Array:
    """``smoothed`` with each slice's grey shifted so that the cathode's electrolyte sits at one
    level in every slice (:func:`_electrolyte_slice_offsets`); unchanged without an electrolyte
    phase or too few of its voxels.

    The pooled level and spread the slices' levels are sought about are the cathode's interior
    electrolyte in the sampled slices ``zs`` (every ``stride``-th row).  The offsets' range is
    recorded in ``info["slice_level_offset"]``.
    """
    if electrolyte is None:
        return smoothed
    g, o, r = (np.asarray(a) for a in da.compute(smoothed[zs, ::stride], out[zs, ::stride], reg[zs, ::stride]))
    pore = _morph((o == electrolyte) & (r == REGIONS["cathode"]), np.ones((1, 3, 3), bool), erode=True)
    if pore.sum() < 100:
        return smoothed
    found = _electrolyte_slice_offsets(smoothed, out, reg, *electrolyte_level(g[pore]), electrolyte=electrolyte,
                                       region=REGIONS["cathode"])
    if found is None:
        return smoothed
    info["slice_level_offset"] = [float(found[0].min()), float(found[0].max())]
    return _slice_shifted(smoothed, found[0])


MIN_MODEL_VOXELS = 100
"""Fewest voxels of each phase the image model of :func:`_dark_rim_length` is fitted on."""

DARK_FIT_WINDOW_PX = 192
"""Largest in-plane side (pixels) of the window :func:`_dark_rim_length` fits its image model in.

The length depends on two of the model's parameters (probe blur, edge gain), which six slices of
this window fix: on the oracle-corrected 24x256x256 diglyme phantom (seed 0) windows of 128, 192
and 256 pixels read a blur of 7.80 nm (truth 8), an edge gain of 0.504-0.512 (truth 0.5) and a
length of 21.80-21.91 nm, for 0.16 / 0.23 / 0.88 CPU-s (the forward refinement's 384 pixels would
take 2.5 CPU-s on a 512 px stack)."""


DARK_GAP_SHARE = 0.5
"""Smallest share of the plain levels' gap that the dark-side levels of two neighbouring phases must
keep (:func:`levels_keep_order`)."""


def levels_keep_order(plain: Mapping[int, float], dark: Mapping[int, float], share: float = DARK_GAP_SHARE) -> bool:
    """Whether the dark-side levels keep the plain levels' order, each neighbouring gap at least
    ``share`` of the plain one.  On a small crop the dark side's correction can take more off the
    brighter phase than the darker (electrolyte 0.203 / binder 0.190 for 0.210 / 0.227 plain): its
    nearest-level cut would then swap the two phases."""
    order = sorted(dark, key=lambda v: plain[v])
    return all(dark[b] - dark[a] >= share * (plain[b] - plain[a]) for a, b in zip(order, order[1:]))


def _by_chunk_row(zs: np.ndarray, chunks: Sequence[int]) -> list[np.ndarray]:
    """The sorted slice indices ``zs`` grouped by the chunk (of ``chunks`` along z) each lies in."""
    row = np.searchsorted(np.cumsum(chunks), zs, side="right")
    return [zs[row == r] for r in np.unique(row)]


def _dark_rim_length(src: da.Array, smoothed: da.Array, reg: da.Array, out: da.Array, *, region: int,
                     values: Sequence[int], rule: tuple[float, Mapping[int, float]], vox: tuple[float, float, float],
                     smooth_nm: float, info: dict[str, Any]) -> tuple[float, fr.ImageModel] | None:
    """The rim length that returns the dark side of a boundary to its level
    (:func:`volrecon.segment.cathode_rims.dark_side_rim_length`), on the image model
    (:func:`volrecon.segment.forward_refine.fit_image_model`: levels, probe blur, edge gain) fitted
    on ``src`` and the classifier's labels ``values`` in ``region``.

    The model is fitted as :func:`_forward_refined` fits it (up to six evenly spread slices, in the
    window that holds the most of the region, here of at most :data:`DARK_FIT_WINDOW_PX` pixels a
    side), without the voids' shine-through (voids and their surroundings are left out).  The labels
    it reads have their boundaries re-decided by ``rule`` (``(length, levels)``, slice by slice): the
    forest's own boundaries, off by a voxel, read the rims as a weaker edge gain (diglyme 24x192,
    seed 0, corrected: 0.35 on the forest's labels, 0.50-0.51 on the re-decided ones, 0.50 on the
    truth).  Returned with the model.  None where a phase has fewer than :data:`MIN_MODEL_VOXELS`
    voxels there, or the length is not positive or beyond
    :data:`~volrecon.segment.cathode_rims.RIM_LENGTH_MAX_NM`; the model is recorded in ``info``.
    """
    zs = fr.sample_slices(int(out.shape[0]), 0)
    win = fr.fit_window(np.asarray(reg[zs].compute()) == region, DARK_FIT_WINDOW_PX)
    # one chunk row at a time: the lazy classes of every row holding a sampled slice were computed at once
    # (400 slices: six rows, +300-400 MB over one; benchmarks/results/segment_memory.md, session 26)
    parts = [da.compute(src[(z, *win)], smoothed[(z, *win)], _gradient(smoothed[z], vox)[(slice(None), *win)],
                        out[(z, *win)], reg[(z, *win)] == region) for z in _by_chunk_row(zs, out.chunks[0])]
    grey, sm, grad, lab, where = (np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(5))
    length, levels = rule
    lab = np.concatenate([redecide_boundaries(lab[i: i + 1], rim_corrected(sm[i: i + 1], grad[i: i + 1], length),
                                              where[i: i + 1], levels, passes=CLASSIFIER_BOUNDARY_PASSES)
                          for i in range(lab.shape[0])])
    if min(int(((lab == v) & where).sum()) for v in values) < MIN_MODEL_VOXELS:
        return None
    model = fr.fit_image_model(np.asarray(grey, np.float32), lab, where, None, pixel_nm=vox[1:], slice_nm=vox[0],
                               values=values)
    dark = dark_side_rim_length(model, vox, smooth_sigma_vox=smoothing_sigma(smooth_nm, vox))
    info["dark_rim_length_nm"] = dark
    info["image_model"] = {"psf_sigma_nm": model.psf_sigma_nm, "edge_gain": model.edge_gain,
                           "residual_rms": model.residual_rms}
    # a model whose rims come out negative (labels that fit no edge) gives no length to trust
    return (dark, model) if 0.0 < dark <= RIM_LENGTH_MAX_NM else None


def _layers_decide(phases: da.Array, regions: da.Array, packed: Any, rules: Sequence[LayerRule], *,
                   names: Mapping[str, int], bits: int, chunks: Any, bulk: Layers | None = None) -> da.Array:
    """The classifier's labels that cannot exist in their detected layer replaced
    (:func:`volrecon.segment.classifier.decide_in_regions`), chunked.

    ``bulk``: the layers with the separator|cathode surface moved towards the anode by the
    cathode's contact reach (:func:`volrecon.segment.regional.contact_reach`); the separator's
    voxels before it are its bulk (:data:`volrecon.segment.classifier.SEPARATOR_BULK`), where the
    cathode's solids cannot lie either.

    A replacement never makes void (a void pick becomes electrolyte): which part of the pore is
    empty is not the classifier's call (shine-through), it is the void split's, which runs after
    this step on the labels it leaves.  The forest reads a void's dark face as sodium metal or as
    separator as readily as pore; labels the cathode cannot hold are outside the split's pore and
    binder, and split first, those voids became electrolyte here.  Measured
    (``benchmarks/segmentation.py --slices 24 --size 192 --methods classifier``, split after ->
    before this step, corrected / oracle-corrected): of the diglyme seed 0 phantom's true cathode
    void (oracle-corrected), 5 500 voxels (7.8 %) were sodium, separator or SEI at the split;
    classifier void Dice, seed 0,
    0.737 / 0.747 -> 0.755 / 0.761 (diglyme), 0.245 / 0.290 -> 0.280 / 0.311 (carbonate); seed 1
    0.721 / 0.720 -> 0.734 / 0.728, 0.484 / 0.608 -> 0.487 / 0.611; pore and binder Dice within
    -0.0005 and -0.0023.
    """
    void_v, elec_v = names.get("void"), names.get("electrolyte")
    relabel = {void_v: elec_v} if void_v is not None and elec_v is not None else None
    pk = packed if isinstance(packed, da.Array) else da.from_array(packed, chunks=chunks)
    sep, deep = REGIONS["separator"], DECISION_REGIONS[SEPARATOR_BULK]

    def decide(p: np.ndarray, r: np.ndarray, c: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if bulk is not None and bulk.heights.get("separator|cathode") is not None:
            sl = tuple(slice(a, b) for a, b in block_info[0]["array-location"])
            r = np.where((r == sep) & (region_block(bulk, sl, r.shape) == sep), np.uint8(deep), r)
        return decide_in_regions(p, c, r, rules, relabel=relabel, bits=bits)

    return da.map_blocks(decide, phases.rechunk(chunks), regions.rechunk(chunks), pk.rechunk(chunks), dtype=np.uint8)


SAMPLE_VOXELS = 8_000_000
"""Most voxels read for a grey-value sample (thresholds, levels): bounded memory at any volume size."""


DARK_VOID_MIN_SAMPLE = 1000
"""Least pore voxels of the found separator in :func:`_dark_voids`'s sample: fewer give the electrolyte's
level (a histogram's mode, 200 bins) and spread too loosely to cut the voids' cores on.  A slice's own level
(:func:`_slice_levels`) takes as many: with half of them it has none."""


def _sample_index(shape: Sequence[int], max_slices: int = 64, max_voxels: int = SAMPLE_VOXELS) -> tuple[np.ndarray, int]:
    """Up to ``max_slices`` evenly spread slices, and the row stride that keeps them under ``max_voxels``."""
    nz = int(shape[0])
    zs = np.unique(np.linspace(0, nz - 1, min(nz, max_slices)).round().astype(int))
    per_slice = int(np.prod([int(v) for v in shape[1:]]))
    return zs, max(1, -(-zs.size * per_slice // max_voxels))


def _rows_beside(ny: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The stack rows of a ``::stride`` sample (:func:`_sample_index`) with their neighbours across y,
    and where the sampled rows lie among them.

    A label sample's in-plane interior (:func:`volrecon.segment.classifier.sampled_interior`) needs
    each sampled row's true neighbours: the rows beside each other in the sample are ``stride``
    apart in the stack (review rev20 L6: at stride 8 a voxel a row from the binder's edge passed for
    its interior).  At most three times the sample's rows; the sample's own rows at stride 1.

    Parameters
    ----------
    ny : int
        Rows of the stack.
    stride : int
        The sample's row stride.

    Returns
    -------
    rows : ndarray of int
        Increasing stack rows to read.
    at : ndarray of int
        Index of each sampled row (``0, stride, ...``) in ``rows``.
    """
    picked = np.arange(0, int(ny), int(stride))
    rows = np.unique(np.concatenate([picked - 1, picked, picked + 1]).clip(0, int(ny) - 1)) if stride > 1 else picked
    return rows, np.searchsorted(rows, picked)


def _interior_sample(smoothed: da.Array, labels: da.Array, reg: da.Array | None, *, zs: np.ndarray, stride: int,
                     extra: Sequence[da.Array] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """The sampled slices ``zs`` and every ``stride``-th row of ``smoothed``, ``labels`` and ``reg``, with
    the labels' in-plane interior there tested against each sampled row's true neighbours
    (:func:`_rows_beside`, :func:`volrecon.segment.classifier.sampled_interior`), computed in one pass
    with the already sampled lazy arrays ``extra``.

    Returns
    -------
    grey, labels, interior : ndarray
        On the sample's grid.
    regions : ndarray or None
        ``reg`` there (None without it).
    extra : list of ndarray
        ``extra``, computed.
    """
    rows, at = _rows_beside(smoothed.shape[1], stride)
    lazy = [smoothed[zs, ::stride], labels[zs][:, rows], *([] if reg is None else [reg[zs, ::stride]]), *extra]
    g, wide, *more = (np.asarray(a) for a in da.compute(*lazy))
    r = None if reg is None else more.pop(0)
    return g, wide[:, at], sampled_interior(wide, rows, rows[at]), r, more


def _region_samples(smoothed: da.Array, regions: da.Array, values: Sequence[int], *,
                    max_slices: int = 64) -> dict[int, np.ndarray]:
    """Smoothed grey values of each region of ``values``, from up to ``max_slices`` evenly spread
    slices (every few rows of them on large slices: at most :data:`SAMPLE_VOXELS`), read once for
    all of them (the slices of a volume kept in scratch cost the chunks they lie in)."""
    zs, stride = _sample_index(smoothed.shape, max_slices)
    g, r = (np.asarray(a) for a in da.compute(smoothed[zs, ::stride], regions[zs, ::stride]))
    return {int(v): g[r == v] for v in values}


def _slice_histograms(smoothed: da.Array, out: da.Array, reg: da.Array, edges: np.ndarray, *,
                      electrolyte: int, region: int) -> np.ndarray:
    """Each slice's histogram (:func:`volrecon.segment.voids.slice_histograms`) of the grey of its
    ``electrolyte`` voxels in ``region`` whose in-plane neighbours are electrolyte too (beside a
    boundary the grey carries the edge's blur and rims, and a void's outer ring).  Chunked: one
    histogram per slice and in-plane chunk, summed.

    Only the labels need the in-plane context (the erosion); the grey is read by its own chunk's
    task alone.  The chunks run one row after the other, their context slices copied
    (:func:`volrecon.segment._rows.store_by_rows`).  Computed as one graph with the grey in the
    context, the float chunks were held whole behind the thin context views they lend their
    neighbours, which then set the segmentation's peak.

    Parameters
    ----------
    smoothed : dask.array.Array
        Denoised grey values.
    out, reg : dask.array.Array
        Phase and region labels (the shape of ``smoothed``).
    edges : ndarray
        Bin edges (:func:`volrecon.segment.voids.slice_level_edges`).
    electrolyte, region : int
        Label values of the electrolyte phase and of the region sampled.

    Returns
    -------
    ndarray, shape (Z, bins)
        Each slice's histogram.
    """
    def inner(o_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        keep = _morph((o_ == electrolyte) & (r_ == region), np.ones((1, 3, 3), bool), erode=True)
        return np.ascontiguousarray(keep[core])

    return _kept_slice_histograms(smoothed, _overlap(inner, out, (0, 1, 1), bool, extra=(reg,)), edges)


def _kept_slice_histograms(grey: da.Array, kept: da.Array, edges: np.ndarray) -> np.ndarray:
    """Each slice's histogram (:func:`volrecon.segment.voids.slice_histograms` on ``edges``) of the
    ``grey`` of its ``kept`` voxels (bool, ``grey``'s shape), shape ``(Z, bins)``: one histogram per
    slice and chunk, computed one chunk row after the other (:func:`volrecon.segment._rows.store_by_rows`)
    and summed, so the chunks give the whole array's counts exactly."""
    def hist_of(g_: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return slice_histograms(np.where(keep, g_, np.float32(np.nan)), edges)[:, None, None]

    nb = len(edges) - 1
    hist = da.map_blocks(hist_of, grey.astype(np.float32).rechunk(kept.chunks), kept, new_axis=3, dtype=np.int64,
                         chunks=(kept.chunks[0], (1,) * len(kept.chunks[1]), (1,) * len(kept.chunks[2]), (nb,)))
    per_chunk = np.zeros(hist.shape, np.int64)
    store_by_rows(hist, per_chunk)
    return per_chunk.sum(axis=(1, 2))


def _electrolyte_slice_offsets(smoothed: da.Array, out: da.Array, reg: da.Array, level: float, spread: float, *,
                               electrolyte: int, region: int) -> tuple[np.ndarray, float, float] | None:
    """Each slice's electrolyte level less the stack's (the median slice's), with that level and the
    electrolyte's spread about the slices' own levels (:func:`volrecon.segment.voids.slice_levels`
    on :func:`_slice_histograms` of ``smoothed``, in a window about the pooled ``level`` and
    ``spread``).

    Frozen electrolyte is one material: its grey is the same in every slice of a well-corrected
    stack, and what the brightness correction leaves shifts a whole slice's grey against levels
    measured over the stack.  A slice with too few electrolyte voxels for a level gets no offset:
    its own error is unknown, and the errors wander from slice to slice with no trend to
    interpolate.  None where no slice has a level.
    """
    edges = slice_level_edges(level, spread)
    per, sp = slice_levels(_slice_histograms(smoothed, out, reg, edges, electrolyte=electrolyte, region=region), edges)
    found = np.isfinite(per)
    if not (found.any() and np.isfinite(sp)):
        return None
    level = float(np.median(per[found]))
    return np.where(found, per - level, 0.0).astype(np.float32), level, float(sp)


def _slice_shifted(grey: da.Array, offset: np.ndarray) -> da.Array:
    """``grey`` less ``offset[z]`` in each slice ``z``."""
    return grey - da.from_array(np.asarray(offset, np.float32)[:, None, None], chunks=(grey.chunks[0], 1, 1))


_PlanePiece = tuple[tuple[slice, slice], np.ndarray, np.ndarray]
"""One in-plane chunk of a pair slice in :func:`_void_samples`: its (y, x) region, its kept voxels
(``np.packbits``) and their grey."""


def _void_samples(grey: da.Array, labels: da.Array, regions: da.Array, zs: np.ndarray, stride: int,
                  planes: np.ndarray, space: Callable[[np.ndarray, np.ndarray], np.ndarray]
                  ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict[int, list[_PlanePiece]]]:
    """What the void split's statistics read, in one pass over the chunks (:func:`_reduced_chunks`).

    Returned: ``grey[zs, ::stride]``, ``labels[zs, ::stride]`` and ``regions[zs, ::stride]`` (the
    sample of :func:`_sample_index`), and, per slice of ``planes``, its ``space(labels, regions)``
    voxels and their grey (pieces per in-plane chunk, :func:`_pore_plane`): the walls' dark cores
    read no other voxel, so the whole slices are never held (up to 64 of them, 6 bytes a voxel).
    """
    ny, nx = (int(v) for v in grey.shape[1:])
    g_z = np.empty((zs.size, len(range(0, ny, stride)), nx), grey.dtype)
    o_z = np.empty(g_z.shape, labels.dtype)
    r_z = np.empty(g_z.shape, regions.dtype)

    def reduce(region: tuple[slice, ...], g: np.ndarray, o: np.ndarray, r: np.ndarray) -> tuple[Any, list]:
        z0, y0 = region[0].start, region[1].start
        at = (zs >= z0) & (zs < region[0].stop)
        ly = (-y0) % stride
        picked = None
        if at.any():
            zl, rows_ = zs[at] - z0, slice(ly, None, stride)
            picked = (np.nonzero(at)[0], (y0 + ly) // stride, g[zl, rows_], o[zl, rows_], r[zl, rows_])
        kept = []
        for z in planes[(planes >= z0) & (planes < region[0].stop)]:
            m = space(o[z - z0], r[z - z0])
            kept.append((int(z), np.packbits(m), g[z - z0][m]))
        return picked, kept

    rows = np.searchsorted(np.cumsum(grey.chunks[0]), np.concatenate([zs, planes]), side="right")
    pieces: dict[int, list[_PlanePiece]] = {int(z): [] for z in planes}
    for region, (picked, kept) in _reduced_chunks([grey, labels, regions], reduce, np.unique(rows)):
        if picked is not None:
            iz, y_at, g, o, r = picked
            at = (iz, slice(y_at, y_at + g.shape[1]), region[2])
            g_z[at], o_z[at], r_z[at] = g, o, r
        for z, bits, vals in kept:
            pieces[z].append((region[1:], bits, vals))
    return (g_z, o_z, r_z), pieces


def _pore_plane(pieces: Sequence[_PlanePiece],
                shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """A slice's grey (NaN outside the kept voxels) and the kept voxels, from the pieces of
    :func:`_void_samples`."""
    grey = np.full(tuple(shape), np.nan, np.float32)
    kept = np.zeros(tuple(shape), bool)
    for (ys, xs), bits, vals in pieces:
        h, w = ys.stop - ys.start, xs.stop - xs.start
        m = np.unpackbits(bits, count=h * w).reshape(h, w).view(bool)
        kept[ys, xs] = m
        grey[ys, xs][m] = vals
    return grey, kept


def _plane_pairs(zn: np.ndarray, k: int, of: Callable[[int], np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(of(z), of(z + k))`` for each ``z`` of ``zn`` (increasing), each slice's ``of`` computed once
    and dropped after its last pair."""
    uses = Counter([int(z) for z in zn] + [int(z) + k for z in zn])
    done: dict[int, np.ndarray] = {}

    def take(z: int) -> np.ndarray:
        if z not in done:
            done[z] = of(z)
        uses[z] -= 1
        return done[z] if uses[z] else done.pop(z)

    for z in zn:
        a = take(int(z))
        yield a, take(int(z) + k)


def _cathode_voids(src: da.Array, reg: da.Array, out: da.Array, *, names: Mapping[str, int],
                   vox: tuple[float, float, float], smooth_nm: float, cues: VoidCues, params: dict[str, Any],
                   warnings: list[str], folder: Scratch | None = None) -> da.Array:
    """Void vs electrolyte in the cathode pore (:func:`volrecon.segment.voids.split_voids`), chunked.

    The split works on the pore average of the grey ``src`` (:func:`volrecon.segment.voids.split_grey`:
    the cathode's pore over its own voxels, its binder over the pore and binder; with ``average_nm`` 0,
    on the ``smooth_nm`` smoothing) less a residual curtain's darkening in the pore and binder, read on
    the particles of each column (:func:`volrecon.segment.voids.stripe_darkening`; ``cues.stripe_nm`` 0:
    none), and
    the electrolyte level and spread come from those values on the cathode's ``electrolyte`` voxels
    (those whose in-plane neighbours are electrolyte too): every slice gets its own level
    (:func:`volrecon.segment.voids.slice_levels` on each slice's histogram, summed over its
    in-plane chunks: :func:`_slice_histograms`), the stack's level is the median slice's, and the
    grey the split reads is offset per slice so that every slice's electrolyte sits at that level
    (a slice with too few electrolyte voxels for a level is not offset; the offsets' range is
    ``parameters["void_split"]["slice_level_offset"]``).  The histograms' window comes from the
    pooled values of up to 64 evenly spread slices.  Unless ``cues.wall_shift_nm`` is given, the void walls'
    sideways shift over the shine-through depth is measured on the dark cores of up to 32 slice
    pairs that far apart (:func:`volrecon.segment.voids.wall_shift`).  The spread the split counts in
    is floored by the dark cores' spill through the pore average
    (:func:`volrecon.segment.voids.spread_floor`: a noise-free or denoised stack must not get a
    more permissive dark test), and, with ``cues.shine_from_stack``, the shine-through depth is
    measured on the stack (:func:`_measured_shine_depth`) and replaces ``cues.shine_depth_nm`` where
    the measurement is clear (``parameters["void_split"]``: ``noise_spread``, ``spread_floor``,
    ``dark_contrast``, ``shine_depth_source`` and the measured profile).  The grey values the split
    reads are computed once (:func:`_materialise` into ``folder``, or into memory when None): the
    samples and the split both read them.  The samples are taken in one pass over the chunks
    (:func:`_void_samples`): of the pairs' slices only the pore's voxels and their grey are kept, and
    each pair's cores are found and dropped in turn (the whole slices, up to 64 of grey, classes
    and regions held at once beside the histograms' pass, were 384 MB at 1024x1024, 1.2 GB at
    2048x1536).
    """
    elec_v, void_v, bind_v = names["electrolyte"], names["void"], names["binder"]
    act_v = names.get("active")  # asked by name: a vocabulary without particles has no lit ring
    if act_v is None and cues.lit_ring:
        warnings.append("void split: no 'active' phase in the vocabulary, so no particle lights a void's face "
                        "(the lit ring is off)")
    cat_v = REGIONS["cathode"]

    def space_of(o_: np.ndarray, r_: np.ndarray) -> np.ndarray:
        """The cathode's pore and binder: where voids may be."""
        return (r_ == cat_v) & ((o_ == elec_v) | (o_ == bind_v))

    if cues.average_nm > 0:
        def avg(g_: np.ndarray, o_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
            c_ = r_ == cat_v
            return np.ascontiguousarray(split_grey(g_, c_ & (o_ == elec_v), c_ & (o_ == bind_v),
                                                   sigma_nm=cues.average_nm, voxel_size_nm=vox)[core])

        # the pore average is in-plane only (a void's dark core must not be carried along z)
        reach = (0, *pore_vote_reach(cues.average_nm, vox)[1:])
        smoothed = _overlap(avg, _compact(src), reach, np.float32, extra=(out, reg)).rechunk(out.chunks)
    else:
        smoothed = _smoothed(src, smooth_nm, vox)
    if act_v is not None and cues.stripe_nm > 0:
        # a residual curtain's darkening, measured on the particles of the column, is taken off the
        # pore and binder (a dark stripe over electrolyte is not a void)
        space = space_of(out, reg)
        stripes = _stripe_darkening(_compact(src), (reg == cat_v) & (out == act_v), space, cues=cues,
                                    vox=vox).rechunk(out.chunks)
        smoothed = da.where(space, smoothed - stripes, smoothed)
    smoothed = grey0 = _materialise(smoothed, folder, "void_grey")
    nz = smoothed.shape[0]
    zs, stride = _sample_index(smoothed.shape)
    # slice pairs one shine-through depth apart, for the walls' sideways shift over that depth
    k = max(1, int(round(cues.shine_depth_nm / vox[0])))
    zn = np.unique(np.linspace(0, nz - 1 - k, min(max(nz - k, 0), 32)).round().astype(int)) if nz > k else zs[:0]

    # one pass over the chunks: each is reduced to the sample and to the pairs' pore grey before the next
    sample, planes = _void_samples(smoothed, out, reg, zs, stride,
                                   np.unique(np.concatenate([zn, zn + k])) if cues.wall_shift_nm is None else zs[:0],
                                   space_of)
    g_z, o_z, r_z = sample
    pore_z = (o_z == elec_v) & (r_z == cat_v)
    # the electrolyte's own level and noise: pore voxels whose in-plane neighbours are pore too (the
    # voxels beside a boundary carry the edge's blur and rims, and a void's outer ring)
    inner = _morph(pore_z, np.ones((1, 3, 3), bool), erode=True)
    pore_vals = g_z[inner] if inner.sum() >= 100 else g_z[pore_z]
    # the space's grey and slices, for the dark cores' contrast (spread_floor)
    space_z = space_of(o_z, r_z)
    space_vals, space_slice = g_z[space_z], np.broadcast_to(zs[:, None, None], g_z.shape)[space_z]
    del sample, g_z, o_z, r_z, pore_z, inner, space_z
    if pore_vals.size < 100:
        warnings.append("void not separated: too few cathode pore voxels to find the electrolyte level")
        return out
    level, spread = electrolyte_level(pore_vals)
    del pore_vals
    # each slice's electrolyte is brought to one level: the correction's residual brightness errors
    # would shift a whole slice's dark test (see slice_levels)
    offset = np.zeros(nz, np.float32)
    shifted = False
    levels_ = _electrolyte_slice_offsets(smoothed, out, reg, level, spread, electrolyte=elec_v, region=cat_v)
    if levels_ is not None:
        offset, level, spread = levels_
        smoothed = _slice_shifted(smoothed, offset)
        shifted = True
    # less noise must not make the dark test more permissive than the average's spill allows
    floor, contrast = spread_floor(space_vals - offset[space_slice], level, cues)
    del space_vals, space_slice
    noise_spread, spread = spread, max(spread, floor)
    depth: ShineDepth | None = None
    if cues.shine_from_stack:
        depth = _measured_shine_depth(smoothed, src, out, reg, offset, level=level, spread=spread, cues=cues, vox=vox,
                                      space_of=space_of)
        if depth.slices:
            cues = replace(cues, shine_depth_nm=depth.slices * float(vox[0]))
            if depth.slices != k and cues.wall_shift_nm is None:
                # the walls' pairs one measured depth apart (the first pass read them the assumed depth apart)
                k = depth.slices
                zn = np.unique(np.linspace(0, nz - 1 - k, min(max(nz - k, 0), 32)).round().astype(int)) if nz > k else zs[:0]
                planes = _void_samples(grey0, out, reg, zs[:0], stride, np.unique(np.concatenate([zn, zn + k])), space_of)[1]
    if cues.wall_shift_nm is None:
        def cores(z: int) -> np.ndarray:
            g_, space_ = _pore_plane(planes.pop(z), smoothed.shape[1:])
            if shifted:
                g_ = g_ - offset[z]
            return dark_cores((level - g_) / max(spread, 1e-12), space_, cues=cues, voxel_size_nm=vox)

        cues = replace(cues, wall_shift_nm=wall_shift(_plane_pairs(zn, k, cores), pixel_nm=vox[1:]))
    params["void_split"] = {"electrolyte_level": level, "electrolyte_spread": spread, "noise_spread": noise_spread,
                            "spread_floor": floor, "dark_contrast": contrast,
                            "shine_depth_source": "measured" if depth is not None and depth.slices else "assumed",
                            **({"shine_depth_profile": depth.to_dict()} if depth is not None else {}),
                            "slice_level_offset": [float(offset.min()), float(offset.max())], **cues.to_dict()}

    def split(o_: np.ndarray, g_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        res_ = split_voids(g_, o_, r_ == cat_v, void=void_v, electrolyte=elec_v, binder=bind_v, active=act_v,
                           level=level, spread=spread, voxel_size_nm=vox, cues=cues)
        return np.ascontiguousarray(res_[core])

    return _overlap(split, out, split_reach(cues, vox), np.uint8, extra=(smoothed, reg)).rechunk(out.chunks)


SHINE_SEARCH = 3.0
"""The shine-through depth is looked for up to this many times the assumed depth (:attr:`VoidCues.shine_depth_nm`)."""


def _measured_shine_depth(smoothed: da.Array, src: da.Array, out: da.Array, reg: da.Array, offset: np.ndarray, *,
                          level: float, spread: float, cues: VoidCues, vox: tuple[float, float, float],
                          space_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ShineDepth:
    """The shine-through depth (:func:`volrecon.segment.voids.measure_shine_depth`) on bands of rows.

    A dark core's column counts where the dark test holds over the in-plane box of ``average_nm``
    around it (the pore average's reach: nearer a core's edge the blur moves where it stops).  The
    box needs whole rows around its centre, so the columns are read in bands of ``2 * ry + 1`` rows,
    evenly spread, all slices, as many voxels as the statistics' grey sample (:func:`_sample_index`);
    the steps are read on the grey ``src`` (brought to each slice's level by ``offset``), not on the
    in-plane average.
    """
    nz, ny, nx = (int(v) for v in smoothed.shape)
    ry, rx = (max(1, int(math.ceil(cues.average_nm / float(v) - 1e-9))) for v in vox[1:])
    band = 2 * ry + 1
    if ny < band or nz < 3:
        return ShineDepth(0, np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    # as many voxels as the grey sample of the split's statistics (_sample_index) holds, in whole rows
    zs, stride = _sample_index(smoothed.shape)
    budget = zs.size * len(range(0, ny, stride)) // max(nz, 1)
    n = ny - 2 * ry if budget >= ny else max(1, budget // band)
    centres = np.unique(np.linspace(ry, ny - 1 - ry, n).round().astype(int))
    rows = np.unique((centres[:, None] + np.arange(-ry, ry + 1)[None]).ravel())
    g, s, o, r = (np.asarray(a) for a in da.compute(smoothed[:, rows], src[:, rows], out[:, rows], reg[:, rows]))
    dark_rows = space_of(o, r) & ((level - g) / max(spread, 1e-12) > cues.dark_k)
    at = np.searchsorted(rows, centres)
    grey = s[:, at].astype(np.float32) - offset[:, None, None]
    del g, s, o, r
    # each centre row's band of rows (bands overlap where every row is a centre)
    dark = dark_rows[:, at[:, None] + np.arange(-ry, ry + 1)[None]]
    inner = ndi.minimum_filter1d(dark.all(axis=2).view(np.uint8), 2 * rx + 1, axis=-1, mode="constant", cval=0) > 0
    return measure_shine_depth(grey, dark_core_ends(dark[:, :, ry], inner),
                               max_slices=int(math.ceil(SHINE_SEARCH * cues.shine_depth_nm / float(vox[0]))))


class Scratch:
    """Folder of the intermediate zarr arrays of a segmentation.

    Parameters
    ----------
    path : Path
        The folder (made when missing).
    owned : bool
        The folder was made for this segmentation (:meth:`temporary`): it is removed with
        everything in it once no dask array reads from it any more (garbage collection, or at
        interpreter exit), or at once by :meth:`remove`.  A folder given by the caller is left
        to the caller; only arrays no longer read (:meth:`drop`) are removed from it.
    """

    def __init__(self, path: Path, owned: bool = False) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.owned = owned
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, True) if owned else None

    @classmethod
    def temporary(cls) -> "Scratch":
        """A new folder in the system's temporary folder, owned."""
        return cls(Path(tempfile.mkdtemp(prefix="volrecon-segment-")), owned=True)

    def remove(self) -> None:
        """Remove an owned folder now (nothing for a caller's folder)."""
        if self._remove is not None:
            self._remove()

    def drop(self, name: str) -> None:
        """Remove the array ``name`` (no dask array may read it any more)."""
        shutil.rmtree(self.path / f"{name}.zarr", ignore_errors=True)


class _Held:
    """A zarr array read by dask that keeps its :class:`Scratch` folder alive while a graph holds it."""

    def __init__(self, store: Any, scratch: Scratch) -> None:
        self.store, self.scratch = store, scratch
        self.shape, self.dtype, self.ndim = store.shape, store.dtype, store.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.store[key]


def _unassigned(phases: Any, shell: np.ndarray | None) -> Any:
    """``phases`` with the frame's rim shell (beside the trench walls and below the cap; ``(y, x)``,
    every slice) set to 0, for the layers and the measurements that average grey values over the
    specimen: the rim lifts those pixels' grey
    (:attr:`volrecon.segment.frame.FrameMask.shell`).  Lazy for a dask array."""
    if shell is None:
        return phases
    if isinstance(phases, da.Array):
        sh = da.from_array(shell, chunks=phases.chunks[1:])[None]
        return da.where(sh, np.uint8(0), phases).astype(phases.dtype)
    return np.where(shell[None], np.uint8(0), phases).astype(phases.dtype)


def _materialise(arr: da.Array, folder: Scratch | None, name: str) -> da.Array:
    """``arr`` computed once, for arrays read by more than one later step: into the zarr array
    ``name.zarr`` of ``folder`` (memory bounded by a few chunks), or into memory when ``folder``
    is None (:func:`_stored`), read back in ``arr``'s chunks (:func:`_read_back`)."""
    return _read_back(_stored(arr, folder, name), folder, name, arr.chunks)


def _stored(arr: da.Array, folder: Scratch | None, name: str) -> Any:
    """``arr`` computed once into the zarr array ``name.zarr`` of ``folder``, or into memory (a numpy
    array) when ``folder`` is None; the store, which the caller may write to before reading it back.

    The zarr chunks are the first chunk along each axis; every zarr chunk is written by one task
    (``arr`` is rechunked onto that grid when its chunk edges are off it), so no lock is needed,
    in threads or processes.  The chain is evaluated one row of chunks along z at a time
    (:func:`volrecon.segment._rows.store_by_rows`): memory bounded by a row, whatever the number
    of slices.
    """
    if folder is None:
        return np.asarray(arr.compute())
    import zarr

    grid = tuple(c[0] for c in arr.chunks)
    aligned = all(all(n == g for n in c[:-1]) for c, g in zip(arr.chunks, grid))
    store = zarr.open_array(str(folder.path / f"{name}.zarr"), mode="w", shape=arr.shape, chunks=grid, dtype=arr.dtype)
    store_by_rows(arr if aligned else arr.rechunk(grid), store)
    return store


def _read_back(store: Any, folder: Scratch | None, name: str, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """A dask array of ``chunks`` reading the store :func:`_stored` wrote ``name`` to (an owned
    ``folder`` is kept while a graph reads it)."""
    if folder is None:
        return da.from_array(store, chunks=chunks)
    if not folder.owned:
        return da.from_zarr(store).rechunk(chunks)
    held = da.from_array(_Held(store, folder), chunks=store.chunks, name=f"materialised-{name}-{uuid.uuid4().hex}",
                         meta=np.empty((0,) * store.ndim, store.dtype))
    return held.rechunk(chunks)


def _smoothed_slices(image: da.Array, zs: np.ndarray, smooth_nm: float, vox: tuple[float, float, float],
                     box: tuple[slice, slice] | None = None) -> np.ndarray:
    """The slices ``zs`` (increasing) of :func:`volrecon.segment.regional.smooth` of ``image``
    (``box``: their in-plane rows and columns alone, default whole): each from the voxels within the
    smoothing's reach around it (what the chunked smoothing gives there, bit for bit); only the
    slice itself (and the box) is filtered, not the slab it is filtered from.

    The slabs are read in runs of neighbouring slices (each input slice once per run), a run at most
    :data:`SAMPLE_VOXELS` (or one slab): memory bounded whatever the number of slices asked for."""
    if np.any(np.diff(np.asarray(zs)) <= 0):
        raise ValueError(f"_smoothed_slices: slices must increase, got {list(zs)}")
    reach = smoothing_reach(smooth_nm, vox) if smooth_nm > 0 else (0, 0, 0)
    shape = tuple(int(n) for n in image.shape)
    inplane = box or (slice(0, shape[1]), slice(0, shape[2]))
    # the in-plane part read: the box and the smoothing's reach beyond it, within the image
    near = [slice(max(0, b.start - r), min(n, b.stop + r)) for b, r, n in zip(inplane, reach[1:], shape[1:])]
    spans = [(max(0, z - reach[0]), int(z), min(shape[0], z + reach[0] + 1)) for z in (int(v) for v in zs)]
    per_slice = (near[0].stop - near[0].start) * (near[1].stop - near[1].start)
    most = max(1, SAMPLE_VOXELS // max(1, per_slice))
    out = np.empty((len(spans), *(b.stop - b.start for b in inplane)), np.float32)
    first = 0
    while first < len(spans):
        last = first
        while last + 1 < len(spans) and spans[last + 1][2] - spans[first][0] <= most:
            last += 1
        z0, z1 = spans[first][0], spans[last][2]
        run = np.asarray(image[z0:z1, near[0], near[1]].compute(), dtype=np.float32)
        for i in range(first, last + 1):
            # the run holds the slice's whole span: its filter reads nothing beyond it (bit for bit the slab's)
            part = (slice(spans[i][1] - z0, spans[i][1] - z0 + 1),
                    *(slice(b.start - c.start, b.stop - c.start) for b, c in zip(inplane, near)))
            out[i] = smooth(run, smooth_nm, vox, region=part)[0]
        first = last + 1
    return out


def _layer_guess(image: Any, src: da.Array, *, order: Sequence[str], values: Sequence[int], smooth_nm: float,
                 vox: tuple[float, float, float]) -> tuple[da.Array, dict[str, Any], da.Array, GreyReader | None]:
    """The first guess the layers are found on: global multi-Otsu classes of the grey values
    denoised by ``2 * smooth_nm`` (:func:`volrecon.segment.regional.smooth`), mapped dark to bright
    onto ``values`` (the phases ``order``).

    The layers are the cell's large-scale geometry: on grey values denoised at twice the regional
    scale the layers' mean levels decide, not a voxel's texture.  For a dask ``image`` the guess is
    lazy (its thresholds are sampled on its own slices, :func:`_smoothed_slices`); for a numpy
    ``image`` the denoised values are computed once, in memory.

    Returns
    -------
    (dask array uint8, dict, dask array float32, callable or None)
        The classes (``src``'s chunks), what was used (``parameters["layer_guess"]``), the denoised
        grey values they were cut on (for a re-cut, :func:`_guess_below_sei`) and, for a lazy guess,
        how some of their slices are read alone (:data:`GreyReader`; None: they are in memory).
    """
    lazy = isinstance(image, da.Array)
    first_nm = 2.0 * max(smooth_nm, 0.0)

    def sm(block: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        return np.ascontiguousarray(smooth(block, first_nm, vox)[core])

    guess = _overlap(sm, _compact(src), smoothing_reach(first_nm, vox), np.float32).rechunk(src.chunks)
    read: GreyReader | None = None
    if lazy:
        # a lazy guess is sampled on its own slices, not on the whole chunks they lie in (the
        # classes compute every chunk again)
        def read(zs: np.ndarray, box: tuple[slice, slice] | None = None) -> np.ndarray:
            return _smoothed_slices(image, zs, first_nm, vox, box)

        t = multi_otsu_thresholds(guess, len(order), read=read)
    else:
        guess_np = guess.compute()
        t = multi_otsu_thresholds(guess_np, len(order))
        guess = da.from_array(guess_np, chunks=src.chunks)
    info = {"thresholds": [float(v) for v in t], "classes": list(order), "smooth_nm": first_nm}
    return guess.map_blocks(apply_thresholds, t, list(values), dtype=np.uint8), info, guess, read


def _sodium_only(lay: Layers) -> Layers:
    """``lay``'s sodium alone as its anode (``sodium|sei`` as the anode's end), for the voxels below the
    sodium surface (:func:`volrecon.segment.layers.region_block`)."""
    return Layers(lay.axis, lay.anode_first, {"sei|separator": lay.heights["sodium|sei"]},
                  {"sodium": True, "separator": False, "cathode": False, "collector": True}, lay.length)


def _sei_level(grey: da.Array, lay: Layers, specimen: Any, *, frame_value: int | None,
               read: GreyReader | None = None) -> float | None:
    """Median of ``grey`` over the SEI film (the anode's voxels beyond the sodium surface, ``specimen``'s
    assigned voxels) on up to 64 evenly spread slices; None where the film holds no voxel.

    Only the in-plane box holding the film in those slices is read, by ``read`` where given (a lazy
    ``grey`` read through its chunks would be computed whole: every chunk holds a sampled slice)."""
    zs, stride = _sample_index(grey.shape)
    ph = np.asarray(da.compute(specimen[zs])[0])
    shape = (1, *grey.shape[1:])
    na = _sodium_only(lay)
    films = np.zeros((zs.size, *grey.shape[1:]), bool)
    for i, z in enumerate(zs):
        sl = (slice(int(z), int(z) + 1), *(slice(0, n) for n in grey.shape[1:]))
        anode = region_block(lay, sl, shape, phases=ph[i:i + 1], frame_value=frame_value) == REGIONS["anode"]
        films[i] = (anode & ~(region_block(na, sl, shape) == REGIONS["anode"]))[0]
    rows, cols = np.nonzero(films.any(axis=(0, 2)))[0], np.nonzero(films.any(axis=(0, 1)))[0]
    if rows.size == 0:
        return None
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    g = read(zs, box) if read is not None else np.asarray(grey[zs][:, box[0], box[1]].compute())
    # the box holds every film voxel: its values come in the order of the whole slices'
    vals = np.concatenate([g[i][films[i][box]][::stride] for i in range(zs.size)])
    return float(np.median(vals))


def _guess_below_sei(grey: da.Array, lay: Layers, specimen: Any, info: dict[str, Any], *,
                     frame_value: int | None, read: GreyReader | None = None) -> np.ndarray | None:
    """The layer guess's thresholds with its sodium | separator one (the second) lowered to the SEI
    film's measured level (:func:`_sei_level` of the layers found on the guess), or None where it
    already lies at or below it (or the film, or the sodium surface, is not found).

    The multi-Otsu of a cell's seven grey levels in five classes has near-equal optima; one of them
    puts the second threshold between the SEI's level and the fibres'.  The sparse separator mat,
    denoised at twice the regional scale, mixes with the electrolyte in its pores and its grey spreads
    down to the film's: such a threshold puts the mat's thinner stretches into the anode's class and
    the layers' separator|cathode cut reads a mat cut short.  Cut at the film's own level, the film
    and the mat share the separator's class, and the sodium and film surfaces are found from the grey
    values as before.  ``info`` (``parameters["layer_guess"]``) gets ``sei_level`` and, when cut
    again, ``below_sei`` (the new thresholds).
    """
    if lay.heights.get("sodium|sei") is None or lay.heights.get("sei|separator") is None:
        return None
    level = _sei_level(grey, lay, specimen, frame_value=frame_value, read=read)
    info["sei_level"] = level
    t = np.asarray(info["thresholds"], dtype=float)
    if level is None or t.size < 2 or not t[0] < level < t[1]:
        return None
    t[1] = level
    info["below_sei"] = [float(v) for v in t]
    return t


def _stripe_darkening(grey: da.Array, particles: da.Array, wanted: da.Array, *, cues: VoidCues,
                      vox: tuple[float, float, float]) -> da.Array:
    """A residual curtain's darkening of each voxel's column (<= 0), measured on ``particles`` (bool, ``grey``'s
    shape; :func:`volrecon.segment.voids.stripe_darkening`), chunked (chunk-exact) and read on the ``wanted``
    voxels' rows alone (bool, ``grey``'s shape: exact there, 0 elsewhere)."""
    def dark(g_: np.ndarray, p_: np.ndarray, w_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        own = np.zeros(w_.shape, bool)  # the block's own wanted voxels, not its context's
        own[core] = w_[core]
        return np.ascontiguousarray(stripe_darkening(g_, p_, cues=cues, voxel_size_nm=vox, wanted=own)[core])

    return _overlap(dark, grey, stripe_reach(cues, vox), np.float32, extra=(particles, wanted))


def _dark_voids(evidence: Any, grey: da.Array, lay: Layers, *, names: Mapping[str, int], frame_value: int | None,
                dark_k: float, read: GreyReader | None = None, cues: VoidCues | None = None,
                vox: tuple[float, float, float] | None = None) -> tuple[Any, dict[str, float]] | None:
    """The layer guess's pore (its ``electrolyte`` class) too dark to hold electrolyte, marked ``void``
    in ``evidence`` (lazily for a dask array: the layers read it once), and the levels it was cut at;
    None where the separator found by ``lay`` holds too little pore to measure the electrolyte's level.

    The guess's darkest class holds the frozen electrolyte, the sodium metal a little brighter and
    the cathode's voids: an empty pore over empty space shows almost nothing, so its core is darker
    than any electrolyte.  The electrolyte's level and noise spread (:func:`electrolyte_level`) are
    read on the guess's grey over the pore of the separator ``lay`` found, on up to 64 evenly
    spread slices: the separator's pores hold electrolyte (the cell loses its electrolyte from the
    cathode's side), and the class's mode over the whole field is the sodium's.  A pore voxel
    ``dark_k`` spreads below that level is a void's (:attr:`VoidCues.dark_k`, the void split's seed
    margin); the layers count it with the cathode (``detect_layers(cathode_voids=True)``).  The level
    is read on every slice as well (:func:`_slice_levels`; the spread is the stack's): a slice the
    correction left darker as a whole had its whole electrolyte marked.  The cut applied is each
    slice's level less ``dark_k`` spreads; ``stack_cut`` records the stack's, ``slice_cut_range`` the
    slices' extremes.  With
    ``cues`` and ``vox``, a residual curtain's darkening measured on the guess's particles
    (:func:`volrecon.segment.voids.stripe_darkening`, as the void split takes it off) is taken off
    the grey first: a dark stripe over the separator's electrolyte is not a void (24x192 carbonate
    seed 0, corrected: the stripe at image columns 128-135 moved the cut into the separator).  It
    is read on the rows of the pore below the cut alone: taking a darkening off only lifts a voxel,
    so no other voxel's mark can change (on the 48x768² speed tiles those rows are 25-29 % of the
    padded blocks' rows).
    """
    elec, void = names["electrolyte"], names["void"]
    zs, stride = _sample_index(grey.shape)
    ph = np.asarray(da.compute(evidence[zs])[0])
    shape = (1, *grey.shape[1:])
    pores = np.zeros(ph.shape, bool)
    for i, z in enumerate(zs):
        sl = (slice(int(z), int(z) + 1), *(slice(0, n) for n in grey.shape[1:]))
        sep = region_block(lay, sl, shape, phases=ph[i:i + 1], frame_value=frame_value) == REGIONS["separator"]
        pores[i] = sep[0] & (ph[i] == elec)
    g = read(zs) if read is not None else np.asarray(grey[zs].compute())
    vals = np.concatenate([g[i][pores[i]][::stride] for i in range(zs.size)])
    if vals.size < DARK_VOID_MIN_SAMPLE:
        return None
    level, spread = electrolyte_level(vals)
    # per slice: the correction's brightness residual moves a slice's electrolyte as a whole
    cuts = _slice_levels(evidence, grey, lay, electrolyte=elec, frame_value=frame_value, level=level,
                         spread=spread) - dark_k * spread

    def mark(p: np.ndarray, v: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        z0, z1 = block_info[0]["array-location"][0] if block_info else (0, p.shape[0])
        return np.where((p == elec) & (v < cuts[z0:z1, None, None]), np.uint8(void), p).astype(p.dtype)

    act = names.get("active")
    if cues is not None and vox is not None and cues.stripe_nm > 0 and act is not None:
        ev = evidence if isinstance(evidence, da.Array) else da.from_array(np.asarray(evidence), chunks=grey.chunks)
        grey = grey.rechunk(ev.chunks)
        # taking a darkening off only lifts a voxel: it is read on the pore the cut would mark alone
        below = grey < da.from_array(cuts[:, None, None], chunks=(grey.chunks[0], 1, 1))
        grey = grey - _stripe_darkening(grey, ev == act, (ev == elec) & below, cues=cues, vox=vox).rechunk(grey.chunks)
    if isinstance(evidence, da.Array):
        marked = da.map_blocks(mark, evidence, grey.rechunk(evidence.chunks), dtype=evidence.dtype)
    else:
        marked = mark(np.asarray(evidence), np.asarray(grey))
    return marked, {"electrolyte_level": float(level), "spread": float(spread),
                    "stack_cut": float(level - dark_k * spread), "dark_k": float(dark_k),
                    "slice_cut_range": [float(cuts.min()), float(cuts.max())]}


def _slice_levels(evidence: Any, grey: da.Array, lay: Layers, *, electrolyte: int, frame_value: int | None,
                  level: float, spread: float) -> np.ndarray:
    """The electrolyte's level in each slice of ``grey``: the mode of the slice's histogram of the grey
    over its pore (``electrolyte`` in the layer guess ``evidence``) in the separator ``lay`` found
    (:func:`volrecon.segment.voids.slice_levels` on bins about the stack's ``level`` and ``spread``,
    :func:`volrecon.segment.voids.slice_level_edges`), read on every slice in one chunked pass (the
    histograms add up over the chunks: chunk-exact).  A slice with fewer than
    :data:`DARK_VOID_MIN_SAMPLE` such voxels in the window moves from its own level towards the
    median slice's (half of them: none of its own), one without a level of its own takes its nearest
    slices' (linearly interpolated), and every slice ``level`` where none has one.

    The correction's slice-by-slice brightness estimate can leave a slice's grey offset as a whole:
    on the 12x160 diglyme seed 3 phantom's real-corrected stack the first four slices' electrolyte
    read 70-79 grey against the stack's 83 (spread 1.3), and the separator's whole film in them was
    marked void against the stack's level (the separator|cathode cut then 10 rows into the mat).
    The offset is a slice's own: read on up to 64 sampled slices and interpolated between them, an
    unsampled dark slice kept the stack's level, and a sampled one lowered its neighbours' cut."""
    ev = evidence if isinstance(evidence, da.Array) else da.from_array(np.asarray(evidence), chunks=grey.chunks)

    def pore(p: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        sl = tuple(slice(*loc) for loc in block_info[0]["array-location"])
        sep = region_block(lay, sl, p.shape, phases=p, frame_value=frame_value) == REGIONS["separator"]
        return sep & (p == electrolyte)

    kept = da.map_blocks(pore, ev.rechunk(grey.chunks), dtype=bool)
    edges = slice_level_edges(level, spread)
    own = slice_levels(_kept_slice_histograms(grey, kept, edges), edges, min_voxels=DARK_VOID_MIN_SAMPLE)[0]
    found = np.flatnonzero(np.isfinite(own))
    if found.size == 0:
        return np.full(int(grey.shape[0]), float(level))
    return np.interp(np.arange(int(grey.shape[0])), found, own[found]).astype(np.float64)


def _cut_beside_voids(guess: Any, grey: da.Array, lay: Layers, *, names: Mapping[str, int], frame_value: int | None,
                      params: dict[str, Any], dark_k: float, read: GreyReader | None,
                      layer_options: Mapping[str, Any], cues: VoidCues | None = None,
                      folder: Scratch | None = None) -> Layers:
    """``lay`` with its ``separator|cathode`` surface found again on the layer ``guess`` whose pore too dark
    to hold electrolyte counts with the cathode (:func:`_dark_voids`; ``lay`` itself where its separator
    holds too little pore to measure the electrolyte on).

    A void topping the cathode reads as the separator's pore in the guess, and the cut on the cathode's
    solids alone goes beyond it (24x192 diglyme seed 3: 6 rows deep over a third of the field, where the
    cathode's first rows are 60 % void).  Only that surface is taken from the new detection: the anode's
    surfaces of ``lay`` were found on the grey values since.  ``params["layer_guess"]["dark_voids"]``
    gets the levels; ``layer_options``: :func:`detect_layers`'s other options; ``folder``: where a dask
    guess's marked copy is kept while the layers read it (:func:`_mark_topping`; dropped after).  The new
    surface is kept beyond the film's outer surface, which :func:`sei_outer_surface` moved onto the cathode where the
    film grew through a thin mat.

    Measured (``benchmarks/segmentation.py --methods auto``, 24x192 seeds 0-3, both presets, corrected /
    oracle-corrected: 16 rows): separator|cathode mean 1.37 -> 1.19 voxels, worst row 2.61 -> 1.57;
    diglyme seed 3 2.61 / 2.13 -> 1.25 / 0.87 (separator Dice 0.960 / 0.965 -> 0.975 / 0.976, void
    0.611 / 0.641 -> 0.673 / 0.689: the void is in the cathode, where the void split looks), seed 1
    1.77 / 1.73 -> 1.53 / 1.57, seed 0 1.30 / 1.36 -> 1.22 / 1.31.  Worse: carbonate seed 0 corrected
    1.21 -> 1.43 (separator 0.951 -> 0.948, void 0.257 -> 0.248), where a dark curtain stripe the
    correction left (image columns 128-135, the sodium 10 grey levels darker as well) reads the separator's
    electrolyte as void; diglyme seed 2 1.03 / 0.94 -> 1.08 / 0.98, carbonate seed 2 corrected
    1.52 -> 1.57, carbonate seeds 0 / 1 oracle +0.02 / +0.01 (``benchmarks/results/separator_cathode_voids.md``
    splits the error by what tops the cathode).  48x256 seeds 0-1 (8 rows): 1.45 -> 1.25, diglyme seed 1
    1.83 / 1.37 -> 1.17 / 0.88; worse carbonate seed 0 1.75 / 1.82 -> 1.78 / 1.89.  The classifier's path
    does not take it on its own labels (its ``void`` is also found in the separator's electrolyte);
    with ``layers_from='grey'`` it reads the grey guess's, as the unsupervised method does.  Since
    session 25 the marked void counts with the particles as well as the solids (the first cut, the
    fibre : particle ratio; :func:`volrecon.segment.layers.detect_layers` ``cathode_voids``): the
    figures above are before it, the void-topped columns of diglyme seed 1 / 3 (corrected) then
    2.81 / 1.42 rows off, 0.79 / 0.84 after (captured guesses,
    ``benchmarks/results/separator_cathode_voids.md``).  Since session 26 only the marked voids that top
    the cathode count with its particles (:func:`_mark_topping`, ``detect_layers(topping=...)``; the
    others with its solids alone, as before session 25), and the electrolyte's level is read per slice
    (:func:`_dark_voids`): 24x192 seeds 0-3 unsupervised, separator|cathode mean over the 16 rows
    1.15 -> 0.98 voxels against main (diglyme 1.19 -> 0.84, carbonate 1.12 -> 1.13; figures in
    :func:`volrecon.segment.layers.detect_layers` ``topping``).  The 12x160 diglyme seed 3 phantom of
    ``tests/test_pipeline.py``: its separator 337 nm thick with every void on the particles' side, 365
    now (main 375, truth 393; the correction left its first four slices 5-13 grey darker, and their
    whole film was marked void against the stack's level); as ``benchmarks/segmentation.py`` measures
    it, separator|cathode 1.21 -> 0.99 voxels corrected, 0.69 -> 0.86 oracle-corrected (worse)."""
    voids = _dark_voids(guess, grey, lay, names=names, frame_value=frame_value, dark_k=dark_k, read=read, cues=cues,
                        vox=layer_options.get("voxel_size_nm"))
    if voids is None:
        return lay
    marked, params["layer_guess"]["dark_voids"] = voids
    vox = layer_options.get("voxel_size_nm")
    step = float(vox[lay.axis]) if vox is not None else 1.0
    reach = max(1, math.ceil(float(params["layer_guess"].get("smooth_nm", 0.0)) / step))
    marked, topping = _mark_topping(marked, lay, names=names, frame_value=frame_value, reach=reach,
                                    band=math.ceil((OUTLIER_NM + 2.0 * REFINE_NM) / step), folder=folder)
    release_memory()  # as before the first detection: its share maps are mapped beyond what the workers freed
    # on the axis ``lay`` stands on: the new surface replaces one of its surfaces, and an axis found again
    # reads the whole marked guess once more before the counts read it
    again = detect_layers(marked, phase_names=names, frame_value=frame_value, cathode_voids=True, topping=topping,
                          **{**layer_options, "axis": lay.axis}).heights["separator|cathode"]
    del marked
    if folder is not None and topping is not None:
        folder.drop("marked_guess")
    if again is None:  # no separator|cathode on the marked guess (a field beginning in the cathode): the first stands
        return lay
    h, film = again, lay.heights.get("sei|separator")
    if film is not None:
        # the layers' order: not before the film's outer surface (moved onto the cathode where it grew through a thin mat)
        h = np.maximum(again, film) if lay.anode_first else np.minimum(again, film)
    return replace(lay, heights={**lay.heights, "separator|cathode": h})


def _mark_topping(marked: Any, lay: Layers, *, names: Mapping[str, int], frame_value: int | None, reach: int,
                  band: int, folder: Scratch | None = None) -> tuple[Any, int | None]:
    """``marked`` with the voids that top the cathode (:func:`volrecon.segment.layers.topping_voids`)
    given a label value of their own, and that value (None, ``marked`` itself: no separator|cathode
    surface in ``lay``, or no value left in the labels' type).

    Only the rows from ``band`` before the separator|cathode surface ``lay`` found on the cathode's
    solids to ``2 * band`` beyond it are read: a void that tops the cathode lies where its solids
    begin, and the other voids count with its solids alone, as every void did before session 25.
    Its floor may lie deep: with the band on both sides (20 rows at 12.7 nm) the 24x192 diglyme
    seed 3 phantom's separator|cathode read 0.99 / 0.97 voxels (corrected / oracle-corrected,
    captured guesses), 0.86 / 0.77 with 30 rows or more beyond.  A void lying on the separator's
    fibres is not the cathode's; the guess's floor reaches its wall's solid class within ``reach``
    voxels (the guess's own smoothing).

    A dask ``marked`` is computed once (:func:`_stored`: into ``marked_guess`` of ``folder``,
    one row of chunks at a time, or into memory without a folder), its voids labelled and marked a
    slab of chunks at a time across the stacking axis
    (:func:`volrecon.segment.layers.topping_voids_slabs`), and read back: the band's labels were
    computed whole (the lazy chain's chunks along it at once) and labelled whole (int32, four bytes
    a voxel), a working set growing with the slice count (``benchmarks/results/segment_memory.md``),
    and the layers read the lazy chain once more.
    """
    h = lay.heights.get("separator|cathode")
    dtype = np.dtype(getattr(marked, "dtype", np.uint8))
    value = max(int(v) for v in names.values()) + 1
    if h is None or not np.isfinite(h).any() or value > np.iinfo(dtype).max:
        return marked, None
    n = int(marked.shape[lay.axis])
    # a void that tops the cathode reaches deeper into it than the cut's band
    before, beyond = (band, 2 * band) if lay.anode_first else (2 * band, band)
    rows = slice(max(0, int(np.floor(np.nanmin(h))) - before), min(n, int(np.ceil(np.nanmax(h))) + beyond))
    lazy = isinstance(marked, da.Array)
    store = _stored(marked, folder, "marked_guess") if lazy else np.array(marked)
    across = 0 if lay.axis != 0 else 1
    cuts = np.cumsum((0, *(marked.chunks[across] if lazy else (marked.shape[across],))))
    slabs = [slice(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]

    def at(s: slice) -> tuple[slice, ...]:
        index = [slice(None)] * 3
        index[across], index[lay.axis] = s, rows
        return tuple(index)

    # no solid: the pore, the separator's fibres, unassigned and frame voxels
    not_solid = [0, *(int(names[k]) for k in ("separator", "frame") if k in names)]
    if frame_value is not None:
        not_solid.append(int(frame_value))
    pore = [int(names[k]) for k in ("void", "electrolyte") if k in names]
    for s, tops in topping_voids_slabs(lambda s: np.asarray(store[at(s)]), slabs, across=across,
                                       void=int(names["void"]), passable=pore, not_solid=not_solid, axis=lay.axis,
                                       anode_first=lay.anode_first, reach=reach):
        if tops.any():
            block = np.asarray(store[at(s)])
            block[tops] = value
            store[at(s)] = block
    return (_read_back(store, folder, "marked_guess", marked.chunks) if lazy else store), value


def _guess_names() -> dict[str, int]:
    """Phase name -> value of the layer guess's classes (:data:`volrecon.phases.PHASES`, frame aside)."""
    return {p: v for p, v in PHASES.items() if p != "frame"}


def _layers_source(method: str, layers_from: str, names: Mapping[str, int]) -> dict[str, str]:
    """What the layers of ``method`` are found on (``source``: ``grey`` or ``phases``) and why
    (``reason``); see ``segment_volume(layers_from=...)``."""
    if method == "layers":
        return {"source": "grey", "reason": "method 'layers' decides its phases within the layers found on the grey guess"}
    if layers_from == "auto":
        return {"source": "phases", "reason": f"default for method {method!r}: its own phases"}
    missing = [p for p in LAYER_PHASES if p not in names]
    if layers_from == "grey" and method == "classifier" and missing:
        return {"source": "phases", "reason": f"layers_from='grey' asked for, but the classifier has no "
                f"{', '.join(missing)} phase: the grey guess's classes ({', '.join(OTSU_ORDER)}) would not name its "
                "layers, so its own phases find them"}
    return {"source": layers_from, "reason": f"requested (layers_from={layers_from!r})"}


CATHODE_SOLIDS: tuple[str, ...] = ("binder", "active")
"""The cathode's solid phases: in the separator region they are the particles' caps beyond the
layers' smooth separator|cathode surface, and the classifier's errors elsewhere
(:func:`_classifier_separator_contacts`)."""


def _classifier_separator_contacts(smoothed: da.Array, reg: da.Array, out: da.Array, forest: da.Array, *,
                                   names: Mapping[str, int], vox: tuple[float, float, float], smooth_nm: float,
                                   params: dict[str, Any], edge: Mapping[str, float] | None,
                                   stack: tuple[int, bool], image: da.Array | None = None,
                                   step_edge: Mapping[str, float] | None = None) -> da.Array:
    """The classifier's separator region decided as method ``layers`` decides it: fibre or pore by
    grey, then the cathode's particles given their caps back (chunked).

    Within the contact reach of the separator|cathode surface the layers' rules let the classifier
    keep the cathode's solids (:data:`volrecon.segment.classifier.IMPOSSIBLE_PHASES`), and there its
    features, tens of nm wide, see the bright particles beyond the mat's last rows: it reads the
    fibres lying on the cathode as binder or active, and the pore lit by a particle's blur as
    binder (24x192 carbonate seed 0, corrected, the two rows before the found cut: of the true
    fibres 419 labelled binder and 260 active, of the true pore 278 binder, for 46 true binder
    labelled binder).  Here, as in ``layers``, a voxel of :data:`CATHODE_SOLIDS` in the separator
    region is first the separator's pore or fibre by its grey, cut between the pore's and the
    fibres' levels where the edge rims put it (:func:`volrecon.segment.regional.rim_cut`), and the
    particles then take back the voxels that lie on them and read as their caps, and those re-read
    voxels lying on them as fibres that read as the lit pore become pore
    (:func:`volrecon.segment.regional.separator_contacts`, cuts from
    :func:`volrecon.segment.regional.level_contact_cuts`).  The forest's own fibres keep their
    label under that last rule: it reads one voxel's denoised grey against a cut between two reads
    whose gap shrinks with the pixel, and at 20 nm pixels the noise spans it (24x160, seed 0,
    oracle-corrected: the true fibres lying on a particle read 0.52-0.73 (10th-90th percentile) for
    a cut of 0.57; with the forest's fibres re-read, separator Dice 0.9216 -> 0.9184 / 0.9275 ->
    0.9240, carbonate / diglyme, where the forest, its boundaries re-decided, had them right).  The
    caps' rule still reads every separator voxel, and at 20 nm pixels it too takes some of the
    forest's right fibres (review rev23, 16x160 oracle-corrected: 100 / 44 right fibres turned
    active on carbonate seeds 0 / 1; keeping the forest's fibres out of it: separator 0.9485 ->
    0.9500 there, but -0.0006 on diglyme at 10 nm, so it is left as it is).  The levels are the classifier's own,
    the medians of ``smoothed`` over the interior voxels of the ``forest``'s labels
    (:func:`volrecon.segment.classifier.interior_levels`): the separator's pore and fibres in the
    separator region, the particles in the cathode, on up to 64 evenly spread slices.  ``edge``:
    the rim fit of the sodium surface (:attr:`volrecon.segment.layers.Layers.edges`; half-way cuts
    without it); ``stack``: the stacking axis and whether the anode comes first.  ``image`` (the
    stack's grey, not denoised): with it, the fibre | particle contact is then placed per column as
    a sub-voxel step (:func:`_fibre_contacts_placed`, the levels the classifier's, the cathode's
    binder among them; the step's blur and rims ``step_edge``, ``edge`` when None).  What was used is
    in ``parameters["classifier_separator_contacts"]``; ``out`` unchanged where a level is missing
    or the particles are not brighter than the fibres, the fibres than the pore.

    Measured (``benchmarks/segmentation.py --slices 24 --size 192 --methods classifier``, corrected
    / oracle-corrected, before -> after): separator Dice, seed 0, 0.969 / 0.970 -> 0.972 / 0.973
    (diglyme), 0.942 / 0.947 -> 0.956 / 0.957 (carbonate); seed 1 0.973 / 0.977 -> 0.975 / 0.979,
    0.803 / 0.790 -> 0.807 / 0.807; seed 2 0.975 / 0.980 -> 0.978 / 0.982, 0.954 / 0.960 -> 0.956 /
    0.961; seed 3 0.974 -> 0.975 (diglyme oracle; corrected unchanged), 0.926 / 0.926 -> 0.936 /
    0.942.  Pore Dice +0.001 to +0.005 and binder Dice +0.005 to +0.013 on all sixteen rows (the
    forest's binder there was the fibres' and the lit pore's), active +0.001 to +0.003 on eight,
    unchanged on the others; the cathode's binder fraction 0.001-0.002 lower on twelve rows (at or
    under the truth before), its porosity within 0.001, the interfaces unchanged.  Before, of the
    carbonate seed 0 corrected separator's missed fibres 465 were labelled binder and 291 active
    inside the found separator region, against 0 and 120 for ``layers``, whose cut lies 1.07 rows
    from the classifier's on average (``benchmarks/separator_errors.py --methods auto,classifier``).
    """
    zs, stride = _sample_index(smoothed.shape)
    g, o, inner, r, _ = _interior_sample(smoothed, forest, reg, zs=zs, stride=stride)
    pore_v, fibre_v, active_v = names.get("electrolyte"), names.get("separator"), names.get("active")
    info: dict[str, Any] = {}
    params["classifier_separator_contacts"] = info
    if pore_v is None or fibre_v is None or active_v is None:
        info["skipped"] = "the classifier has no electrolyte, separator or active phase"
        return out
    binder_v = names.get("binder")
    sep = interior_levels(g, o, r == REGIONS["separator"], [pore_v, fibre_v], interior=inner)
    cat = interior_levels(g, o, r == REGIONS["cathode"], [v for v in (active_v, binder_v) if v is not None],
                          interior=inner)
    if len(sep) < 2 or active_v not in cat:
        info["skipped"] = "too few interior voxels for the separator's or the particles' level"
        return out
    sigma = smoothing_sigma(smooth_nm, vox)
    cuts = level_contact_cuts(sep[pore_v], sep[fibre_v], cat[active_v], edge or {}, sigma)
    if cuts is None:
        info["skipped"] = "levels not in the order pore < fibres < particles"
        return out
    fibre_cut = rim_cut(sep[pore_v], sep[fibre_v], edge or {}, sigma)
    axis, anode_first = stack
    reach = contact_reach(smooth_nm, vox, axis)
    info.update(cuts, fibre=fibre_cut, reach_vox=reach)
    solids = [names[p] for p in CATHODE_SOLIDS if p in names]

    def decide(o_: np.ndarray, g_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        res_ = np.array(o_, copy=True)
        m = (r_ == REGIONS["separator"]) & np.isin(res_, solids)
        res_[m] = np.where(g_[m] >= fibre_cut, np.uint8(fibre_v), np.uint8(pore_v))
        res_ = separator_contacts(g_, r_, res_, axis=axis, towards_cathode=1 if anode_first else -1, cuts=cuts,
                                  names=names, reach=reach, lit_from=m)
        return np.ascontiguousarray(res_[core])

    depth = [0, 0, 0]
    depth[axis] = reach + 1
    res = _overlap(decide, out, depth, np.uint8, extra=(smoothed, reg)).rechunk(out.chunks)
    if image is None or binder_v not in cat:
        return res
    levels = {"pore": sep[pore_v], "fibre": sep[fibre_v], "active": cat[active_v], "binder": cat[binder_v]}
    return _fibre_contacts_placed(image, reg, res, levels=levels, edge=step_edge or edge, names=names, vox=vox,
                                  stack=stack, reach=reach, params=params).rechunk(out.chunks)


def _fibre_layer_phases(smoothed: da.Array, phases: Any, *, names: Mapping[str, int], frame_value: int | None,
                        smooth_nm: float, params: dict[str, Any]) -> Any:
    """The classifier's phases for its own layers: its cathode solids whose grey is the separator
    fibres' counted as fibres (:func:`volrecon.segment.classifier.fibre_evidence`), lazily for a
    dask input.

    The levels are the classifier's interior levels of ``smoothed`` (the grey values denoised by
    ``smooth_nm``, :func:`_smoothed`), measured on the specimen's voxels of up to 64 evenly spread
    slices, the interior read on each sampled row's neighbours in the stack (:func:`_rows_beside`;
    24x192 diglyme seed 0, oracle-corrected, every 8th row: the void's level 0.108 read on the
    sample's own rows, 0.181 on theirs, 0.177 on every row)
    (:func:`volrecon.segment.classifier.fibre_evidence_levels`); where they do not tell the fibres
    from the cathode's solids, ``phases`` as they are.  What was used is in
    ``parameters["layer_fibre_evidence"]``.
    """
    params["layer_fibre_evidence"] = info = {"smooth_nm": smooth_nm, "used": False}
    if "separator" not in names:
        return phases
    zs, stride = _sample_index(smoothed.shape)
    ph = phases if isinstance(phases, da.Array) else da.from_array(phases, chunks=smoothed.chunks)
    g, o, inner, _, _ = _interior_sample(smoothed, ph, None, zs=zs, stride=stride)
    where = (o != 0) if frame_value is None else (o != 0) & (o != frame_value)
    levels, agreement = fibre_evidence_levels(g, o, where, names, interior=inner)
    info.update(used=levels is not None, fibre_agreement=agreement,
                levels={} if levels is None else {k: levels[v] for k, v in names.items() if v in levels})
    if levels is None:
        return phases
    if isinstance(phases, da.Array):
        return da.map_blocks(fibre_evidence, phases, smoothed.rechunk(phases.chunks), levels, names, dtype=np.uint8)
    return fibre_evidence(phases, np.asarray(smoothed.compute()), levels, names)


def _grey_layer_phases(image: Any, src: da.Array, phases: Any, *, frame_value: int | None, smooth_nm: float,
                       vox: tuple[float, float, float], min_size_nm: float, folder: Scratch | None,
                       params: dict[str, Any]) -> tuple[Any, dict[str, int], da.Array, GreyReader]:
    """The layer guess of method ``layers`` (:func:`_layer_guess`, cleaned as its phases are) for
    another method's layers, with that method's frame (``phases == frame_value``) labelled frame.

    ``folder``: where a dask input's guess is kept while the layers are found (``layer_guess``,
    :func:`_materialise`; the caller drops it); None: computed in memory.  ``params["layer_guess"]``
    is set.  Returns the guess, its phase names, and the grey it was cut on and its reader (for
    :func:`_cut_beside_voids`, as method ``layers`` reads them).
    """
    names = _guess_names()
    raw, params["layer_guess"], grey, read = _layer_guess(image, src, order=OTSU_ORDER, values=[names[p] for p in OTSU_ORDER],
                                              smooth_nm=smooth_nm, vox=vox)
    if frame_value is not None:
        names["frame"] = PHASES["frame"]
        ph = phases if isinstance(phases, da.Array) else da.from_array(phases, chunks=src.chunks)
        raw = da.where(ph.rechunk(raw.chunks) == frame_value, np.uint8(PHASES["frame"]), raw)
    # no pore vote: the guess has no void class
    guess = _cleaned(raw, names=names, vox=vox, min_size_nm=min_size_nm, pore_vote_nm=0.0)
    if folder is None:
        return guess.compute(), names, grey, read
    return _materialise(guess, folder, "layer_guess").rechunk(src.chunks), names, grey, read


def _cleaned(raw: da.Array, *, names: Mapping[str, int], vox: tuple[float, float, float], min_size_nm: float,
             pore_vote_nm: float, bits: int = 0) -> da.Array:
    """Local cleanup of phase labels, chunk-exact with overlap: the 3D void/electrolyte vote in pores
    (:func:`volrecon.segment.voids.refine_pores`, where ``names`` has both) and then pieces smaller
    than ``min_size_nm`` merged into their surroundings (:func:`volrecon.segment.cleanup.remove_small_pieces`;
    0 and ``frame`` kept).

    ``bits`` > 0: ``raw`` holds packed classifier choices (:func:`volrecon.segment.classifier.unpack_choice`):
    the overall choice (the low ``bits``) is cleaned, the layers' choices pass through.
    """
    frame_value = names.get("frame")
    void_v, elec_v = names.get("void"), names.get("electrolyte")
    # the vote runs first, then the cleanup on its result: their reaches add up
    depth = [a + b for a, b in zip(cleanup_reach(min_size_nm, vox), pore_vote_reach(pore_vote_nm, vox))]

    def clean(block: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        out = unpack_choice(block, 0, bits) if bits else block
        if void_v is not None and elec_v is not None and pore_vote_nm > 0:
            out = refine_pores(out, void=void_v, electrolyte=elec_v, sigma_nm=pore_vote_nm, voxel_size_nm=vox)
        if min_size_nm > 0:
            keep = (0,) if frame_value is None else (0, frame_value)
            out = remove_small_pieces(out, min_size_nm=min_size_nm, voxel_size_nm=vox, internal_faces=faces, keep=keep)
        if bits:
            return np.ascontiguousarray((block[core] & ~block.dtype.type((1 << bits) - 1)) | out[core])
        return np.ascontiguousarray(out[core])

    return _overlap(clean, raw, depth, raw.dtype)


def _smoothed(src: da.Array, smooth_nm: float, vox: tuple[float, float, float],
              valid: da.Array | None = None) -> da.Array:
    """The 3D Gaussian-denoised grey values (:func:`volrecon.segment.regional.smooth`), chunked;
    ``valid`` (bool, ``src``'s shape): averaged over those voxels only."""
    def sm(block: np.ndarray, *v: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        return np.ascontiguousarray(smooth(block, smooth_nm, vox, valid=v[0] if v else None)[core])

    extra = () if valid is None else (valid.rechunk(src.chunks),)
    return _overlap(sm, _compact(src), smoothing_reach(smooth_nm, vox), np.float32,
                    extra=extra).rechunk(src.chunks)


def _regional_phases(image: Any, src: da.Array, regions: Any, base: da.Array, *, names: Mapping[str, int],
                     vox: tuple[float, float, float], smooth_nm: float, min_size_nm: float, frame_value: int | None,
                     void_split: bool, void_cues: VoidCues | None, params: dict[str, Any],
                     warnings: list[str], edge: Mapping[str, float] | None = None,
                     folder: Scratch | None = None, shell: np.ndarray | None = None,
                     stack: tuple[int, bool] | None = None, forward_refine: bool = True,
                     rim_edges: Sequence[Mapping[str, float]] = (),
                     step_edge: Mapping[str, float] | None = None) -> da.Array:
    """Method ``layers``: classify cathode and separator on their own histograms (see regional.py).

    ``edge``: the edge-rim fit on the sodium surface (:attr:`Layers.edges`); when given, the
    separator's fibre threshold is moved for the rims (:func:`volrecon.segment.regional.rim_threshold`).
    The cathode is cut on its own rim-corrected grey (:func:`_cathode_rim_grey`; its particles again on the
    image model's length less the noise's share, :func:`_particles_recut`, where the particle-edge rule has
    one), its electrolyte |
    binder cut placed between those two materials only (:func:`volrecon.segment.voids.filled_pore_cut`,
    ``parameters["cathode_pore_cut"]``).
    ``folder``: where the denoised grey values are kept (:func:`_materialise`; None: in memory), and
    the void split's labels before the cleanup (with a folder only: the cleanup then reads the context
    it needs from there rather than splitting the row ahead, whose padded float grey values the rows
    of the last chain held beside their own).
    ``shell``: the trench walls' rim shell (``(y, x)``, :attr:`volrecon.segment.frame.FrameMask.shell`);
    the grey values are denoised over the specimen outside the frame and the shell, so the voxels
    beside a wall (the shell's among them) are classified on the specimen's grey, not the wall's.
    ``stack``: the stacking axis and whether the anode comes first; with it, the separator's voxels
    on the cathode's active particles are re-decided (:func:`volrecon.segment.regional.separator_contacts`).
    ``forward_refine``: the cathode's electrolyte | binder boundaries are then moved onto a forward
    model of the image (:func:`_forward_refined`), before the cleanup.
    ``rim_edges``: the rim fits of the flat edges along the stacking axis (:data:`RIM_EDGES`), which
    measure the cathode's rim length with its own fit (:func:`_cathode_rim_grey`).
    ``step_edge``: the rim fit the fibre | particle contact's step is modelled with
    (:func:`_fibre_contacts_placed`; ``edge`` when None).
    """
    reg = regions if isinstance(regions, da.Array) else da.from_array(regions, chunks=src.chunks)
    reg = reg.rechunk(src.chunks)
    valid = None
    if frame_value is not None:
        valid = reg != REGIONS["frame"]
        if shell is not None:
            valid &= ~da.from_array(shell, chunks=src.chunks[1:])[None]
    smoothed = _materialise(_smoothed(src, smooth_nm, vox, valid), folder, "smoothed")
    # the foil's spill is undone in the grey the cathode's voxels are classified on, not in the samples the
    # thresholds and the rim length are fitted on: the unmixed rows' amplified noise and their steps at the
    # foil moved the rim length (8.4 -> 1.3 nm on the diglyme phantom), and with it every binder | active voxel
    spill = FoilSpill() if stack is None else _fit_foil_spill(smoothed, reg, axis=stack[0], params=params)
    cls_grey = smoothed if stack is None else _foil_unspilled(smoothed, reg, spill, axis=stack[0],
                                                                sigma_px=smoothing_sigma(smooth_nm, vox))
    base = base.rechunk(src.chunks)
    thr: dict[str, list[float]] = {}
    cat_grey = None
    # the cathode's in-plane gradient (lazy), for its rim correction and the particle-edge rule's
    cat_grad = _gradient(cls_grey, vox, foil=None if stack is None else (reg, spill, stack[0]))
    dvals: np.ndarray | None = None
    samples: dict[str, np.ndarray] = {}
    sampled = _region_samples(smoothed, reg, [REGIONS["cathode"], REGIONS["separator"]])
    for region, classes in (("cathode", 3), ("separator", 2)):
        vals = samples[region] = sampled[REGIONS[region]]
        if vals.size >= 100 and np.unique(vals[:100_000]).size >= classes:
            thr[region] = [float(v) for v in multi_otsu(vals, classes, bins=256)]
            if region == "cathode":
                dvals = _gradient_sample(smoothed, reg, REGIONS["cathode"], vox)
                cat_grey, thr[region] = _cathode_rim_grey(smoothed, reg, vals, thr[region], vox=vox, params=params,
                                                          corrected=cls_grey, rims=_edge_rims(rim_edges, stack, smooth_nm, vox),
                                                          foil=None if stack is None else (spill, stack[0]),
                                                          dvals=dvals, gradient=cat_grad)
                # electrolyte | binder between those two materials only, whatever the cell's voids; plain
                # grey above the (rim-corrected) binder | active cut is particle or particle-edge rim
                cut = filled_pore_cut(vals, thr[region], dark_k=(void_cues or VoidCues()).dark_k)
                params["cathode_pore_cut"] = {"multi_otsu": thr[region][0], "filled_pore": cut}
                thr[region] = [cut, thr[region][1]]
            if region == "separator" and edge:
                otsu = thr[region][0]
                thr[region] = [rim_threshold(vals, otsu, edge, smoothing_sigma(smooth_nm, vox))]
                params["separator_otsu_threshold"] = otsu
    params["region_thresholds"] = thr
    params["smooth_nm"] = smooth_nm
    for region in ("cathode", "separator"):
        if region not in thr and region not in [w.split("'")[1] for w in warnings if w.startswith("layer '")]:
            warnings.append(f"region {region!r}: too few voxels to estimate its thresholds")

    out = _regions_classified(cls_grey, reg, base, thr, names, cat_grey)
    if "cathode" in thr and dvals is not None:
        rule = _auto_particle_edge_rule(src, smoothed, reg, out, samples["cathode"], dvals, names=names, vox=vox,
                                        smooth_nm=smooth_nm, edge_nm=(void_cues or VoidCues()).edge_nm, params=params)
        if rule is not None:
            edge_grey = da.map_blocks(rim_corrected, cls_grey, cat_grad, rule.length_nm, dtype=np.float32)
            # the particles' cut only: the separator contacts keep the fit's (same labels but for a few dozen voxels)
            recut_nm = params["cathode_rims"]["particle_edges"]["recut_length_nm"]
            cut_grey = da.map_blocks(rim_corrected, cls_grey, cat_grad, recut_nm, dtype=np.float32)
            recut = {**thr, "cathode": [thr["cathode"][0], _particles_recut(samples["cathode"], dvals, recut_nm, params)]}
            out = _regions_classified(cls_grey, reg, base, recut, names, cut_grey)
            out = _particle_edges(out, edge_grey, reg, rule, names=names)
    cuts = None
    if stack is not None and len(thr.get("cathode", ())) == 2 and "separator" in thr:
        cuts = contact_cuts(samples["separator"], thr["separator"][0], samples["cathode"], thr["cathode"][1], edge or {},
                            smoothing_sigma(smooth_nm, vox))
    if cuts is not None:
        ax_, toward = stack[0], 1 if stack[1] else -1
        reach_ = contact_reach(smooth_nm, vox, ax_)
        params["separator_contacts"] = {**cuts, "reach_vox": reach_}
        depth_ = [0, 0, 0]
        depth_[ax_] = reach_ + 1

        def contacts(o_: np.ndarray, g_: np.ndarray, r_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
            return np.ascontiguousarray(separator_contacts(g_, r_, o_, axis=ax_, towards_cathode=toward, cuts=cuts,
                                                           names=names, reach=reach_)[core])

        out = _overlap(contacts, out, depth_, np.uint8, extra=(smoothed, reg)).rechunk(src.chunks)
        cat_vals = samples["cathode"]
        binder = cat_vals[(cat_vals >= thr["cathode"][0]) & (cat_vals < thr["cathode"][1])]
        if binder.size:
            levels = {"pore": cuts["pore_level"], "fibre": cuts["fibre_level"], "active": cuts["active_level"],
                      "binder": float(np.median(binder))}
            out = _fibre_contacts_placed(src, reg, out, levels=levels, edge=step_edge or edge, names=names, vox=vox,
                                         stack=stack, reach=reach_, params=params).rechunk(src.chunks)
    kept = False
    if void_split and "cathode" in thr:
        # the classes, kept, free the denoised copy before the void split keeps its own grey values:
        # one float copy of the volume at a time in scratch
        out = _materialise(out, folder, "classes")
        del smoothed, cls_grey
        if folder is not None:
            folder.drop("smoothed")
        # the samples and the histograms of the void split come on top of what the classes' rows left
        # resident (grows with the number of rows, as above): handed back once more
        release_memory()
        # the classes were decided on values denoised by smooth_nm: its reach along z is part of the edge artefact
        cues = replace(void_cues or VoidCues(), class_smooth_nm=smooth_nm)
        classes = out
        out = _cathode_voids(src, reg, out, names=names, vox=vox, smooth_nm=smooth_nm, cues=cues, params=params,
                             warnings=warnings, folder=folder)
        if folder is not None and (min_size_nm > 0 or forward_refine) and out is not classes:
            # the split kept: the cleanup's context is then read from scratch, not split a row ahead (the
            # split of the row ahead held its padded grey values, float, beside the row's own)
            out = _materialise(out, folder, "voids")
            kept = True
            del classes
            folder.drop("classes")
            folder.drop("void_grey")
    elif void_split:
        warnings.append("void not separated: no cathode pore to split")
    if forward_refine and "cathode" in thr:
        # read twice (the fit's sample slices, then every chunk): computed once
        out = _forward_refined(src, reg, out if kept else _materialise(out, folder, "labels"), names=names, vox=vox,
                               params=params, warnings=warnings, foil=None if stack is None else (spill, stack[0]))
        if folder is not None and min_size_nm > 0:
            # kept, for the cleanup's context (as the split's labels above)
            out = _materialise(out, folder, "refined")
    if min_size_nm > 0:
        keep = (0,) if frame_value is None else (0, frame_value)
        depth = cleanup_reach(min_size_nm, vox)

        def clean(block: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
            return np.ascontiguousarray(remove_small_pieces(block, min_size_nm=min_size_nm, voxel_size_nm=vox,
                                                            internal_faces=faces, keep=keep)[core])

        out = _overlap(clean, out, depth, np.uint8).rechunk(src.chunks)
    return out


def _thick_edge(lay: Layers) -> Mapping[str, float] | None:
    """The rim fit of the first of :data:`volrecon.segment.layers.REFERENCE_EDGES` (edges with a thick
    layer on each side) that the layers hold, or None."""
    return next((lay.edges[k] for k in REFERENCE_EDGES if k in lay.edges), None)


def _fibre_contacts_placed(src: da.Array, reg: da.Array, out: da.Array, *, levels: Mapping[str, float],
                           edge: Mapping[str, float] | None, names: Mapping[str, int], vox: tuple[float, float, float],
                           stack: tuple[int, bool], reach: int, params: dict[str, Any]) -> da.Array:
    """The fibre | particle contact re-placed per column as a sub-voxel step
    (:func:`volrecon.segment.regional.fibre_contact_steps`) on ``src`` smoothed laterally over the
    specimen (:data:`volrecon.segment.regional.CONTACT_LATERAL_NM`), chunked; ``out`` unchanged
    without an accepted rim fit ``edge`` (the step's blur: the fit of an edge thick on both sides,
    :func:`_thick_edge`, the foil's on the phantoms).  ``levels``: the volume's pore, fibre, binder
    and active levels (each pooled over 250 nm around a column where its voxels are seen,
    :data:`volrecon.segment.regional.CONTACT_LEVEL_POOL_NM`).  What was used is in
    ``parameters["fibre_contact_steps"]``.  Each chunk's columns are placed on a block holding them and
    the columns within the pooling's reach, along the stacking axis only the rows around their own
    turns (:func:`volrecon.segment.chunking._banded_tiles`): a task's memory follows its chunk and the boundary's rise across it,
    not the rise across the whole field (one band for the volume was as high as that, in every block).

    Measured (24x192 phantoms, seeds 0-3 carbonate and 0-1 diglyme, oracle-corrected / corrected,
    before -> after, ``benchmarks/results/separator_errors.md``, reading of session 25): separator Dice,
    ``auto``, carbonate seed 1 0.774 / 0.813 -> 0.812 / 0.834 (the thin mat's last row on the
    particles), seed 3 0.936 / 0.938 -> 0.943 / 0.942, seed 0 0.955 / 0.950 -> 0.957 / 0.952, seed 2
    +0.0004 / +0.0001, diglyme -0.0001 to +0.0012; the classifier's carbonate seed 1 0.807 / 0.797
    -> 0.821 / 0.803, seed 3 0.942 / 0.934 -> 0.947 / 0.937, seed 2 -0.0007 / -0.0004.  Active Dice
    up or within 0.0001 on every row; the interfaces (the layers' heights) unchanged.  Cost: 5.6 CPU-s for 200x1024
    columns (a 40-row band)."""
    if not edge or not edge.get("accepted", True) or "sigma_vox" not in edge:
        params["fibre_contact_steps"] = {"skipped": "no accepted rim fit: the step's blur is not known"}
        return out
    axis, anode_first = stack
    sig = [0.0 if a == axis else CONTACT_LATERAL_NM / float(vox[a]) for a in range(3)]
    pool = [CONTACT_LEVEL_POOL_NM / float(vox[a]) for a in range(3) if a != axis]
    params["fibre_contact_steps"] = {"levels": dict(levels), "lateral_sigma_vox": sig, "reach_vox": reach,
                                     "sigma_vox": float(edge["sigma_vox"]),
                                     "rim_ratio": float(edge.get("rim_ratio", 0.0)), "level_pool_sigma_vox": pool}
    depth = [0 if a == axis else gaussian_reach(sig[a]) + gaussian_reach(CONTACT_LEVEL_POOL_NM / float(vox[a]))
             for a in range(3)]
    first, last = dask.compute(*contact_rows(reg, axis))  # per column: one integer each
    if (last < 0).all():
        return out

    def place(o_: np.ndarray, s_: np.ndarray, r_: np.ndarray) -> np.ndarray:
        # the grey is smoothed laterally only: the band of rows around the contact is all that is read
        grey = specimen_filter(s_, r_ != REGIONS["frame"], sig)
        return fibre_contact_steps(grey, r_, o_, axis=axis, towards_cathode=1 if anode_first else -1,
                                   levels=levels, edge=edge, names=names, reach=reach, pool=pool)

    margin = contact_margin(reach)
    return _banded_tiles(place, out, (src, reg), axis=axis, depth=depth,
                         band=lambda pad: band_rows(first[pad], last[pad], out.shape[axis], margin))


def _forward_refined(src: da.Array, reg: da.Array, out: da.Array, *, names: Mapping[str, int],
                     vox: tuple[float, float, float], params: dict[str, Any], warnings: list[str],
                     foil: tuple[FoilSpill, int] | None = None) -> da.Array:
    """The cathode's electrolyte | binder boundaries moved onto a fitted forward model of the image
    (:mod:`volrecon.segment.forward_refine`), chunked.

    The model (levels, probe blur, edge gain, shine-through, noise) is fitted on up to six evenly
    spread slices (with the labels of the slices behind them, for the shine-through) of the whole
    stack, in the window of at most :data:`~volrecon.segment.forward_refine.FIT_WINDOW_PX` pixels a
    side that holds the most cathode (:func:`~volrecon.segment.forward_refine.fit_window`), and the Potts weights and the pooling window follow from it, so every chunk uses the same; the refinement of a voxel reads
    only its :func:`~volrecon.segment.forward_refine.refine_reach`, given as overlap.  What was fitted
    is in ``parameters["forward_refine"]``.

    The collector foil is drawn at its own level (:func:`_with_foil_level`): the probe's blur and the
    edge rim carry its grey into the cathode's first rows as the model computes them, so those rows are
    refined like the bulk.  ``foil`` (the collector foil's fitted spill and the stacking axis) is used
    only where the foil's level cannot be read (no collector interior in the sampled slices): drawn at
    the cathode's mean level, its spill would read as binder (24x192 diglyme seed 0, oracle-corrected:
    the rows 3-5 voxels from the foil moved to binder, their share 0.154 -> 0.177, truth 0.161), so the
    collector and the rows within the spill's reach are then neither fitted, nor evidence, nor moved
    (decided on their unmixed grey, :func:`_foil_unspilled`).  The level fit itself always leaves those
    rows out (their first labels come from the amplified, averaged grey).

    Measured with the foil's level (``benchmarks/segmentation.py --slices 24 --size 192``, seeds 0-1, both
    presets, corrected and oracle-corrected; ``benchmarks/binder_errors.py``): the three rows beside the
    foil had lost 27-48 % of their true binder to the electrolyte (first row binder 0.094 / 0.111 labelled
    for 0.179 / 0.219 true, diglyme / carbonate seed 0 corrected; 0.149 / 0.149 now); binder Dice +0.001 to
    +0.004 and pore Dice +0.0002 to +0.0009 on all eight auto rows, active and void within 0.0001.
    """
    elec_v, bind_v, void_v = names["electrolyte"], names["binder"], names.get("void")
    cat_v = REGIONS["cathode"]
    depth = max(1, int(round(max(fr.SHINE_DEPTHS_NM) / vox[0])))
    nz = out.shape[0]
    zs = fr.sample_slices(nz, depth)
    if zs.size == 0:
        zs, depth = fr.sample_slices(nz, 0), 0
    need = np.unique(np.concatenate([zs + d for d in range(depth + 1)]))
    # the fit reads one window of the slices, the one holding most cathode: a few full 2048x1536 slices and the
    # dozens behind them for the shine-through would take gigabytes
    reg_zs = np.asarray(reg[zs].compute())
    win = fr.fit_window(reg_zs == cat_v, fr.FIT_WINDOW_PX)
    g_, l_, r_ = da.compute(src[(need, *win)], out[(need, *win)], reg[(need, *win)])
    pos = {int(z): i for i, z in enumerate(need)}
    at = np.array([pos[int(z)] for z in zs])
    cat = np.asarray(r_) == cat_v
    if foil is not None:
        cat &= ~_beside_foil(np.asarray(r_), foil)
    values = (elec_v, bind_v)
    l_ = np.asarray(l_)
    if min(int(((l_[at] == v) & cat[at]).sum()) for v in values) < 100:
        warnings.append("forward refinement skipped: too few cathode electrolyte or binder voxels to fit the image model")
        return out
    deep = np.stack([l_[[pos[int(z) + d] for d in range(1, depth + 1)]] for z in zs]) if depth else None
    model = fr.fit_image_model(np.asarray(g_, np.float32)[at], l_[at], cat[at], deep, values=(*values, names["active"]),
                               pixel_nm=vox[1:], slice_nm=vox[0], void=void_v)
    model = _with_foil_level(model, src, out, zs, reg_zs == REGIONS["collector"], names)
    if foil is not None and names.get("collector") in model.levels:
        foil = None  # the foil is modelled: the rows beside it are evidence and are moved like the bulk
    contrast, var = fr.boundary_step(model, elec_v, bind_v)
    snr = contrast / math.sqrt(var) if var > 0 and math.isfinite(contrast) else 0.0
    gate = fr.min_step_snr(model)
    if not snr >= gate:
        warnings.append(f"forward refinement skipped: the electrolyte | binder step is {snr:.2f} noise sd, under "
                        f"{gate:.2f} (the largest pooling window cannot tell a boundary move from the noise)")
        params["forward_refine"] = {"model": model.to_dict(), "skipped": "step under the noise", "step_snr": snr,
                                    "min_step_snr": gate}
        return out
    betas = fr.potts_weights(model, contrast, var, vox)
    window = fr.front_window(model, contrast, var)
    reach = fr.refine_reach(model, window)
    # recorded, not applied (see evidence_inflation): how correlated the noise the fronts are pooled over is
    kappa = fr.evidence_inflation(np.asarray(g_, np.float32)[at], l_[at], cat[at], deep, model, window, void=void_v)
    params["forward_refine"] = {"model": model.to_dict(), "step_snr": snr, "potts_weights": list(betas), "window_vox": list(window),
                                "reach_vox": list(reach), "sweeps": fr.SWEEPS, "evidence_inflation": kappa,
                                "min_step_snr": gate}

    def refine(o_: np.ndarray, g_: np.ndarray, r2_: np.ndarray, core: tuple[slice, ...], faces: Any) -> np.ndarray:
        spilt = None if foil is None else _beside_foil(r2_, foil)
        res_ = fr.refine_labels(g_, o_, (r2_ == cat_v) if spilt is None else (r2_ == cat_v) & ~spilt, model,
                                values=values, betas=betas, window=window, void=void_v,
                                observed=None if spilt is None else ~spilt)
        return np.ascontiguousarray(res_[core])

    return _overlap(refine, out, reach, np.uint8, extra=(_compact(src), reg)).rechunk(out.chunks)


def _with_foil_level(model: fr.ImageModel, src: da.Array, out: da.Array, zs: np.ndarray, col: np.ndarray,
                     names: Mapping[str, int]) -> fr.ImageModel:
    """``model`` with the collector foil's level (:func:`~volrecon.segment.forward_refine.interior_level`
    of the collector voxels of the collector region ``col`` (of the slices ``zs``), in the window of at
    most :data:`~volrecon.segment.forward_refine.FIT_WINDOW_PX` a side holding the most collector);
    ``model`` itself without a collector phase or interior, or where the interior reads wider than
    :data:`FOIL_SPREAD_MAX` times the model's noise sd at that level (not the foil alone: a collector
    region the layers placed over the cathode's rows reads their phases too).  The labels without a
    level stay at the fitted levels' mean (:attr:`~volrecon.segment.forward_refine.ImageModel.default_level`).

    The foil is a phase like the cathode's: the probe's blur and its edge rim carry its grey into the
    cathode's rows beside it, which the model computes once the foil has its level.  Without one it
    was drawn at the mean of the cathode's levels, and those rows were kept out of the refinement,
    decided on their unmixed grey (:func:`_foil_unspilled`), where the unmixing's amplified noise and its
    averaging along the foil lose the binder (24x192 phantoms, seed 0, the first row beside the foil:
    binder 0.094 / 0.111 labelled for 0.179 / 0.219 true, diglyme / carbonate, corrected).  The model's
    edge gain is the cathode boundaries'; a foil whose own edge brightening differs is drawn with
    theirs (the fitted spill, :class:`~volrecon.segment.foil_spill.FoilSpill`, is measured on the
    denoised grey and cannot check it).
    """
    col_p = names.get("collector")
    if col_p is None or not col.any():
        return model
    win = fr.fit_window(col, fr.FIT_WINDOW_PX)
    g_, l_ = da.compute(src[(zs, *win)], out[(zs, *win)])
    read = fr.interior_level(np.asarray(g_, np.float32), col[(slice(None), *win)] & (np.asarray(l_) == col_p))
    if read is None:
        return model
    level, spread = read
    noise_sd = math.sqrt(max(model.noise[0] + model.noise[1] * max(level, 0.0), 0.0))
    if not spread <= FOIL_SPREAD_MAX * noise_sd:
        return model
    fill = model.lut()[0] if model.default_level is None else model.default_level
    return replace(model, levels={**model.levels, int(col_p): level}, default_level=float(fill))


FOIL_SPREAD_MAX = 1.3
"""Widest spread of the collector's interior grey, in noise sd at its level, that is read as the foil's
level (:func:`_with_foil_level`): 1.0-1.01 on the 16x160 and 24x192 phantoms; a collector region
grown over the cathode's rows (the layers misplaced on a cropped field) read 1.59."""


RIM_EDGES: tuple[str, ...] = ()
"""The flat edges whose rim fits (:func:`volrecon.segment.layers.edge_rim_shift`) measure the
cathode's rim length with its separability fit (the median of the three), e.g. ``("sodium|sei",
"cathode|collector")``: one material on either side over the whole face (the collector's foil
against the cathode's mean grey).  Off (empty) by default: those fits are not yet steady.  On a
16 x 192 diglyme phantom the sodium|sei rim ratio read 0.50 or 0.24 (nominal 0.5) depending only on
whether the separator|cathode cut was re-levelled, which halved the cathode's rim length (13.3 ->
6.5 nm) and moved the void split's electrolyte level by 0.21 of its spread
(``tests/segment/test_layers_levelled.py``); the collector's read 0.24.  With them on, the 24 x 192
benchmark's auto pore was 0.952 / 0.953 (corrected), without 0.950 / 0.952, and the 512 px
phantoms' cathode binder fraction -3 / -7 % of the truth against -7.5 / -4 %."""


def _cathode_rim_grey(smoothed: da.Array, reg: da.Array, vals: np.ndarray, otsu: list[float], *,
                      vox: tuple[float, float, float], params: dict[str, Any],
                      corrected: da.Array | None = None, rims: Sequence[float] = (),
                      foil: tuple[FoilSpill, int] | None = None, dvals: np.ndarray | None = None,
                      gradient: da.Array | None = None) -> tuple[da.Array | None, list[float]]:
    """The cathode's rim-corrected grey and its thresholds (:mod:`volrecon.segment.cathode_rims`).

    ``vals``: the cathode sample of ``smoothed`` (:func:`_region_samples`), ``otsu`` its plain
    multi-Otsu thresholds.  The rim length is fitted on the same sample of the in-plane gradient.
    Returned: the corrected grey and ``[otsu[0], corrected binder|active cut]``: active is decided
    on the corrected grey, pore | binder on the plain grey (whose rims beside the pore the void
    split's edge-rim rule returns to the pore, :func:`volrecon.segment.voids.split_voids`; cut on
    the corrected grey as well, the two corrections overlap and the cathode's porosity is
    overestimated); where the particle-edge rule has an image model the particles are then cut again on
    its length (:func:`_particles_recut`).  A length of 0 returns ``(None, otsu)``.  ``corrected``: the grey the fitted
    correction is applied to (default ``smoothed``, which the length is fitted on).  ``rims``: the
    lengths the flat edges' rims give (:func:`_edge_rims`; none by default, :data:`RIM_EDGES`); the length
    used is the median of them and the fit's.  One rim length is the instrument's, measured three ways that fail apart: the
    fit's separability peak is flat to parts per thousand (it read 6.6 and 13.4 nm on the diglyme
    and carbonate benchmark phantoms of one rendering), and an edge's fit can misread the rim (a
    film or a rough surface beside it: the sodium surface read 5.3 nm on a carbonate phantom whose
    collector and fit read 11-12).  The particle-edge rule
    reads its own length, not this one (:func:`_auto_particle_edge_rule`).
    ``foil``: the collector foil's fitted spill and the stacking axis, when ``corrected`` holds the
    cathode's rows beside the foil unmixed (:func:`_foil_unspilled`): their gradient is then taken with
    the foil's voxels read as the row beside them (:func:`_gradient`), as the classifier's boundary
    rule reads them (:func:`_foil_spill_grey`).  The unmixed grey's step into the foil read as a rim
    of theirs took their particles under the binder | active cut (24x192 carbonate seed 0, the true
    first row's active recall 0.751 -> 0.772 corrected, 0.782 -> 0.801 oracle-corrected;
    ``benchmarks/foil_rows.py``).  ``dvals``, ``gradient``: the gradient's sample at ``vals``
    (:func:`_gradient_sample`) and the gradient of ``corrected`` as above, where already computed.
    """
    if dvals is None:
        dvals = _gradient_sample(smoothed, reg, REGIONS["cathode"], vox)
    fitted, t, eta = fit_rim_length(vals, dvals)
    length = float(np.median([fitted, *rims]))
    if rims:
        t = robust_cuts(vals - length * dvals, 3)
        eta = separability(vals - length * dvals, t)
    params["cathode_rims"] = {"length_nm": length, "fitted_nm": fitted, "edges_nm": [float(x) for x in rims],
                              "gradient_sigma_nm": RIM_GRADIENT_NM, "separability": eta, "plain_thresholds": list(otsu)}
    if length <= 0:
        return None, otsu
    grey = smoothed if corrected is None else corrected
    grad = _gradient(grey, vox, foil=None if foil is None else (reg, *foil)) if gradient is None else gradient
    return da.map_blocks(rim_corrected, grey, grad, length, dtype=np.float32), [otsu[0], t[1]]


def _regions_classified(grey: da.Array, reg: da.Array, base: da.Array, thr: Mapping[str, Sequence[float]],
                        names: Mapping[str, int], cathode_grey: da.Array | None) -> da.Array:
    """:func:`volrecon.segment.regional.classify_regions` chunk by chunk, the cathode's particles cut on
    ``cathode_grey`` where given."""
    thresholds = {k: list(v) for k, v in thr.items()}
    if cathode_grey is None:
        return da.map_blocks(lambda g, r, b: classify_regions(g, r, b, thresholds=thresholds, names=names),
                             grey, reg, base, dtype=np.uint8)
    return da.map_blocks(lambda g, r, b, c: classify_regions(g, r, b, thresholds=thresholds, names=names, cathode_grey=c),
                         grey, reg, base, cathode_grey, dtype=np.uint8)


def _particles_recut(vals: np.ndarray, dvals: np.ndarray, length_nm: float, params: dict[str, Any]) -> float:
    """The cathode's binder | active cut on the grey rim-corrected by ``length_nm``: the image model's
    length times the share of the gradient the noise does not make (:func:`_recut_length`).

    The particles are then cut on a length of the probe, the rims, the denoising and the noise, read on
    the fitted image model of the particle-edge rule (:func:`_auto_particle_edge_rule`): the
    separability's length (:func:`_cathode_rim_grey`) is flat-peaked and, where the cathode's
    histogram has a near-equal maximum at no correction (the diglyme phantoms: 0-7 nm fitted for
    13 nm on the carbonate ones of the same rendering), it left the binder's first voxel beside a
    particle over the cut (``benchmarks/binder_active.py``: 96-98 % of the binder read as active is
    that voxel, 30-50 % of it over the cut on diglyme, 15-17 % on carbonate).  ``vals``, ``dvals``:
    the cathode's grey and gradient samples; the cut is the three-class one of the corrected sample
    (:func:`volrecon.segment.cathode_rims.robust_cuts`), recorded in
    ``params["cathode_rims"]["particles_cut"]``.
    """
    cut = robust_cuts(vals - length_nm * dvals, 3)[1]
    params["cathode_rims"]["particles_cut"] = {"length_nm": float(length_nm), "cut": float(cut)}
    return float(cut)


def _recut_length(model: fr.ImageModel, vals: np.ndarray, dvals: np.ndarray, length_nm: float, *,
                  vox: tuple[float, float, float], smooth_nm: float, info: dict[str, Any]) -> float:
    """The rim length the particles are cut on (:func:`_particles_recut`): the image ``model``'s
    ``length_nm`` times the share of the measured gradient power of the binder and particles that is
    the image's, not the noise's (:func:`volrecon.segment.cathode_rims.gradient_reliability`).

    The model's length is that of a noise-free step.  The gradient read on the grey carries the
    noise's too, which has no rim to take off: ``L |grad g|`` then digs every voxel by its noise's
    gradient, a particle's interior as much as its edge, and the least-squares length on the
    measured gradient is the model's attenuated by that share (the regression dilution of a
    regressor read with noise).  The share is read where the particles' cut decides: the cathode's
    sample ``vals`` (gradient ``dvals``) at or above its pore | binder cut on the grey corrected by
    ``length_nm``, their noise the model's (``a + b grey``) carried through the denoising and the
    derivative (:func:`volrecon.segment.cathode_rims.gradient_noise_power`).  At 10 nm pixels (a voxel
    of denoising in-plane) it is about 0.9; at 20 nm pixels and 40 nm slices (half a voxel in-plane,
    none along z: the gradient reads three times the noise power) about 0.7, where the model's whole
    length over-read the binder (shipped samples: cathode binder 0.179 -> 0.187 for 0.148).  The model's
    length itself is right there: the refits settle where a model fitted on the true labels reads
    (20 nm phantom: 29.5 nm; 15.6 at 10 nm).  Recorded in ``info`` (``gradient_reliability``).

    The noise is taken as white.  The drift's sub-pixel resampling (linear by default) correlates it
    in-plane, and its gradient power is then lower than this predicts, the share higher: a review
    (rev26 L2, a random sub-pixel shift per slice) read 0.913 for a least-squares 0.839 at 10 nm
    pixels (the recut about 9 % long), 0.713 for 0.705 at 20 nm / 40 nm.
    """
    corrected = vals - length_nm * dvals
    solid = corrected >= robust_cuts(corrected, 3)[0]  # the binder and the particles: what the cut decides
    noise_var = float(np.mean(model.noise[0] + model.noise[1] * np.maximum(np.asarray(vals[solid], np.float64), 0.0)))
    power = gradient_noise_power(vox, smooth_sigma_vox=smoothing_sigma(smooth_nm, vox))
    share = gradient_reliability(dvals[solid], noise_var, power)
    info["gradient_reliability"] = share
    return float(length_nm) * share


MODEL_LENGTH_READS = 3
"""Most image-model fits :func:`_auto_particle_edge_rule` makes while its length moves by a length step or more."""


def _rim_levels(corrected: np.ndarray, phases: Sequence[int]) -> dict[int, float] | None:
    """The medians of the three-class cut of the cathode's ``corrected`` sample, per phase of ``phases``
    (electrolyte, binder, active); None where a class has fewer than :data:`MIN_MODEL_VOXELS` voxels."""
    classes = np.digitize(corrected, robust_cuts(corrected, 3))
    if min(int((classes == i).sum()) for i in range(3)) < MIN_MODEL_VOXELS:
        return None
    return {int(p): float(np.median(corrected[classes == i])) for i, p in enumerate(phases)}


def _auto_particle_edge_rule(src: da.Array, smoothed: da.Array, reg: da.Array, out: da.Array, vals: np.ndarray,
                             dvals: np.ndarray, *, names: Mapping[str, int], vox: tuple[float, float, float],
                             smooth_nm: float, edge_nm: float, params: dict[str, Any]) -> ParticleEdgeRule | None:
    """The rim length and cut of :func:`_particle_edges` for the thresholded cathode ``out``.

    The rule reads a pore | particle step's two voxels on a grey whose rims are off; the length is
    the image model's (:func:`volrecon.segment.cathode_rims.particle_edge_rim_length`, the model
    fitted on ``src`` and the cathode's classes as the classifier's is, :func:`_dark_rim_length`), a
    property of the probe, the rims and the denoising, not the separability's, whose peak is flat
    (:func:`_cathode_rim_grey`): at a fitted 2.5 nm (24x192 diglyme seed 1, corrected; 7.0 nm
    oracle-corrected) the rims beside the particles stayed on, the pore's voxel beside a particle
    read over the half-way cut, and 3 100 void and 4 000 electrolyte voxels read active (1 500 /
    1 200 without the rule).  The cut is :func:`_particle_edge_cut` on the cathode sample ``vals``
    corrected by that length (``dvals``: the gradient's sample, :func:`_gradient_sample`).  The rule
    no longer follows the fit on or off either (it was off where the fit read 0, on at 2.5 nm).
    Both particle sides are given back (the classifier's rule keeps only the axes where the model's
    step reads under the binder | active midpoint, :func:`_classifier_particle_edges`; here that cost
    the carbonate phantoms' pore 0.001 and gained the diglyme's active 0.001).
    The model is fitted on the labels' boundaries re-decided at the fit's length, then, while the model's
    length moves by :data:`~volrecon.segment.cathode_rims.RIM_LENGTH_STEP_NM` or more, at its own (at most
    :data:`MODEL_LENGTH_READS` fits; ``read_at_nm``): a short fit's boundaries lie a voxel into the dark
    side and the model reads them as weaker rims (12x128 diglyme seed 1, oracle-corrected, the fit forced to
    2.5 nm: 9.2 nm from one fit, 14.0 at the fitted 13.3).  Each refit moves the length by about half
    the change of the length it reads at, towards the length a model fitted on the true labels gives (24x192
    phantoms, oracle-corrected: 15.6 nm at 10 nm pixels, 29.5 at 20 nm pixels and 40 nm slices, the
    shipped samples' grid, where the refits climb 15.5 -> 23.8 nm: the rim of a pixel each side of a
    boundary spans more nanometres).  The particles are cut on it less the noise's share
    (``recut_length_nm``, :func:`_recut_length`).
    None (the rule off) without a model, a length in range or a cut; what was used is recorded in
    ``params["cathode_rims"]["particle_edges"]``.
    """
    rims = params.get("cathode_rims")
    phases = [names.get(p) for p in ("electrolyte", "binder", "active")]
    if rims is None or None in phases:
        return None
    info: dict[str, Any] = {"read_at_nm": []}
    length = float(rims["length_nm"])
    # the model reads the labels' boundaries re-decided at a length: from the fit's, then its own (a short
    # fit's boundaries, a voxel into the dark side, read as weaker rims and a shorter length)
    read: float | None = None  # the last model's length
    fitted: fr.ImageModel | None = None  # and the model
    for _ in range(MODEL_LENGTH_READS):
        used = length
        levels = _rim_levels(vals - used * dvals, phases)
        model = None if levels is None else _dark_rim_length(
            src, smoothed, reg, out, region=REGIONS["cathode"], values=[int(p) for p in phases], rule=(used, levels),
            vox=vox, smooth_nm=smooth_nm, info=info)
        if model is None:
            if read is None:
                rims["particle_edges"] = {**info, "off": "no image model"}
                return None
            # a refit that fails keeps the model read before it (review rev25b M2)
            info["refit_failed_at_nm"] = used
            break
        info["read_at_nm"].append(used)
        fitted = model[1]
        length = read = particle_edge_rim_length(fitted, vox, smooth_sigma_vox=smoothing_sigma(smooth_nm, vox))
        if not 0.0 < length <= RIM_LENGTH_MAX_NM or abs(length - used) < RIM_LENGTH_STEP_NM:
            break
    else:
        info["unsettled"] = True  # the reads ran out while the length still moved
    if not 0.0 < length <= RIM_LENGTH_MAX_NM:
        rims["particle_edges"] = {**info, "rim_length_nm": length, "off": "length out of range"}
        return None
    info["recut_length_nm"] = _recut_length(fitted, vals, dvals, length, vox=vox, smooth_nm=smooth_nm, info=info)
    w = vals - length * dvals
    tw = robust_cuts(w, 3)
    level, _ = electrolyte_level(w[w < tw[0]])
    cut = _particle_edge_cut(level, w[(w >= tw[0]) & (w < tw[1])], w[w >= tw[1]])
    rims["particle_edges"] = {**info, "rim_length_nm": length, "cut": cut}
    if cut is None:
        return None
    return ParticleEdgeRule(length, cut, tuple(max(1, int(np.ceil(float(edge_nm) / float(v)))) for v in vox[1:]),
                            (True, True))


def _gradient_sample(smoothed: da.Array, regions: da.Array, value: int, vox: tuple[float, float, float]) -> np.ndarray:
    """:func:`volrecon.segment.cathode_rims.gradient_magnitude` of ``smoothed`` at the voxels of
    :func:`_region_samples` (same voxels, same order).

    The gradient is in-plane, so it is taken on the sampled slices alone, one whole slice at a
    time, and on their sampled rows alone (each from its rows within the gradient's reach): the
    volume's gradient is computed once, for the correction itself, not a second time for the chunks
    the sampled slices lie in, and a slice's other rows are not computed to be dropped.
    """
    zs, stride = _sample_index(smoothed.shape)
    rows = np.arange(0, smoothed.shape[1], stride)
    grad = smoothed[zs].rechunk((1, -1, -1)).map_blocks(
        gradient_magnitude, vox, rows=rows, chunks=((1,) * zs.size, (rows.size,), (smoothed.shape[2],)),
        dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
    g, r = da.compute(grad, regions[zs, ::stride])
    return np.asarray(g)[np.asarray(r) == value]
