"""Empty pores (void) versus electrolyte-filled pores.

Physics: in a FIB-SEM face an empty pore is not simply dark.  The beam sees through it to the
material below the face (shine-through), so a void shows a blurred, attenuated image of what lies
deeper, and its rim is brightened by edge effects.  Single voxels are therefore ambiguous; the
cues that separate voids from frozen electrolyte are (a) texture and depth features (the
classifier's ``depth``/``texture``/``gradient`` channels compare the face with what lies deeper)
and (b) 3D continuity: a void is a contiguous gas-filled space, so the void/electrolyte decision
is taken over the pore neighbourhood, never across solid.

:func:`refine_pores` implements (b) as a pore-restricted vote: inside the pore space
(void ∪ electrolyte), each voxel becomes void when the Gaussian-weighted share of void among the
*pore* voxels around it exceeds one half.  Solid voxels neither vote nor change.

:func:`split_voids` is the unsupervised split (methods ``layers``/``auto``, and the cathode void
of ``classifier``): voids are seeded where the pore is darker than frozen electrolyte can be (the
electrolyte level is the narrow peak of the pore class, :func:`electrolyte_level`), widened
in-plane by ``grow_nm`` (the void's outer ring is not dark, see below) and continued along the
milling direction over the shine-through depth (where the void's face shows the material beyond
it; the outer ring, whose columns' depth is not seen, over half of it).  It never uses absolute grey values: only the electrolyte level and spread measured on the
stack itself (the level slice by slice, :func:`slice_levels`), and lengths in nm
(:class:`VoidCues`).  The dark test is made on the pore's own average over a fixed length
(:func:`pore_average`), so its noise, and the seed threshold, do not grow with the voxel size.

The pore's own average.  The average is the pore's alone (:func:`split_grey`): binder averaged into
it (it had been, with the binder's voxels counted as void candidates) lifted a void a few pixels
wide lined with binder or a particle's bright rim to the electrolyte grey, and no dark test saw it.
Where a pore is thin the average reads fewer voxels, and its noise is larger than the electrolyte
spread measured in the wide pore; the dark test counts in that larger noise (:func:`average_noise`).
Measured on the benchmark's 24x192x192 phantoms (``segmentation.py --seed 0/1``, corrected /
oracle-corrected; with the outer ring kept out of unlit binder, :func:`split_voids` step 4): method
``auto``, void Dice diglyme 0.763 -> 0.776 / 0.772 -> 0.779 (seed 0), 0.737 -> 0.754 / 0.743 -> 0.761
(seed 1), its void fraction -8 / -6 % -> +2 / +3 % of the truth (seed 0), -20 / -19 % -> -13 / -10 %
(seed 1); carbonate seed 1 0.453 -> 0.501 / 0.454 -> 0.537 (void fraction -18 % -> +18 %), seed 0
0.257 -> 0.241 / 0.246 -> 0.235 (void fraction 0.0037 -> 0.0065 / 0.0075 -> 0.0079, truth 0.0078);
method ``classifier`` void Dice +0.000 to +0.034 but carbonate seed 0 oracle-corrected -0.005.  What it
costs: diglyme (``auto``) pore Dice -0.0008 on seed 0, its binder fraction 0.003-0.004 further under
the truth and its false void +0.005-0.009 of the cathode; the carbonate seed 0 voids found are mostly
false still (curtain stripes beside two voids, below: ``benchmarks/results/void_misses.md``).

The tails through binder.  Most of that cost was the shine-through tails (:func:`split_voids` steps
3-4) running through binder-labelled voxels: with more dark cores found, more columns met the binder
under a void's floor.  A void's face is the material behind it attenuated, binder-grey only over a
particle, so the tails now enter binder-labelled voxels only where a particle lies within the
shine-through depth behind them and the blur aside (:func:`lit_from_behind`).  Measured on the
benchmark's 24x192x192 phantoms (``segmentation.py --methods classifier,auto --seed 0/1``, corrected /
oracle-corrected, before -> after): ``auto`` diglyme seed 0 pore Dice 0.9493 -> 0.9506 / 0.9495 ->
0.9507, void Dice 0.775 -> 0.778 / 0.778 -> 0.781, binder fraction 0.138 -> 0.142 / 0.136 -> 0.140
(truth 0.150), false void 0.043 -> 0.040; seed 1 pore +0.001, void Dice +0.002 / +0.003; carbonate
seed 0 void Dice +0.001, the rest unchanged.  What it costs: carbonate seed 1 void Dice -0.001 / -0.004 (``auto``), -0.005 /
-0.003 (``classifier``); diglyme ``classifier`` void Dice -0.002 / -0.003 (seed 0), -0.002 / +0.002
(seed 1), its void fraction 0.004-0.006 further under the truth (its pore Dice +0.0000-0.0009 and
binder fraction nearer the truth); the diglyme ``auto`` porosity 0.002-0.004 further under the truth.
Of the binder-labelled voxels the tails no longer take, those in the tail's first slices are still
mostly void (an unlit void face the thresholds read binder-grey: blurred edges), those in its last
slice (beyond the phantoms' true 80 nm depth) mostly binder.

Where a dark column ends.  A void's face over frozen electrolyte is dark too (the electrolyte's grey
attenuated), not only over empty space: on carbonate seed 0 (24x192x192, oracle-corrected,
``benchmarks/void_pieces.py``) 165 of the 206 dark seeds are void, 102 of them void one shine-through
depth deeper too, and 61 over frozen electrolyte there (on the corrected stack 160, 81 and 78).  Below
its last dark slice a column whose depth behind holds only pore would still look dark were it void, so
it has ended there (its narrowing last slices are the outer ring's, continued half the depth); the cores'
tails run the whole depth only where a solid behind lights the face (:func:`lit_floor`; the stack's end,
unseen, counts as lit).  On that phantom the tails 2-5 slices below a seed's last dark slice had been
6-20 % void.  Measured (24x192, ``segmentation.py --methods classifier,auto --seed 0/1``, corrected /
oracle-corrected, before -> after): void Dice diglyme auto 0.778 -> 0.781 / 0.783 -> 0.786 (seed 0),
0.769 -> 0.771 / 0.778 -> 0.780 (seed 1), classifier +0.002..+0.003; carbonate auto 0.293 -> 0.294 /
0.303 -> 0.305, classifier 0.245 -> 0.252 / 0.290 -> 0.295 (seed 0), classifier +0.001..+0.003 (seed 1);
false void -3 to -13 % everywhere (diglyme auto seed 0 0.0388 -> 0.0368 of the cathode).  What it costs:
carbonate seed 1 auto void Dice -0.0005 / -0.0012, the void fraction 0.001-0.003 (diglyme) and
0.0001-0.0004 (carbonate) further under the truth everywhere (the removed voxels were mostly electrolyte;
what the fraction had gained from them stood in for lit voids no cue finds), the diglyme classifier's
binder Dice -0.0002 / -0.0003; pore Dice within 0.0001.

Curtain stripes.  A curtain left in the stack darkens every material of its columns alike, and a dark
stripe over frozen electrolyte reads as a void (the split compares the pore with one electrolyte
level).  The correction stage leaves the benchmark's curtains in: its gate keeps the destriper off at a
192 px field (significance 4.7-9.7 against 24; forced on, it adds more error over the face than it
removes), and the oracle-corrected stack keeps them by definition (``benchmarks/results/curtain_voids.md``:
the dark stripe of seed 0, column 129, is -0.040 of the clean grey on the oracle, -0.038 on the
corrected stack).  Once the phases are known the stripe separates from the structure: the particles'
interior has one grey, so its offset in a column against the columns beside it, over a window along
the stripe, is the stripe (:func:`stripe_darkening`); its darkening is taken off the pore's and the
binder's grey before the split (``segment_volume``; ``VoidCues.stripe_nm``, 0 switches it off).  Only
darkening, shrunk at two standard errors: it only lifts the columns it reads (the electrolyte level,
measured after it, moves by a fraction of a grey level).  Measured
(24x192, ``segmentation.py --methods classifier,auto --seed 0/1``, corrected / oracle-corrected):
carbonate void Dice auto 0.241 -> 0.285 / 0.235 -> 0.302 (seed 0), 0.501 -> 0.607 / 0.537 -> 0.634 (seed
1), classifier 0.217 -> 0.244 / 0.233 -> 0.287, 0.435 -> 0.527 / 0.485 -> 0.609; carbonate false void
(auto) 0.0048 -> 0.0015 / 0.0061 -> 0.0019, 0.0066 -> 0.0031 / 0.0063 -> 0.0028 of the cathode; diglyme
void Dice +0.000..+0.001, false void -0.0001..-0.002; no other Dice lower by 0.0005.  What it costs:
the carbonate void fraction that had read near the truth on seed 0 (0.0065 / 0.0079, truth 0.0078) was
two thirds false void; it now reads 0.0031 / 0.0036 (auto; seed 1 0.0125 -> 0.0091, truth 0.0106;
classifier 0.0083 -> 0.0078, under it): most of the carbonate's true void is still not found (the lit
voids, below).  The diglyme classifier's void fraction falls 0.001 further under its truth.  The pass
costs about a fifth of the auto path's CPU time (64x512x512: +3 of 13 CPU-s).

Where a void looks dark.  Its face shows what lies ``shine_depth_nm`` behind it, so at slice z only
the part of the void that is still void that far behind is dark: the dark core is
``V(z) ∩ V(z + D)``.  Where the void narrows with depth, the band ``V(z) - V(z + D)`` shows the
material beyond its far wall (electrolyte-, binder- or particle-grey) and no grey test can find
it; measured on the phantoms, these rims are most of the void a dark test misses.  Their width is
the wall's lateral recession over ``D``, measured on the stack itself as the mean sideways shift of
the dark cores' walls between slices ``D`` apart (:func:`wall_shift`); the void is widened into
the filled-looking pore by half of it (the mean over walls that recede and walls that widen with
depth).  That shift is measured on bands the cores' tails already take: where a wall recedes with depth the
core one depth in front lies inside the deeper slice's void and its tail covers the band (over a
lit floor; over the pore the band's face is dark and in a core itself); where it widens, the deeper core lies outside the shallower slice's void.  So the rim is not taken beside a
wall inclined to the milling direction (the voids within half the depth in front or behind reach
beyond the slice's own, :func:`inclined_wall_side`), only about a void's widest slices, where its
columns are shallower than ``D`` and neither dark nor reached by a tail.  Beside an inclined wall the
rim had taken electrolyte: a third of its voxels were void on the 48x256 diglyme phantoms, and that
false void, thinning the electrolyte between the voids, carried most of the cathode electrolyte's
tortuosity overshoot (``benchmarks/tau_errors.py``).
A dark region only seeds a void when it holds a core far below the electrolyte level
(``core_k`` spreads): an empty pore over empty space shows almost nothing, while a residual
shading or brightness error of the correction leaves pore patches only marginally darker than the
level.

The void's outer ring.  Within about two pixels of its edge a void is not dark even where it is
empty far behind: edge brightening at its own edge and the shine-through blur of the bright walls
around it raise the ring to (or above) the electrolyte grey (measured on the phantoms with their
truth: the outer 15 nm of the true dark cores lie at the electrolyte level, median 0.6 spreads
above it).  No grey test can take that ring, so the dark cores are widened by the length
``grow_nm`` whatever the ring's grey (a grey-gated growth stopped at the ring: void Dice 0.72 vs
0.74 on the 24x192 benchmark phantom).  On a grid coarser than the ring (the shipped 40 nm-slice
stacks: 25.4 nm rows, 20 nm columns) the ring is still the pixel that straddles the void's edge,
so it reaches at least one pixel along each image axis; the far-wall rim, a mean length, reaches
the nearest whole pixel (:func:`_rim_disk`).  Both had reached no row at all on those stacks:
diglyme sample void Dice 0.58 -> 0.65 in the cathode.  On such pixels the ring is two pixels along
an axis whose pixel is no longer than the pore average's scale: the edge pixel, and the next one,
into which the pore average carries the edge pixel's lift (:func:`_ring_disk`; on 10 nm pixels
``grow_nm`` already holds it).  What lost the
shipped stacks' void fraction was the pixel, not the 40 nm slices: on one diglyme specimen
rendered on 10 and 20 nm pixels, 20 and 40 nm slices (``benchmarks/void_voxel.py``, seed 0), the split
read -18 % and +6 % of the true void fraction on 10 nm pixels and -34 % and -33 % on 20 nm ones;
with the lifted pixel -19 % and -15 % (void Dice 0.630 -> 0.640, 0.540 -> 0.549), and on every
20 nm-pixel phantom of seeds 0-1, both presets, nearer the truth with a higher void Dice (carbonate
40 nm slices: -63 -> -38 % and -86 -> -77 %), the 10 nm ones unchanged.  What is left on 20 nm
pixels is mostly void no dark test can see: after the ring, on the 40 nm-slice diglyme phantom (24x192,
seed 0) 35 % of the true void lies more than 60 nm in-plane from any void found, its median grey 4.6
spreads *above* the electrolyte's (the lit voids below); in carbonate 65 %, 2.6 above.  Lowering the
core's margin (``core_k`` 3) doubles the carbonate sample's void (0.006 -> 0.012, truth 0.016) but
took false void in the same measure on the phantoms (20 nm slices and pixels: void Dice 0.243 ->
0.232).

What no cue here finds (measured on the diglyme sample with its truth, 40 nm slices, shine-through
two slices deep): voids whose column is no deeper than the shine-through depth never look dark,
and two thirds of the missed void voxels lie more than 60 nm in-plane from any void found, most
in columns 1-4 slices deep, their median 4.6 spreads *brighter* than the electrolyte (lit by
particles or binder below: binder-grey).  Their face is an attenuated copy of the slice ``shine_depth_nm`` deeper; a linear
shine-through model fitted on the true voids (grey = c + a * grey ``shine_depth_nm`` deeper)
picks the binder-classed lit voids among binder voxels with at most 40% precision, and their
gradient and texture do not separate them either: at these pixels the lit void, a thin binder
film and a particle's edge rim are the same few boundary pixels.

Lit voids beside a void found.  What does separate a lit void from binder is the pair of
where it is and what lies behind it: binder is binder whatever lies behind it, while a void's face
is binder-grey only where a particle (the brightest material of the cathode) lies within the
shine-through depth behind it.  Within the void's outer ring of a void found, binder-labelled
voxels over a particle are mostly void, those over anything else mostly binder (:func:`lit_ring`,
figures there); the voids are widened into them by the ring's width.  Measured on the
benchmark's corrected 24x192x192 phantoms (method ``auto``): diglyme pore Dice 0.942 -> 0.944 and
void Dice 0.746 -> 0.752 (seed 0), 0.941 -> 0.943 and 0.736 -> 0.748 (seed 1), the cathode's void
fraction and porosity nearer the truth, its false void up by 0.002 (of the cathode); carbonate
(hardly any void) unchanged on seed 0, void Dice 0.497 -> 0.510 on seed 1.  Texture does not
separate them on the phantoms (the binder is drawn flat there, as is the blurred shine-through:
1-2 px local variance AUC 0.51-0.53 between binder-labelled void and binder), nor the face's grey
against the grey one shine-through depth behind alone (AUC 0.67-0.75).  The lit voids far from
any void found (most of those left) are not found, nor those in the last slices of the stack whose
particle lies beyond its last slice.

Lit voids far from any void found: no cue found (measured with the truth on the benchmark's
corrected 24x192x192 diglyme phantoms, seeds 0 and 1, method ``auto``;
``benchmarks/pore_errors.py`` prints the table).  Binder-labelled cathode voxels with a particle
within the shine-through depth behind are 20-27 % void (27-38 % pore) at one to 2.5 outer-ring
widths from the voids found, 10-14 % void beyond (3-8 % with nothing lit behind); in the last
shine-through depth of slices 19-30 %.  A taken voxel raises the pore Dice only where it is pore
more often than about half the Dice (47 %).  Nothing else measured on the stack lifts that share:
the in-plane binder pieces they lie in (at most 19 % void, by size, share over a particle, grey),
the pockets of non-particle voxels enclosing them (at most 26 %), the lit ring grown again from
its own voxels (a second pass: pore Dice -0.0004 and +0.0003, false void +0.002 on seeds 0 and
1), and a gradient-boosted classifier fitted to the truth on half the volume with the face's grey
at four scales and its 1-4 px variance, the grey and labels from two slices in front to six
behind and the distances to pore, particle, binder edge and the voids found (AUC 0.71-0.73 on
the other half, at most 15 % void at any recall).  Most of these voxels lie within a pixel of a
particle, where the probe blur mixes the particle's grey in by more than a lit face differs from
binder: on seed 0 the far lit voids' median grey lies 0.9 electrolyte spreads above that of the
binder over a particle, which lies 2.5 spreads above the binder's as a whole.

Stacks unlike the phantom's.  The thresholds are counted in the electrolyte's noise spread, so a
noise-free or denoised stack had a tiny spread and a dark test that took the electrolyte the pore
average darkens around every void (24x192 benchmark phantoms, seed 0, noise-free face: void Dice
diglyme 0.720, carbonate 0.285, against 0.770 and 0.347 with the detector's noise).  The spread is
floored by that spill, one outer ring beyond a dark core (:func:`spread_floor`): 0.769 and 0.344,
the noisy stacks unchanged.  A denoised stack is not mended by it: its noise spread stays above
the floor, and it loses void Dice to the denoiser's own blur (the oracle-corrected stack through
``volrecon.correct.denoise``, void Dice against 0.770 / 0.249 for diglyme / carbonate: a 3D
Gaussian of one voxel 0.735 / 0.178, the same in-plane only 0.753 / 0.207, non-local means 0.763 /
0.201; all before the depth measurement below).  The shine-through depth is measured on the stack where it can be
(:func:`measure_shine_depth`: the grey steps up where a dark core's column meets the material
beyond the void's floor).  On diglyme phantoms (seed 0, 24x192x192) rendered at 40, 80 and 120 nm
the split measured 40, 80 and 120 nm on the noisy clean face and 40, 80 and none (too few of its
dark cores end early enough in 24 slices: the assumed 100 nm kept) on the oracle-corrected one;
void Dice 0.756 -> 0.803, 0.770 -> 0.778, 0.718 -> 0.724 and 0.765 -> 0.800, 0.770 -> 0.773
(``benchmarks/results/void_depth.md``).  On diglyme seed 1 it measured 40 nm (oracle-corrected
0.759 -> 0.777) but neither 80 nor 120 (127 interior ends at 80 nm: the step stands out by less
than three standard errors; the assumed 100 nm kept).  It never measured a wrong depth there.
Carbonate's voids are too few and too small for a measurement: it keeps the assumed depth.

The void's faint faces.  Along its column (z, the milling direction) a void is missed most at its two
ends: in the 24x192 benchmark phantoms (diglyme seeds 0-1, ``auto``, ``benchmarks/void_columns.py``), of
the true void in column runs that hold a dark core, 15-20 % of the run's first slice and 17-21 % of its
last were missed, 1-3 % of the slices 40-60 nm inside (the first slice: 11-15 % with the test below).
The first slice (the void's ceiling) lies in front of a dark core: it shows the same empty space
behind it, so it is dark for the same reason, but
its cross-section is the void's narrowest (the ceiling is inclined to the face) and the edge effects
around it (the outer ring's lift) raise it towards the electrolyte grey, short of the dark test.  A
filled pore there reads the level within its noise spread: a pore voxel one slice in front of a dark
core or its outer ring that reads more than ``faint_k`` (1) spreads below the level is the ceiling
(:func:`void_ceiling`; 60-70 % of the voxels it takes are void on the phantoms' 20 nm slices and 10 nm
pixels, 75-88 % at 40 / 20 nm; review rev25a measured 34-51 % at 10 / 10 and 40 / 10 nm, where the
ceiling alone moved void Dice by -0.0003..+0.0004: one slice in front is a count of slices, and how
far the narrow ceiling's lift reaches in nm is not measured).  The same test, turned round, trims
the far-wall rim: over a filled floor (only pore within the shine-through depth behind) the band
beyond the far wall shows the attenuated electrolyte, darker than a filled pore, so a rim voxel over
such a floor that reads the electrolyte grey within ``faint_k`` spreads is the filled pore itself
(25-29 % of those voxels were void; brighter ones, lifted by the walls beside them, stay the rim's).
Measured (24x192, ``segmentation.py --methods classifier,auto --seed 0/1``, corrected / oracle-corrected):
``auto`` void Dice diglyme 0.788 -> 0.792 / 0.794 -> 0.798 (seed 0), 0.771 -> 0.774 / 0.784 -> 0.787
(seed 1), its void fraction 0.168 -> 0.169 / 0.172 -> 0.173 (truth 0.185) and 0.134 -> 0.135 / 0.140
-> 0.140 (truth 0.164), false void within 0.0001 of the cathode; carbonate 0.268 -> 0.288 / 0.278 ->
0.299 (seed 0), 0.617 -> 0.621 / 0.638 -> 0.643 (seed 1); ``classifier`` void Dice +0.003 to +0.004
(diglyme) and +0.003 to +0.028 (carbonate).  What it costs: the classifier's diglyme false void +0.0005
/ +0.0006 of the cathode on seed 0 (0.0293 / 0.0297), +0.0001 / +0.0003 on seed 1; the diglyme binder
Dice -0.0007 / -0.0008 on two seed 0 rows (the lit ring widens the ceiling into the binder a particle
lights); pore Dice within 0.0002.  Most of the void still missed is never dark: columns no deeper than
the shine-through depth (lit from behind throughout) and cores narrower than about three blur widths.

The closing vote.  Each step above decides voxel by voxel with a cue of its own reach, rounded to
whole voxels, so the border they draw between void and electrolyte flickers on the scale of a
voxel, finer than the image resolves it (the shine-through blur, the void's outer ring: 20 nm).
The split therefore ends with the pore vote of :func:`refine_pores` over the cathode's pore
(``VoidCues.vote_nm``; :func:`volrecon.segment.segment_volume` sets it to its ``pore_vote_nm``,
20 nm).  Measured on the benchmark's 24x192x192 phantoms (method ``auto``, corrected): void Dice
diglyme 0.753 -> 0.761 (seed 0), 0.724 -> 0.737 (seed 1), carbonate 0.242 -> 0.250, 0.452 -> 0.457;
the diglyme false void up by 0.0002-0.0013 of the cathode, the carbonate one down by 0.0004-0.0009.
A wider vote (30 nm) erases the carbonate's small voids (seed 0, oracle-corrected: 0.249 -> 0.228).

What Dice the image allows (``benchmarks/void_bound.py``, same phantoms, seeds 0 / 1).  The truth
sampled half a voxel off along z, y and x keeps void Dice 0.891 / 0.887 (diglyme) and 0.784 / 0.796
(carbonate, whose voids are mostly surface: 59-70 % of their voxels touch a non-void one): a split
whose every void boundary is off by half a voxel scores under the 0.90 goal in both, far under it in
carbonate (this is the score of one kind of error, not a bound on every segmentation).  The dark core ``V(z) & V(z + D)`` continued along the milling direction by
``D`` reaches 0.902 / 0.898 and 0.613 / 0.729; kept only where it is at least twice the
shine-through blur wide (narrower, the bright walls blurred into it lift it above the electrolyte
grey: on diglyme seed 0, half of the dark-core voxels the split misses lie more than 60 nm from any
void found, within 10-24 nm of the core's edge, median 8 spreads brighter than the electrolyte)
0.843 / 0.852 and 0.355 / 0.636, and that resolved core widened by the 20 nm outer ring without
ever overstepping the truth 0.896 / 0.901 and 0.465 / 0.738.  So in diglyme 0.90 is the ceiling
of a split that grows from every resolvable dark core and widens it perfectly (the split: 0.761 /
0.737, measured before the spread floor and the measured shine-through depth); in carbonate such a
split scores at most about 0.5-0.75 (the split: 0.250 / 0.457), and on seed 0
(oracle-corrected, before the vote) two of the five void pieces found hold 1950 of its 2300 false
void voxels, on dark curtain stripes of 1-1.25 electrolyte spreads (the phantom's own curtain
field there) that the correction leaves (its gate stays shut on these faces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage as ndi

from volrecon.errors import ParameterError
from volrecon.phases import PHASES
from volrecon.segment._geodesic import bounded_growth
from volrecon.segment._smooth import gaussian
from volrecon.segment._void_kernels import continue_columns, flat_columns, row_histograms

_TRUNCATE = 3.0


def pore_vote_reach(sigma_nm: float, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Voxels of context :func:`refine_pores` needs per axis."""
    return tuple(int(math.ceil(_TRUNCATE * sigma_nm / float(v))) + 1 for v in voxel_size_nm)  # type: ignore[return-value]


def refine_pores(
    labels: np.ndarray, *, void: int, electrolyte: int, sigma_nm: float, voxel_size_nm: Sequence[float]
) -> np.ndarray:
    """Pore-restricted 3D vote between void and electrolyte.

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Phase labels.
    void, electrolyte : int
        Label values of the two pore phases.
    sigma_nm : float
        Gaussian scale of the vote (nm); 0 returns ``labels`` unchanged.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.

    Returns
    -------
    ndarray
        Labels with the pore voxels re-decided.
    """
    if sigma_nm <= 0:
        return labels
    is_void = labels == void
    pore = is_void | (labels == electrolyte)
    voids = int(np.count_nonzero(is_void))
    if voids == 0 or voids == int(np.count_nonzero(pore)):
        # a pore of one phase (none at all too: a first guess without void): every share is 0 or 1,
        # the vote keeps every voxel
        return labels
    sigma = [sigma_nm / float(v) for v in voxel_size_nm]
    num = gaussian(is_void.astype(np.float32), sigma, mode="reflect", truncate=_TRUNCATE)
    den = gaussian(pore.astype(np.float32), sigma, mode="reflect", truncate=_TRUNCATE)
    share = num / np.maximum(den, 1e-6)
    out = labels.copy()
    out[pore] = np.where(share[pore] > 0.5, void, electrolyte).astype(labels.dtype)
    return out


def vote_joined(labels: np.ndarray, cathode: np.ndarray, joined: np.ndarray, *, void: int, electrolyte: int,
                sigma_nm: float, voxel_size_nm: Sequence[float]) -> np.ndarray:
    """The cathode's pore voxels that joined the pore after its void split take the split's closing
    vote (:func:`refine_pores` over the cathode's pore); every other voxel keeps its label.

    A step after the split that returns voxels to the pore (a classifier's boundary re-decision
    gives back the pore's edge beside a void that the forest read as binder) labels them
    electrolyte, never void: which part of the pore is empty is the split's call, and its last
    step decides a pore voxel by the share of void around it over ``sigma_nm``.  The voxels the
    split already decided keep its decision.

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Phase labels after the split and the later step.
    cathode : ndarray of bool
        The cathode region.
    joined : ndarray of bool
        The voxels that joined the pore after the split (only the cathode's ``electrolyte`` ones change).
    void, electrolyte : int
        Label values of the two pore phases.
    sigma_nm : float
        Gaussian scale of the vote (nm); 0 returns ``labels`` unchanged.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.

    Returns
    -------
    ndarray
        ``labels`` with the joined voxels void where the vote says so.
    """
    change = joined & cathode & (labels == electrolyte)
    if sigma_nm <= 0 or not change.any():
        return labels
    voted = _cathode_refined(labels, cathode, void=void, electrolyte=electrolyte, sigma_nm=sigma_nm,
                             voxel_size_nm=voxel_size_nm)
    return np.where(change, voted, labels)


def _cathode_refined(labels: np.ndarray, cathode: np.ndarray, *, void: int, electrolyte: int, sigma_nm: float,
                     voxel_size_nm: Sequence[float]) -> np.ndarray:
    """:func:`refine_pores` over the cathode's labels only (every other voxel 0: another region's pore
    neither votes nor changes); outside the cathode the result is 0."""
    return refine_pores(np.where(cathode, labels, np.zeros((), labels.dtype)), void=void, electrolyte=electrolyte,
                        sigma_nm=sigma_nm, voxel_size_nm=voxel_size_nm)

# --------------------------------------------------------------------------- unsupervised split
def _box(half: Sequence[int]) -> np.ndarray:
    return np.ones(tuple(2 * int(h) + 1 for h in half), dtype=bool)


def _shift_slices(shape: Sequence[int], offset: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``(here, there)`` pairing each voxel ``p`` with ``p + offset`` where both are inside."""
    here, there = [], []
    for n, o in zip(shape, offset):
        a, c = max(0, -o), max(0, o)
        here.append(slice(a, max(a, n - c)))
        there.append(slice(c, max(c, n - a)))
    return tuple(here), tuple(there)


def _morph(mask: np.ndarray, structure: np.ndarray, *, erode: bool) -> np.ndarray:
    """Binary dilation (or erosion) by a structure centred at ``shape // 2`` (scipy's convention, for
    even sizes too); outside the array counts as False.  Equal to :func:`scipy.ndimage.binary_dilation` (``binary_erosion``)
    but by whole-array shifts: for the small in-plane disks and boxes used here several times
    faster than scipy's voxel-by-voxel loop over the structure.  A full box is applied as 1-D
    passes along each axis in turn."""
    mask = np.asarray(mask, dtype=bool)
    if not structure.all():
        return _shift_pass(mask, np.argwhere(structure) - np.array(structure.shape) // 2, erode=erode)
    out = mask.copy()
    for ax, n in enumerate(structure.shape):
        if n > 1:
            steps = np.zeros((n, mask.ndim), int)
            steps[:, ax] = np.arange(n) - n // 2
            out = _shift_pass(out, steps, erode=erode)
    return out


def _opening(mask: np.ndarray, structure: np.ndarray, *, mirrored: bool = False) -> np.ndarray:
    """Binary opening (:func:`scipy.ndimage.binary_opening`) by :func:`_morph`.

    ``mirrored``: outside the array, ``mask`` continues as its mirror image about the array's faces
    (scipy's ``reflect``, the mode the grey values were denoised in,
    :func:`volrecon.segment.regional.smooth`) instead of counting as False: a piece the array's face
    cuts is then judged by its depth on both sides of the face, as the denoising saw it, not by the
    part the array holds."""
    if not mirrored:
        return _morph(_morph(mask, structure, erode=True), structure, erode=False)
    # erosion then dilation: a voxel depends on the mask up to the structure's whole width away
    pad = [2 * (n // 2) for n in structure.shape]
    opened = _opening(np.pad(np.asarray(mask, dtype=bool), [(p, p) for p in pad], mode="symmetric"), structure)
    return opened[tuple(slice(p, p + n) for p, n in zip(pad, np.shape(mask)))]


def _shift_pass(mask: np.ndarray, offsets: np.ndarray, *, erode: bool) -> np.ndarray:
    """OR (dilation) or AND (erosion, False outside the array) of ``mask`` shifted by each offset."""
    out = np.ones_like(mask) if erode else np.zeros_like(mask)
    for off in offsets:
        if not erode:
            # dilation reflects the structure (matters for an even-sized one, centred at n // 2)
            here, there = _shift_slices(mask.shape, -off)
            out[here] |= mask[there]
            continue
        here, there = _shift_slices(mask.shape, off)
        out[here] &= mask[there]
        for ax, o in enumerate(off):
            if o:
                out[(slice(None),) * ax + (slice(max(0, mask.shape[ax] - o), None) if o > 0 else slice(0, -o),)] = False
    return out


def _half_widths(length_nm: float, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Voxels per axis covering ``length_nm`` (at least one)."""
    return tuple(max(1, int(math.floor(float(length_nm) / float(v) + 1e-9))) for v in voxel_size_nm)  # type: ignore[return-value]


def _rim_box(cues: "VoidCues", voxel_size_nm: Sequence[float]) -> np.ndarray:
    """Box whose opening removes the edge artefact: pieces no wider than ``edge_nm`` in the image
    plane (``ceil(edge / pixel) + 1`` pixels: 3 at 10 nm, 2 at 20 nm) and no thicker than the
    denoising's 2-sigma reach along z (``2 * floor(2 * class_smooth_nm / slice) + 1`` slices: 3 at
    20 nm slices, 1 at 40 nm)."""
    nz = 2 * int(math.floor(2.0 * float(cues.class_smooth_nm) / float(voxel_size_nm[0]) + 1e-9)) + 1
    ny, nx = (int(math.ceil(float(cues.edge_nm) / float(v) - 1e-9)) + 1 for v in voxel_size_nm[1:])
    return np.ones((nz, ny, nx), dtype=bool)


def electrolyte_level(values: np.ndarray, *, bins: int = 200) -> tuple[float, float]:
    """Grey level and noise spread of frozen electrolyte from the grey values of the pore class.

    Frozen electrolyte is one flat material: on denoised grey values it forms the narrowest, highest
    peak of the pore class.  Voids add a broad tail on the dark side (an empty pore over empty
    space shows almost nothing) and edge effects at particle surfaces a tail on the bright side, so
    the level is the histogram's mode and the spread the *narrower* half width at half maximum
    (converted to a Gaussian standard deviation).

    Parameters
    ----------
    values : ndarray
        Denoised grey values of the voxels of the pore class.

    Returns
    -------
    (level, spread) : tuple of float
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 100:
        raise ValueError("too few pore voxels to find the electrolyte level")
    lo, hi = np.percentile(v, [0.5, 99.5])
    if not hi > lo:
        return float(lo), 0.0
    h, edges = np.histogram(v, bins=bins, range=(lo, hi))
    i, hwhm = _peaks(h[None], 2.0)
    width = float(edges[1] - edges[0])
    return float(0.5 * (edges[i[0]] + edges[i[0] + 1])), max(float(hwhm[0]), 1.0) * width / _HWHM_PER_SIGMA


_HWHM_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))


def _peaks(hist: np.ndarray, smooth_bins: float, centre: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mode bin of each row of ``hist`` (smoothed by ``smooth_bins``) and the narrower half width at
    half maximum about it, in bins (``centre``: the peak's bin where it is known, for every row).

    Each half width runs to where the smoothed histogram crosses half its maximum, interpolated
    linearly between the bins either side of the crossing: counted in whole bins, the width (and
    the void split's spread taken from it) jumps by a bin when a few voxels join or leave the
    sample, about 5 % of the spread with the per-slice bins.
    """
    h = ndi.gaussian_filter1d(np.asarray(hist, dtype=np.float64), float(smooth_bins), axis=-1)
    i = np.argmax(h, axis=-1) if centre is None else np.full(h.shape[0], int(centre))
    half = 0.5 * np.take_along_axis(h, i[:, None], axis=-1)
    above = h > half
    n = h.shape[-1]
    idx = np.arange(n)[None]
    rows = np.arange(h.shape[0])
    # first bin below half maximum on each side of the mode (none on the left: 0, none on the
    # right: to the last bin); the crossing lies between it and its neighbour towards the mode
    left = np.where(~above & (idx <= i[:, None]), idx, -1).max(axis=-1)
    right = np.where(~above & (idx >= i[:, None]), idx, n).min(axis=-1)

    def crossing(j: np.ndarray, step: int) -> np.ndarray:
        lo, hi = h[rows, j], h[rows, j + step]
        return j + step * (half[:, 0] - lo) / np.maximum(hi - lo, 1e-300)

    dl = np.where(left >= 0, i - crossing(np.maximum(left, 0), 1), 0.0)
    dr = np.where(right < n, crossing(np.minimum(right, n - 1), -1) - i, n - 1 - i)
    return i, np.minimum(dl, dr).astype(np.float64)


def _mode_offset(hist: np.ndarray, modes: np.ndarray, smooth_bins: float) -> np.ndarray:
    """Sub-bin position of each row's mode (a parabola through the smoothed histogram's mode bin and
    its two neighbours; 0 at the window's edges), in bins from the mode bin's centre: a level
    counted in whole bins jumps by a bin when a few voxels join or leave a slice's sample."""
    h = ndi.gaussian_filter1d(np.asarray(hist, dtype=np.float64), float(smooth_bins), axis=-1)
    rows, n = np.arange(h.shape[0]), h.shape[-1]
    i = np.clip(modes, 1, n - 2)
    a, b, c = h[rows, i - 1], h[rows, i], h[rows, i + 1]
    curv = a - 2.0 * b + c
    off = np.where(curv < 0, 0.5 * (a - c) / np.where(curv < 0, curv, -1.0), 0.0)
    return np.where((modes > 0) & (modes < n - 1), np.clip(off, -0.5, 0.5), 0.0)


SLICE_LEVEL_VOXELS = 2000
"""Fewest electrolyte voxels (in the window of :func:`slice_level_edges`) a slice needs for its own
electrolyte level (:func:`slice_levels`)."""

SLICE_LEVEL_BINS = 512
"""Bins of the per-slice histograms (:func:`slice_level_edges`): 1/16 of the stack's spread each."""


def slice_level_edges(level: float, spread: float, *, bins: int = SLICE_LEVEL_BINS) -> np.ndarray:
    """Bin edges of the per-slice electrolyte histograms (:func:`slice_histograms`).

    A window of ``bins / 32`` spreads either side of the stack's level (16 with the default), in
    bins of 1/16 spread: ``spread`` is measured on values pooled over slices, so it includes their
    wandering and is at least the electrolyte's own spread; the window holds any slice's
    electrolyte peak, and the void tail far below it stays out.
    """
    s = max(float(spread), 1e-6 * max(abs(float(level)), 1.0))
    half = bins / 32.0 * s
    return np.linspace(float(level) - half, float(level) + half, int(bins) + 1)


def slice_histograms(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram of each slice of ``values`` ``(z, y, x)`` on ``edges`` (NaN voxels are left out).

    Counts add up over the in-plane blocks of a slice, so a chunked volume gives each slice's
    histogram exactly, in memory bounded by one block.  A value ``v`` within ``[edges[0], edges[-1])``
    counts in the bin ``searchsorted(edges, v, side="right") - 1`` (in one compiled pass,
    :func:`volrecon.segment._void_kernels.row_histograms`; values of another type are compared as
    float64, as NumPy compares them with float64 edges).
    """
    v = np.asarray(values)
    flat = v.reshape(v.shape[0], -1)
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    return row_histograms(flat, np.asarray(edges))


def slice_levels(hist: np.ndarray, edges: np.ndarray, *, min_voxels: int = SLICE_LEVEL_VOXELS) -> tuple[np.ndarray, float]:
    """Electrolyte level of each slice, and the electrolyte's noise spread about those levels.

    Frozen electrolyte is one material: its grey is the same in every slice of a well-corrected
    stack.  What the brightness correction leaves (measured on the phantoms after the correction
    stage: the electrolyte's grey wanders by 5-12 grey levels, 1-3 of its noise spreads, from slice
    to slice, with no smooth trend) shifts a slice's whole pore against one global level, and the
    dark test of :func:`split_voids` then seeds false voids over a whole darker slice, or misses the
    voids of a brighter one.  Each slice's electrolyte level is therefore measured on that slice,
    every slice of the stack (a slice's error is its own: one interpolated between measured
    slices is unrelated to it and adds a second error).

    The level is the mode of the slice's histogram smoothed by half the electrolyte's spread (a
    kernel well inside the peak, so the void tail does not pull it).  That spread is measured
    about the slices' own levels: the slices' histograms shifted onto one mode and summed (the
    wandering does not widen it); the modes it is measured about are found first with a kernel of
    the pooled width of all slices (``edges``' spread, see :func:`slice_level_edges`).

    Parameters
    ----------
    hist : ndarray (z, bins)
        Each slice's histogram of its electrolyte voxels' grey (:func:`slice_histograms`).
    edges : ndarray (bins + 1,)
        Their bin edges (equal bins, :func:`slice_level_edges`).
    min_voxels : int
        Slices with fewer than half these counts get NaN (too few for a mode): their error is not
        measurable and the caller gives them none (the stack's level), rather than inventing one.
        Between half and all of them, a slice's level is moved from the median full slice's
        towards its own mode in proportion (0 to 1), and its histogram weighs as much in the
        spread: no count makes the levels or the spread jump.

    Returns
    -------
    (levels, spread) : (ndarray of float, float)
        Per-slice levels (NaN where not measurable, or where the mode is at the window's edge)
        and the spread (NaN when no slice could be measured).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = slice_level_edges(73.0, 4.0)
    >>> lv, sp = slice_levels(np.stack([np.histogram(rng.normal(m, 2.0, 5000), e)[0] for m in (70.0, 76.0)]), e)
    >>> bool(abs(lv[0] - 70) < 0.5 and abs(lv[1] - 76) < 0.5 and abs(sp - 2) < 0.5)
    True
    """
    h = np.asarray(hist, dtype=np.float64)
    nb = h.shape[1]
    width = float(edges[1] - edges[0])
    levels = np.full(h.shape[0], np.nan)
    # a slice's weight grows from 0 at half min_voxels to 1 at min_voxels: a slice whose count
    # crosses a hard limit would take its own level, and its histogram would join the spread's,
    # all at once (a few voxels more in one slice moved the spread by 6 % and the void split with it)
    w = np.clip(2.0 * h.sum(axis=1) / max(min_voxels, 1) - 1.0, 0.0, 1.0)
    ok = np.flatnonzero(w > 0)
    if ok.size == 0:
        return levels, float("nan")
    h, w = h[ok], w[ok]

    def aligned(rows: np.ndarray, modes: np.ndarray) -> float:
        rel = np.zeros((1, 2 * nb))
        for row, m, wt in zip(h[rows], modes, w[rows]):
            rel[0, nb - m:2 * nb - m] += wt * row
        # the half widths are taken about the peak of the sum smoothed over half the window's spread (8 bins),
        # not about the lightly smoothed sum's own argmax, which wanders over its flat, noisy top
        # by a few bins (4 % of the spread)
        top = int(_peaks(rel, 8.0)[0][0])
        return max(float(_peaks(rel, 2.0, centre=top)[1][0]), 1.0) / _HWHM_PER_SIGMA

    every = np.arange(ok.size)
    pooled = _peaks((w[:, None] * h).sum(axis=0)[None], 2.0)[1][0] / _HWHM_PER_SIGMA
    modes = _peaks(h, max(pooled, 1.0))[0]
    kernel = max(0.5 * aligned(every, modes), 1.0)
    modes = _peaks(h, kernel)[0]
    inside = (modes > 0) & (modes < nb - 1)
    if not inside.any():
        return levels, float("nan")
    lv = edges[0] + (modes + 0.5 + _mode_offset(h, modes, kernel)) * width
    # a partly weighted slice keeps that part of its own level's difference from the stack's
    ref = float(np.median(lv[inside & (w == 1.0)] if (inside & (w == 1.0)).any() else lv[inside]))
    levels[ok[inside]] = ref + w[inside] * (lv[inside] - ref)
    return levels, aligned(every[inside], modes[inside]) * width


DARKEST_SHARE = 0.001
"""Share of the cathode's pore and binder voxels whose grey is taken as a dark core's (:func:`spread_floor`)."""


def spread_floor(space_grey: np.ndarray, level: float, cues: "VoidCues") -> tuple[float, float]:
    """Smallest electrolyte spread the split counts in, from the dark cores' contrast and the average's blur.

    The split's thresholds are counted in the electrolyte's noise spread, but what a filled pore
    can look like is not set by the noise alone: the pore average (:func:`pore_average`, Gaussian
    ``average_nm``) spills a void's dark core into the electrolyte around it.  Beside a core of
    contrast ``C`` (the electrolyte level minus the core's grey) an electrolyte voxel ``d`` from
    the core's edge is darkened by about ``C * Phi(-d / average_nm)`` (a straight edge; ``Phi`` the
    normal distribution).  The dark cores are widened by the void's outer ring (``grow_nm``)
    whatever the grey, so a dark test that takes the spill *beyond* that ring oversteps the void
    by more than its ring; its threshold (``dark_k`` spreads) must therefore be at least
    ``C * Phi(-grow_nm / average_nm)`` (with a ring narrower than the average, ``C * Phi(-1)``: the
    average places a core's edge no finer than its own scale, and half the contrast, the edge
    itself, would drop the voids' edge voxels).  On a noisy stack the noise sets a higher
    threshold; on a clean one the noise spread alone let the dark region spread into the electrolyte
    around every void (benchmark phantoms, noise-free image: void Dice diglyme 0.720, carbonate
    0.285 against 0.770 and 0.347 with the detector's noise).

    ``C`` is measured on the stack: the darkest :data:`DARKEST_SHARE` of the cathode's pore and
    binder grey is the dark cores' (an empty pore over empty space shows almost nothing).

    Parameters
    ----------
    space_grey : ndarray
        The split's grey (:func:`pore_average`, each slice brought to ``level``) of the cathode's
        pore and binder voxels (a sample).
    level : float
        Electrolyte level.
    cues : VoidCues
        ``dark_k``, ``grow_nm``, ``average_nm``.

    Returns
    -------
    (floor, contrast) : tuple of float
        The spread's floor (0 without an average, or without values) and ``C``.

    Examples
    --------
    >>> g = np.r_[np.full(9900, 100.0), np.full(100, 20.0)]
    >>> floor, c = spread_floor(g, 100.0, VoidCues())
    >>> round(c, 1), round(floor * 3.0 / c, 3)   # Phi(-1): the spill one ring beyond the core's edge
    (80.0, 0.159)
    """
    v = np.asarray(space_grey, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0 or cues.average_nm <= 0 or cues.dark_k <= 0:
        return 0.0, 0.0
    contrast = max(float(level) - float(np.quantile(v, DARKEST_SHARE)), 0.0)
    # (a core's edge is placed no finer than the average's own scale: without a ring, one sigma)
    reach = max(float(cues.grow_nm), float(cues.average_nm))
    spill = 0.5 * math.erfc(reach / float(cues.average_nm) / math.sqrt(2.0))
    return contrast * spill / float(cues.dark_k), contrast


_CUT_ROUNDS = 4


def filled_pore_cut(values: np.ndarray, thresholds: Sequence[float], *, dark_k: float = 3.0) -> float:
    """Grey cut between frozen electrolyte and binder in the cathode, whatever its voids.

    A 3-class multi-Otsu of the cathode's grey (pore / binder / active) puts its first cut where
    it best splits the pore *class*, and voids (an empty pore over empty space shows almost
    nothing) stretch that class far to the dark side: the more voids a cell has, the lower the cut
    and the more electrolyte next to binder is called binder (measured on the benchmark phantoms:
    90 grey levels in the void-rich diglyme cell against 95 in the carbonate one, on the same
    electrolyte and binder levels).  Whether a voxel holds electrolyte or binder is a question
    about those two materials only, so the cut is Otsu's between them: on the values from
    ``dark_k`` electrolyte spreads below the electrolyte level (darker ones are void candidates of
    :func:`split_voids`, not part of this decision) up to the binder | active cut.

    Parameters
    ----------
    values : ndarray
        Denoised grey values of the cathode (a sample).
    thresholds : 2 floats
        Its pore | binder and binder | active cuts on the same grey (multi-Otsu).
    dark_k : float
        Void margin in electrolyte spreads (:attr:`VoidCues.dark_k`).

    Returns
    -------
    float
        The electrolyte | binder cut; ``thresholds[0]`` when the values cannot give one.
    """
    from skimage.filters import threshold_otsu

    v = np.asarray(values, dtype=np.float64).ravel()
    cut, hi = float(thresholds[0]), float(thresholds[1])
    # in a cell with more void than electrolyte the first cut can fall below the electrolyte's
    # peak: the level is then taken again below the new cut (a few rounds settle it)
    for _ in range(_CUT_ROUNDS):
        pore = v[v < cut]
        if pore.size < 100:
            break
        level, spread = electrolyte_level(pore)
        sel = v[(v > level - dark_k * spread) & (v < hi)]
        if sel.size < 100 or np.ptp(sel) <= 0:
            break
        new = float(threshold_otsu(sel, nbins=256))
        if abs(new - cut) <= 1e-3 * max(abs(hi - level), 1e-12):
            return new
        cut = new
    return cut


@dataclass(frozen=True)
class VoidCues:
    """Settings of :func:`split_voids` (lengths in nm).

    Attributes
    ----------
    dark_k : float
        A pore voxel darker than the electrolyte level by ``dark_k`` electrolyte spreads cannot be
        filled: it seeds a void.
    shine_depth_nm : float
        How far along the milling direction the face of an empty pore still shows the material
        beyond its bottom (shine-through): the last ``shine_depth_nm`` of a void column look like
        that material (electrolyte-grey, binder-grey), not dark.  The dark cores are continued
        along the milling direction by this depth, their outer ring (``grow_nm``) by half of it
        (rounded up to whole slices).  It depends on the beam energy and the material: with
        :attr:`shine_from_stack`, :func:`volrecon.segment.segment_volume` measures it on the stack
        (:func:`measure_shine_depth`) and keeps this value only where the measurement is not clear.
    grow_nm : float
        In-plane width of the void's outer ring that its dark cores miss (edge brightening and the
        shine-through blur of the walls lift it to the electrolyte grey): the cores widen by it
        into pore/binder voxels whatever their grey.  It is the reach of the edge artefact plus
        the probe blur, set here to 20 nm from measurements on our phantoms (10 nm edge rim,
        8 nm PSF sigma); for another instrument or pixel size set it to the width of the bright
        ring seen around a void.  On pixels longer than it, it reaches the pixel that straddles
        the void's edge and, along an axis whose pixel is no longer than ``average_nm``, the next
        one (:func:`_ring_disk`).
    edge_nm : float
        Width of the edge artefact at phase boundaries in the image plane (edge brightening, probe
        blur): binder thinner than this that touches the pore is the bright rim of a particle's
        edge, not binder.  A length: at 20 nm pixels it is one pixel, not two.
    class_smooth_nm : float
        Gaussian sigma (nm) of the denoising the pore/binder/active classes were decided on.  Along
        the milling direction there is no probe blur or edge brightening: there the edge artefact
        is the denoising's 2-sigma reach, which spreads a particle into the pore of the adjacent
        slice (one slice each side at 20 nm slices, none at 40 nm).  A fact about the caller's
        classes, not a preference: :func:`volrecon.segment.segment_volume` sets it to its own
        ``smooth_nm``.
    average_nm : float
        Gaussian scale (nm) of the pore-restricted average the dark test is made on
        (:func:`pore_average`).  Voids are much larger than this, so the average keeps them while
        its noise no longer depends on the voxel size; 0 tests the grey values as given.
    core_k : float
        A dark region (``dark_k``) seeds a void only if, within ``3 * average_nm`` of it (the blur
        of the average), it holds a voxel ``core_k`` spreads below the electrolyte level.
    wall_shift_nm : float, optional
        Mean sideways shift (nm) of the void walls over ``shine_depth_nm`` of depth
        (:func:`wall_shift`); the void is widened by :attr:`rim_nm` into the electrolyte-grey
        pore.  None (default): :func:`segment_volume` measures it on the stack;
        :func:`split_voids` takes None as 0 (no rim).
    flat_k : float
        Electrolyte columns (:func:`electrolyte_columns`): a voxel within ``flat_k`` spreads of
        the electrolyte level whose column stays, on average, within ``flat_k`` spreads of it
        over the ``shine_depth_nm`` behind it is never void; 0 switches the test off, and it is not
        made where the shine-through spans fewer than :data:`FLAT_MIN_SLICES` slices.
    faint_k : float or None
        How far from the electrolyte level (in spreads) a filled pore may read.  The void's ceiling
        (:func:`void_ceiling`): a pore voxel one slice in front of a dark core or its outer ring is
        void where it reads more than ``faint_k`` spreads below the level (it shows the same empty
        space as the core behind it, lifted towards the electrolyte grey by the edge effects around
        its narrow cross-section); at 1, a filled pore there passes by its noise alone about one time
        in six (12-16 % measured), at 0 every voxel under the level does.  The far-wall rim over a
        filled floor (:func:`split_voids` step 6) is not taken where it reads within ``faint_k`` of
        the level.  None (not 0) switches both off.
    lit_ring : bool
        Widen the voids by ``grow_nm`` into the binder-labelled voxels lit by a particle within
        ``shine_depth_nm`` behind them (:func:`lit_ring`); False switches it off.
    shine_from_stack : bool
        :func:`volrecon.segment.segment_volume` measures the shine-through depth on the stack
        (:func:`measure_shine_depth`) and uses it instead of ``shine_depth_nm`` where the
        measurement is clear (``shine_depth_nm`` is then the assumed fallback); False (default)
        keeps ``shine_depth_nm``.  Off by default: the split's other cues were set at the assumed
        100 nm, and with the phantoms' true 80 nm measured and used, the end-to-end diglyme void
        fraction fell from -2.5 % to -13 % of its truth (``benchmarks/results/pipeline_accuracy.md``,
        48 x 512 px) for +0.001-0.003 void Dice; where the depth differs more (a 40 nm phantom) it
        gains 0.06 void Dice (``benchmarks/results/void_depth.md``).  :func:`split_voids` itself
        always takes ``shine_depth_nm``.
    vote_nm : float
        Scale (Gaussian sigma, nm) of the 3D void/electrolyte vote among the cathode's pore voxels
        that ends the split (:func:`refine_pores`); 0 switches it off.  The steps before it decide
        voxel by voxel with cues of different reach, each rounded to whole voxels, so their border
        between void and electrolyte flickers on the scale of a voxel, finer than the image
        resolves (the shine-through blur and the void's outer ring are 20 nm).  The vote decides it
        at the scale of a void's continuity instead.  :func:`volrecon.segment.segment_volume` sets
        it to its own ``pore_vote_nm``, the scale its classifier's pore is voted on.
    stripe_nm : float
        Half-length (nm, along image y, the direction curtains run) of the window over which a
        residual curtain's darkening is measured on the particles (:func:`stripe_darkening`) and
        taken off the grey the split reads; 0 switches it off.  A curtain runs on for hundreds of
        rows below the feature that casts it (its amplitude fading over 0.3-1.5 fields on the
        phantoms); the window must hold enough particle voxels to measure a darkening of a few
        grey levels and be shorter than that fade.
    stripe_width_nm : float
        The widest stripe (Gaussian sigma, nm) whose darkening is measured: a column is compared
        with the particles 1.5-5 widths to each side (a stripe narrower than the pore average's
        scale still darkens the pore over that scale).  Curtains are tens to a few hundred nm
        wide, set by the features that cast them.
    stripe_depth_nm : float
        Slices within this length (nm) on each side are pooled into a column's darkening: a curtain
        is milled topography and stays at the same x from slice to slice (its amplitude drifts).
    """

    dark_k: float = 3.0
    shine_depth_nm: float = 100.0
    grow_nm: float = 20.0
    edge_nm: float = 15.0
    class_smooth_nm: float = 10.0
    average_nm: float = 20.0
    core_k: float = 4.0
    wall_shift_nm: float | None = None
    flat_k: float = 1.0
    faint_k: float | None = 1.0
    lit_ring: bool = True
    vote_nm: float = 20.0
    shine_from_stack: bool = False
    stripe_nm: float = 500.0
    stripe_width_nm: float = 25.0
    stripe_depth_nm: float = 40.0

    def __post_init__(self) -> None:
        # a negative length or margin would run silently and read every pore as void (or none); the
        # walls' shift is measured and may come out negative (:attr:`rim_nm` clips it)
        for name in ("dark_k", "shine_depth_nm", "grow_nm", "edge_nm", "class_smooth_nm", "average_nm", "core_k",
                     "flat_k", "faint_k", "vote_nm", "stripe_nm", "stripe_width_nm", "stripe_depth_nm"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
                raise ParameterError(f"VoidCues({name}={value!r}): give a finite value >= 0")
        if self.stripe_nm > 0 and self.stripe_width_nm <= 0:
            raise ParameterError(f"VoidCues(stripe_width_nm={self.stripe_width_nm!r}): give the curtains' width in nm "
                                 "(> 0), or stripe_nm=0 to leave the stripes alone")

    @property
    def rim_nm(self) -> float:
        """Mean width of the void's rim that shows the material beyond its far wall (nm): half
        the walls' sideways shift over the shine-through depth, at most half that depth."""
        shift = max(float(self.wall_shift_nm or 0.0), 0.0)
        return float(0.5 * min(shift, self.shine_depth_nm))

    def to_dict(self) -> dict[str, float | bool | None]:
        return {"dark_k": self.dark_k, "shine_depth_nm": self.shine_depth_nm, "grow_nm": self.grow_nm,
                "edge_nm": self.edge_nm, "class_smooth_nm": self.class_smooth_nm, "average_nm": self.average_nm, "core_k": self.core_k,
                "wall_shift_nm": self.wall_shift_nm, "rim_nm": self.rim_nm, "flat_k": self.flat_k,
                "faint_k": self.faint_k,
                "lit_ring": self.lit_ring, "vote_nm": self.vote_nm, "shine_from_stack": self.shine_from_stack,
                "stripe_nm": self.stripe_nm, "stripe_width_nm": self.stripe_width_nm,
                "stripe_depth_nm": self.stripe_depth_nm}


def pore_average(grey: np.ndarray, space: np.ndarray, *, sigma_nm: float,
                 voxel_size_nm: Sequence[float]) -> np.ndarray:
    """Gaussian-weighted mean grey over the pore space only (solid neither contributes nor changes).

    The dark test compares a voxel with the electrolyte's noise spread.  A smoothing of fixed
    width in nm averages few voxels on a coarse grid (at 20 nm pixels a 10 nm smoothing hardly
    denoises), so the spread, and with it the seed threshold, grows with the voxel size; a plain
    wider smoothing would mix the bright particles into the pore.  Averaging the pore's own voxels
    over ``sigma_nm`` (at least about one voxel) gives a denoised pore grey on any grid.

    The average is taken within each slice.  How deep a void's face stays dark carries the
    shine-through geometry (it is dark only while the void continues ``shine_depth_nm`` behind
    it); averaging along the milling direction would carry the dark core into the slices beyond,
    where the shine-through tail then adds its full depth again (measured on the phantoms: 2-3
    times more false void in cells with few, small voids).

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Grey values.
    space : ndarray of bool
        The pore space (void candidates).
    sigma_nm : float
        Gaussian scale in nm (in-plane); 0 returns ``grey``.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.

    Returns
    -------
    ndarray (float32)
        The pore average inside ``space``, ``grey`` elsewhere.
    """
    g = np.asarray(grey, dtype=np.float32)
    if sigma_nm <= 0 or not space.any():
        return g
    sigma = [0.0] + [sigma_nm / float(v) for v in voxel_size_nm[1:]]
    m = space.astype(np.float32)
    num = gaussian(g * m, sigma, mode="reflect", truncate=_TRUNCATE)
    den = gaussian(m, sigma, mode="reflect", truncate=_TRUNCATE)
    return np.where(space, num / np.maximum(den, 1e-6), g).astype(np.float32)


def split_grey(grey: np.ndarray, pore: np.ndarray, binder: np.ndarray, *, sigma_nm: float,
               voxel_size_nm: Sequence[float]) -> np.ndarray:
    """The grey the void split reads: the pore's voxels averaged over the pore alone, the binder's
    over the pore and the binder (:func:`pore_average`).

    A void's dark face is the pore's own signal: binder (well above the electrolyte grey, and the
    bright edge rims classed binder beside the particles) averaged into it lifts it by its share of
    the average times the binder's contrast, at 20 nm about a tenth of the pore's neighbourhood per
    tenth of binder, and a void of a few pixels' width lined with binder never reads dark.
    Measured with the phantoms' truth (24x192x192 carbonate, seed 0, oracle-corrected): inside a
    void lined with binder the pore-and-binder average read 0.35-0.38 where the face itself is
    0.15-0.25 (electrolyte 0.22).  A binder-labelled voxel keeps the pore-and-binder average: it
    is a void only where it borders one (the split's rings), and its own few binder neighbours
    would read it alone.

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Grey values.
    pore, binder : ndarray of bool
        The pore's and the binder's voxels (in the region split).
    sigma_nm : float
        Gaussian scale of the average (nm, in-plane); 0 returns ``grey``.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.

    Returns
    -------
    ndarray (float32)
    """
    pore = np.asarray(pore, dtype=bool)
    binder = np.asarray(binder, dtype=bool)
    own = pore_average(grey, pore, sigma_nm=sigma_nm, voxel_size_nm=voxel_size_nm)
    if not binder.any():
        return own
    both = pore_average(grey, pore | binder, sigma_nm=sigma_nm, voxel_size_nm=voxel_size_nm)
    return np.where(binder & ~pore, both, own).astype(np.float32)


def average_noise(mask: np.ndarray, *, sigma_nm: float, voxel_size_nm: Sequence[float]) -> np.ndarray:
    """Noise of :func:`pore_average` at each voxel of ``mask``, relative to a neighbourhood all ``mask``.

    The average over ``mask`` with in-plane Gaussian weights ``k`` has, for white noise of one
    spread, the standard deviation ``sqrt(sum k^2 m) / sum k m``.  For a Gaussian ``k`` of scale
    ``s``, ``k^2`` is a Gaussian of scale ``s / sqrt(2)`` over ``4 pi s^2`` (per unit of area), so
    relative to a full neighbourhood it is ``sqrt(G_{s/sqrt 2} m) / G_s m``: 1 inside a wide pore,
    about 1.4 at a straight edge, and several times more in a pore a pixel or two wide.  The
    electrolyte's spread is measured where the average reads a full neighbourhood, so a dark test
    counted in that spread takes the noise of a thin pore's few voxels for a dark core.

    Parameters
    ----------
    mask : ndarray of bool (z, y, x)
        The voxels averaged over (each slice on its own).
    sigma_nm : float
        Gaussian scale of the average (nm, in-plane).
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.

    Returns
    -------
    ndarray (float32)
        The factor (at least about 1) on ``mask``, 1 elsewhere and everywhere when ``sigma_nm`` is 0.

    Examples
    --------
    >>> m = np.zeros((1, 41, 41), bool); m[:, :, :20] = True
    >>> f = average_noise(m, sigma_nm=20.0, voxel_size_nm=(20.0, 10.0, 10.0))
    >>> round(float(f[0, 20, 5]), 2), round(float(f[0, 20, 19]), 1)   # deep inside; the last voxel in (sqrt 2 at the edge)
    (1.0, 1.3)
    """
    m = np.asarray(mask, dtype=bool)
    if sigma_nm <= 0 or not m.any():
        return np.ones(m.shape, dtype=np.float32)
    sigma = [0.0] + [sigma_nm / float(v) for v in voxel_size_nm[1:]]
    mf = m.astype(np.float32)
    den = gaussian(mf, sigma, mode="reflect", truncate=_TRUNCATE)
    sq = gaussian(mf, [x / math.sqrt(2.0) for x in sigma], mode="reflect", truncate=_TRUNCATE * math.sqrt(2.0))
    f = np.sqrt(np.maximum(sq, 0.0)) / np.maximum(den, 1e-6)
    return np.where(m, f, 1.0).astype(np.float32)


STRIPE_K = 2.0
"""A column's particle darkening counts from this many of its standard errors (a garrote: well above
it nearly the whole darkening is taken off, near it little): the split only ever brightens the
columns it reads, so noise read as darkening loses void there, never invents it."""


def _stripe_windows(cues: VoidCues, voxel_size_nm: Sequence[float]) -> tuple[int, int, int, int]:
    """``(slices, rows, inner, outer)``: the half-windows of :func:`stripe_darkening` in voxels along z
    and y, and the first and last column of its flanks."""
    w = float(cues.stripe_width_nm) / float(voxel_size_nm[2])
    return (int(round(float(cues.stripe_depth_nm) / float(voxel_size_nm[0]))),
            max(1, int(round(float(cues.stripe_nm) / float(voxel_size_nm[1])))),
            max(1, int(math.ceil(1.5 * w))), max(2, int(round(5.0 * w))))


def stripe_reach(cues: VoidCues, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Voxels of context :func:`stripe_darkening` needs per axis for chunk-exact results."""
    dz, dy, inner, outer = _stripe_windows(cues, voxel_size_nm)
    blur = int(math.ceil(_TRUNCATE * float(cues.average_nm) / float(voxel_size_nm[2])))
    return (dz, dy + 1, 3 * outer + inner + blur + 1)  # flanks, the stripes' peaks and width, flanks again


def _window_sums(values: np.ndarray, dz: int, dy: int) -> np.ndarray:
    """Sums over ``2 dz + 1`` slices and ``2 dy + 1`` rows (zero outside the array)."""
    rows = ndi.uniform_filter1d(values, 2 * dy + 1, axis=1, mode="constant")
    rows *= np.float32(2 * dy + 1)
    if dz <= 0:
        return rows
    # whole slices added in a fixed order (faster than a filter along the slowest axis, and the same
    # sum whatever block a slice sits in)
    out = rows.copy()
    for k in range(1, dz + 1):
        out[k:] += rows[:-k]
        out[:-k] += rows[k:]
    return out


def _flank_sums(values: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Sums over the columns ``inner`` to ``outer`` away on each side (zero outside the array): the box
    of ``2 outer + 1`` columns less the box of ``2 inner - 1`` (running sums along the rows)."""
    wide = ndi.uniform_filter1d(values, 2 * outer + 1, axis=-1, mode="constant") * np.float32(2 * outer + 1)
    if inner <= 1:
        return wide - values
    return wide - ndi.uniform_filter1d(values, 2 * inner - 1, axis=-1, mode="constant") * np.float32(2 * inner - 1)


def _stripe_columns(off: np.ndarray, t: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """The columns of the stripes in a first reading ``off`` (threshold ``t``): a significant offset
    that is the largest within ``outer`` columns, and its significant neighbours of the same sign
    within ``inner - 1``.  The columns beside a stripe read off by its share of their flanks, of
    the other sign and smaller: taking every significant column out (as first done) emptied the
    flanks around a strong stripe on a quiet face."""
    size = np.abs(off)
    sig = size > t
    peak = sig & (size >= ndi.maximum_filter1d(size, 2 * outer + 1, axis=-1, mode="constant"))
    if inner <= 1:
        return peak
    near = [ndi.maximum_filter1d((peak & (off * sign > 0)).view(np.uint8), 2 * inner - 1, axis=-1,
                                 mode="constant").astype(bool) & (off * sign > 0) for sign in (1, -1)]
    return sig & (near[0] | near[1])


def _column_offset(own: Sequence[np.ndarray], flanks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A column's mean over its flanks' (count, sum, sum of squares each) and the garrote threshold
    :data:`STRIPE_K` standard errors of that difference (0 and inf where either holds too few voxels)."""
    (n, s1, _), (nf, f1, f2) = own, flanks
    ok = (n >= 1) & (nf >= 2)
    n_, nf_ = np.maximum(n, np.float32(1)), np.maximum(nf, np.float32(2))
    mean_f = f1 / nf_
    var = f2 / nf_
    var -= mean_f * mean_f
    np.maximum(var, 0, out=var)
    var *= nf_ / (nf_ - 1)
    off = s1 / n_
    off -= mean_f
    off[~ok] = 0
    var *= 1 / n_ + 1 / nf_
    t = np.sqrt(var, out=var)
    t *= np.float32(STRIPE_K)
    t[~ok] = np.inf
    return off, t


def stripe_darkening(grey: np.ndarray, particle: np.ndarray, *, cues: VoidCues,
                     voxel_size_nm: Sequence[float], wanted: np.ndarray | None = None) -> np.ndarray:
    """How much a residual curtain darkens each voxel's column (<= 0), measured on the particles.

    A curtain is an additive stripe along image y: it darkens (or lightens) every material in its
    columns alike, for hundreds of rows.  The correction stage removes it only where its gate sees
    the stripes above the structure's own contrast (:mod:`volrecon.correct.curtains`; at a 192 px
    field of 10 nm pixels it is off, the filter adding more error than it removes there), so
    stripes reach the split, and a dark stripe over frozen electrolyte reads as a void.  Once the
    phases are known the stripe separates from the structure: the particles' interior (eroded by
    a pixel, off their bright rims) has one grey, so its mean over ``2 * stripe_nm`` of a column
    (and the slices within ``stripe_depth_nm``) against the same mean over the columns 1.5-5
    ``stripe_width_nm`` to each side is the stripe's offset there, read twice: the second time
    without the stripes the first found in the flanks (:func:`_stripe_columns`).  It is kept where
    it is negative, shrunk by a garrote at :data:`STRIPE_K` standard errors (from the flanks' own
    variance), and blurred across the columns by the pore average's scale (``average_nm``), as
    the pore's grey is.  Only darkening is returned: taking it off can only lift a column's pore
    back to the electrolyte grey.  A bright stripe over a void hides it, but lifting it the other
    way put the noise of the estimate into the dark test (measured on the phantoms: more false
    void in diglyme, no true void gained).  The measured darkening is part of the stripe's: the
    garrote, and the stripe's fade within the window (``benchmarks/results/curtain_voids.md``).

    Parameters
    ----------
    grey : ndarray (z, y, x)
        The grey values (not the pore average).
    particle : ndarray of bool (z, y, x)
        The particles (active material) of the region.
    cues : VoidCues
        ``stripe_nm``, ``stripe_width_nm``, ``stripe_depth_nm`` and ``average_nm``.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    wanted : ndarray of bool (z, y, x), optional
        The voxels whose darkening is used (None: all).  Only the image rows (slice, row) holding
        one are read past the window sums, within the reach of the wanted voxels: the values are
        the same there, and 0 elsewhere (a caller taking the stripes off a class's voxels pays for
        the rows that class crosses alone).

    Returns
    -------
    ndarray (float32)
        The darkening in grey levels (0 where none is measured, everywhere when ``stripe_nm`` is 0).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> particle = np.ones((3, 64, 64), bool)
    >>> grey = rng.normal(0.66, 0.02, particle.shape).astype(np.float32)
    >>> grey[..., 29:32] -= 0.05        # a dark stripe three columns wide
    >>> d = stripe_darkening(grey, particle, cues=VoidCues(), voxel_size_nm=(20.0, 10.0, 10.0))
    >>> round(float(d[1, 32, 30]), 3), float(d[1, 32, 5])   # its centre (blurred over 2 px); far from it
    (-0.027, 0.0)
    """
    g = np.asarray(grey, dtype=np.float32)
    out = np.zeros(g.shape, np.float32)
    want = None if wanted is None else np.asarray(wanted, dtype=bool)
    if want is not None and want.shape != g.shape:
        raise ParameterError(f"stripe_darkening: wanted has shape {want.shape}, grey {g.shape}; pass a mask of the grey's shape")
    if cues.stripe_nm <= 0 or (want is not None and not want.any()):
        return out
    inner = _morph(np.asarray(particle, dtype=bool), np.ones((1, 3, 3), bool), erode=True)
    if not inner.any():
        return out
    # nothing is measured further from the particles than the windows and the blur reach: the
    # box around them is computed alone (the same values: zero outside it either way)
    reach = stripe_reach(cues, voxel_size_nm)
    box = _near_box(inner, reach)
    if want is not None:
        # nor read beyond the wanted voxels' windows (slices, rows) and their columns' reach
        dz, dy = _stripe_windows(cues, voxel_size_nm)[:2]
        box = _meet(box, _near_box(want, (dz, dy, reach[2])))
        if box is None:
            return out
    rows = np.ones(g[box].shape[:2], bool) if want is None else want[box].any(axis=2)
    out[box][rows] = _darkening(g[box], inner[box], rows, cues=cues, voxel_size_nm=voxel_size_nm)
    if want is not None:
        out[~want] = 0  # a wanted row's other voxels near the box's edge miss their outer columns
    return out


def _meet(a: Sequence[slice], b: Sequence[slice]) -> tuple[slice, ...] | None:
    """The boxes ``a`` and ``b`` (slices with start and stop) have in common; None when nothing."""
    box = tuple(slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(a, b))
    return None if any(s.start >= s.stop for s in box) else box


def _near_box(mask: np.ndarray, reach: Sequence[int]) -> tuple[slice, ...]:
    """The bounding box of ``mask`` widened by ``reach`` voxels per axis (cut to the array)."""
    box = []
    for ax, r in enumerate(reach):
        hit = np.flatnonzero(mask.any(axis=tuple(i for i in range(mask.ndim) if i != ax)))
        box.append(slice(max(0, int(hit[0]) - int(r)), min(mask.shape[ax], int(hit[-1]) + int(r) + 1)))
    return tuple(box)


def _rows_of(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values`` (z, y, x) on the image rows ``rows`` (bool (z, y)) as ``(rows.sum(), x)`` (a view when all are)."""
    return values.reshape(-1, values.shape[-1]) if rows.all() else values[rows]


def _darkening(g: np.ndarray, inner: np.ndarray, rows: np.ndarray, *, cues: VoidCues,
               voxel_size_nm: Sequence[float]) -> np.ndarray:
    """:func:`stripe_darkening` of ``g`` from the particles' interior ``inner`` on the image rows ``rows``
    (bool (z, y)): ``(rows.sum(), x)``.  Past the window sums every step runs along the rows alone."""
    dz, dy, a, b = _stripe_windows(cues, voxel_size_nm)
    gm = np.where(inner, g, np.float32(0))
    sums = [_rows_of(_window_sums(v, dz, dy), rows) for v in (inner.astype(np.float32), gm, gm * gm)]
    # a stripe in a column's flanks shifts their mean (a bright one makes its neighbours read dark):
    # the stripes leave the flanks of the second pass (_stripe_columns)
    off, t = _column_offset(sums, [_flank_sums(v, a, b) for v in sums])
    calm = (~_stripe_columns(off, t, a, b)).astype(np.float32)
    off, t = _column_offset(sums, [_flank_sums(v * calm, a, b) for v in sums])
    big = off < -t
    d = np.where(big, off - t * t / np.where(big, off, np.float32(-1)), 0).astype(np.float32)
    if cues.average_nm > 0:
        d = ndi.gaussian_filter1d(d, float(cues.average_nm) / float(voxel_size_nm[2]), axis=-1, mode="nearest",
                                  truncate=_TRUNCATE)
    return d.astype(np.float32)


def _core_steps(cues: VoidCues, voxel_size_nm: Sequence[float]) -> int:
    """Steps of the bounded growth from a void's dark core through its dark region."""
    return max(1, int(math.ceil(3.0 * cues.average_nm / min(float(v) for v in voxel_size_nm[1:]))))


def _rim_disk(length_nm: float, voxel_size_nm: Sequence[float], *, min_share: float = 0.5) -> np.ndarray:
    """In-plane disk of radius ``length_nm`` as a (1, ny, nx) structure (an ellipse in pixels).

    Along an image axis whose pixel is longer than ``length_nm`` the disk reaches one pixel when
    the length is at least ``min_share`` of that pixel, and none otherwise: a length is a mean
    over the void walls (the far-wall rim, :attr:`VoidCues.rim_nm`), and a 25 nm rim on 25.4 nm
    rows is one row, not none (``min_share`` 0.5: the nearest whole pixel).  The void's outer
    ring (:attr:`VoidCues.grow_nm`) takes ``min_share`` 0: on a grid coarser than the ring it is
    still the pixel that straddles the void's edge (its grey mixes the void with its wall).
    The rounding is a bias on coarse grids, stated: a ring or rim shorter than ``min_share`` of
    a pixel reaches none of it, and one just above reaches the whole pixel (``min_share`` 0: any
    positive length on 25.4 nm rows grows the void by a full row, e.g. +95 % for a 13 nm ring).
    """
    radii = []
    for v in voxel_size_nm[1:]:
        a = float(length_nm) / float(v)
        radii.append(a if a >= 1.0 else (1.0 if 0.0 < a and a >= min_share else 0.0))
    return _ellipse(radii[0], radii[1])


def _ellipse(ry: float, rx: float) -> np.ndarray:
    """In-plane ellipse of radii ``(ry, rx)`` pixels as a (1, ny, nx) structure."""
    hy, hx = (int(math.floor(r + 1e-9)) for r in (ry, rx))
    yy, xx = np.ogrid[-hy:hy + 1, -hx:hx + 1]
    # an axis of radius 0 keeps its centre line only (hy or hx is 0 there)
    ry, rx = (max(r, 1e-12) for r in (ry, rx))
    return ((yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0 + 1e-9)[None]


def _ring_disk(cues: "VoidCues", voxel_size_nm: Sequence[float]) -> np.ndarray:
    """In-plane structure of the void's outer ring (:attr:`VoidCues.grow_nm`) on the given pixels.

    The ring is what the dark test misses beside a dark core.  On pixels shorter than the ring it
    is the length ``grow_nm`` (measured on 10 nm pixels, where it holds the void's edge pixel and
    the pixels the pore average lifts).  On a pixel ``p`` as long as the ring, the edge pixel is
    the whole ring (it carries the edge artefact whatever its size: a rim narrower than a pixel is
    spread over the pixel), and the dark test reads the pore average (:func:`pore_average`,
    Gaussian ``average_nm``), which carries that pixel's lift into its inner neighbour, ``p``
    away, with the weight ``exp(-p^2 / 2 average^2)``: at least ``exp(-1/2)`` of the centre's
    while the pixel is no longer than the average.  So along each image axis the ring reaches
    ``max(grow_nm, p + min(average_nm, p) * min(1, p / grow_nm))``: the edge pixel and the
    average's reach beyond it, at most one more pixel, taken in the share of the ring the edge
    pixel is (on pixels shorter than the ring, ``grow_nm`` holds it; without an average, the edge
    pixel: at least one pixel).

    Measured with the phantoms' truth (diglyme, seed 0, oracle-corrected, method ``auto``): on 20 nm
    pixels (25.4 nm rows) the true dark cores' edge pixel along the columns lies 2.9 electrolyte
    spreads *above* the level in the pore average, the next (40 nm in) 1.9 below it, short of the
    3-spread dark test, where its own grey is 0.10 below the level (80 % of the core's contrast);
    along the rows the second pixel (51 nm in) passes it (3.7).  On 10 nm pixels the second column
    is 1.1 spreads below and the third (25-35 nm in, with the second row) 3.3: two columns and
    one row, the 20 nm ring.
    """
    g = float(cues.grow_nm)
    if g <= 0:
        return _ellipse(0.0, 0.0)
    avg = max(float(cues.average_nm), 0.0)
    ry, rx = (max(g, float(p) + min(avg, float(p)) * min(1.0, float(p) / g)) / float(p) for p in voxel_size_nm[1:])
    return _ellipse(ry, rx)


def _depth_slices(length_nm: float, voxel_size_nm: Sequence[float]) -> int:
    """Slices along the milling direction covering ``length_nm`` (nearest whole slice)."""
    return int(round(float(length_nm) / float(voxel_size_nm[0])))


def continue_down(mask: np.ndarray, space: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` continued along +z (the milling direction) by up to ``steps`` slices through ``space``.

    Each column of ``mask`` extends slice by slice into the ``space`` voxels directly below it and
    stops at the first voxel outside ``space`` (a void continues through the pore, never across
    solid).

    Parameters
    ----------
    mask : ndarray of bool (z, ...)
        Start voxels; the columns run along the first axis, whatever the dimension (a 2D slice
        ``(z, x)`` grows along ``z``).
    space : ndarray of bool
        Voxels the continuation may enter (broadcast to ``mask``'s shape).
    steps : int
        Most slices added below each voxel of ``mask``.

    Returns
    -------
    ndarray of bool
        ``mask`` and its continuation.

    Raises
    ------
    ValueError
        ``mask`` 0-dimensional, or ``space`` not broadcastable to its shape.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 0:
        raise ValueError("continue_down: mask needs an axis to grow along")
    sp = np.broadcast_to(np.asarray(space, dtype=bool), m.shape)
    if int(steps) < 1:
        return m.copy()
    # one compiled pass down the columns (the slice-by-slice growth, each voxel visited once); the
    # axes after the first are only columns side by side, so another dimension is a (z, columns, 1) block
    cols = m.shape if m.ndim == 3 else (m.shape[0], int(np.prod(m.shape[1:], dtype=np.int64)), 1)
    return continue_columns(m.reshape(cols), sp.reshape(cols), int(steps)).reshape(m.shape)


def _rim_slices(cues: VoidCues, voxel_size_nm: Sequence[float]) -> int:
    """Slices over which an inclined wall moves sideways by the far-wall rim's width: half the
    shine-through depth (the rim is half the walls' shift over the whole depth), rounded up, and no
    more than the shine-through tails reach (:func:`_depth_slices`): the band beside an inclined wall
    is left to the tails, so on slices too thick for a tail the rim is kept whole."""
    half = int(math.ceil(0.5 * float(cues.shine_depth_nm) / float(voxel_size_nm[0]) - 1e-9))
    return min(half, _depth_slices(cues.shine_depth_nm, voxel_size_nm))


def inclined_wall_side(void: np.ndarray, slices: int) -> np.ndarray:
    """Voxels beyond the void of their own slice that the void of a slice within ``slices`` in front
    or behind (along z, the milling direction) reaches: the outer side of a wall inclined to z.

    Such a wall is placed slice by slice by the dark cores and their shine-through tails: where it
    recedes with depth the band a slice's face shows beyond the far wall is the tail of the core one
    shine-through depth in front (that core lies inside the void of the deeper slice), and where it
    widens with depth the deeper core lies outside the shallower slice's void.  The wall shift
    measured on the cores (:func:`wall_shift`) is exactly these bands; the band no core or tail
    reaches is that of the void's columns shallower than the shine-through depth, about a void's
    widest slices, where the void of the slices around lies inside its own.  A voxel the void of a
    nearby slice reaches is therefore beyond an inclined wall: the far-wall rim does not take it.

    Parameters
    ----------
    void : ndarray of bool (z, y, x)
        The voids found so far.
    slices : int
        How far along z (slices, each way) the voids are looked for: over half the shine-through
        depth an inclined wall moves by the rim's width (:func:`_rim_slices`).

    Returns
    -------
    ndarray of bool
        Voxels outside ``void`` that ``void`` holds within ``slices`` slices along z.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((5, 1, 6), bool)
    >>> for z in range(5):
    ...     v[z, 0, : 5 - z] = True  # a wall receding one voxel a slice
    >>> inclined_wall_side(v, 1)[2, 0].astype(int).tolist()
    [0, 0, 0, 1, 0, 0]
    """
    v = np.asarray(void, dtype=bool)
    if int(slices) < 1:
        return np.zeros_like(v)
    return _morph(v, np.ones((2 * int(slices) + 1, 1, 1), bool), erode=False) & ~v


def void_ceiling(seeds: np.ndarray, pore: np.ndarray, dark: np.ndarray, *, ring: np.ndarray,
                 faint_k: float) -> np.ndarray:
    """Pore voxels one slice in front of (``z - 1``) a dark core or its outer ring that read darker than
    a filled pore: the void's ceiling slice.

    A dark core at slice ``z`` is void there and ``shine_depth_nm`` behind; a void voxel one slice in
    front of it shows the same empty space behind it, so its face is dark for the same reason.  Where
    it is the void's first slice, though, its cross-section is the void's narrowest (the ceiling is
    inclined to the face), and the edge effects around it (edge brightening, the probe blur of the
    walls, the pore average's reach: the outer ring, :attr:`VoidCues.grow_nm`) lift it towards the
    electrolyte grey, short of the dark test.  A filled pore there reads the electrolyte level within
    its noise spread, so a voxel more than ``faint_k`` spreads below the level is the void's ceiling.
    Only one slice: the ring's lift is an in-plane effect of the ceiling's own slice.

    Parameters
    ----------
    seeds : ndarray of bool (z, y, x)
        The dark cores (:func:`dark_cores`).
    pore : ndarray of bool
        The pore (the only voxels taken: a binder-grey voxel is lit, not faint).
    dark : ndarray
        Depth below the electrolyte level in (noise-scaled) spreads, as the dark test reads it.
    ring : ndarray of bool
        In-plane structure of the outer ring (:func:`_ring_disk`).
    faint_k : float
        Least depth below the level, in spreads.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> seeds = np.zeros((4, 1, 5), bool); seeds[2:, 0, 1:4] = True
    >>> dark = np.zeros((4, 1, 5)); dark[1, 0, :] = [2.0, 2.0, 0.5, 2.0, 2.0]; dark[0] = 2.0
    >>> void_ceiling(seeds, np.ones_like(seeds), dark, ring=np.ones((1, 1, 3), bool), faint_k=1.0)[:, 0].astype(int).tolist()
    [[0, 0, 0, 0, 0], [1, 1, 0, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    """
    s = np.asarray(seeds, dtype=bool)
    front = np.zeros_like(s)
    if s.shape[0] > 1:
        front[:-1] = _morph(s[1:], ring, erode=False)
    return front & ~s & np.asarray(pore, dtype=bool) & (np.asarray(dark) > float(faint_k))


def split_reach(cues: VoidCues, voxel_size_nm: Sequence[float]) -> tuple[int, int, int]:
    """Voxels of context :func:`split_voids` needs per axis for chunk-exact results."""
    edge = [max(a, n // 2) for a, n in zip(_half_widths(cues.edge_nm, voxel_size_nm), _rim_box(cues, voxel_size_nm).shape)]
    grow = [n // 2 for n in _ring_disk(cues, voxel_size_nm).shape] if cues.grow_nm > 0 else [0, 0, 0]
    tail = _depth_slices(cues.shine_depth_nm, voxel_size_nm)
    core = _core_steps(cues, voxel_size_nm)
    # opening, then dilation; the voids of the slices around read for the inclined walls
    rim = ([3 * (n // 2) + (_rim_slices(cues, voxel_size_nm) if ax == 0 else 0)
            for ax, n in enumerate(_rim_disk(cues.rim_nm, voxel_size_nm).shape)] if cues.rim_nm > 0 else [0, 0, 0])
    lit = grow if cues.lit_ring else [0, 0, 0]  # the lit ring: one more widening of the finished voids
    # the closing vote reads the finished voids around each voxel: its reach adds to theirs
    vote = pore_vote_reach(cues.vote_nm, voxel_size_nm) if cues.vote_nm > 0 else (0, 0, 0)
    # the dark test's noise factor reads the pore around each voxel (average_noise), in-plane
    noise = (0, *pore_vote_reach(cues.average_nm, voxel_size_nm)[1:]) if cues.average_nm > 0 else (0, 0, 0)
    # (the ceiling reads the cores and their ring one slice behind: beside the ring, within its and the
    # tail's reach)
    return tuple(3 * e + grow[ax] + lit[ax] + core + rim[ax] + vote[ax] + noise[ax] + (tail if ax == 0 else 0) + 1  # type: ignore[return-value]
                 for ax, e in enumerate(edge))


def dark_cores(dark: np.ndarray, space: np.ndarray, *, cues: VoidCues,
               voxel_size_nm: Sequence[float]) -> np.ndarray:
    """Dark regions that seed voids: ``space`` voxels ``dark_k`` spreads or more below the
    electrolyte level, within reach (``3 * average_nm``, through such voxels) of one ``core_k``
    spreads below it.

    Parameters
    ----------
    dark : ndarray
        Depth below the electrolyte level in spreads, ``(level - grey) / spread``; 2D or 3D.
    space : ndarray of bool
        Where voids may be (the pore space).
    cues : VoidCues
        ``dark_k``, ``core_k``, ``average_nm``.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size (for a 2D slice the reach is in-plane).

    Returns
    -------
    ndarray of bool
    """
    seeds = space & (dark > cues.dark_k)
    if cues.core_k <= cues.dark_k:
        return seeds
    grown = seeds & (dark > cues.core_k)
    if not grown.any():
        return grown
    # bounded geodesic growth within the seeds, face neighbours (scipy's binary_dilation by a cross,
    # iterated with the seeds as mask: the same voxels, each visited once)
    return bounded_growth(grown, seeds, _core_steps(cues, voxel_size_nm))


FLAT_MIN_SLICES = 3
"""Fewest slices the shine-through depth must span for :func:`electrolyte_columns` to be used: the
test compares a face with the mean of its column behind it, which says whether the column stays
at the electrolyte grey only when it samples the depth profile; with slices as thick as half the
shine-through depth (one or two slices behind) a void a slice or two deep over electrolyte and
electrolyte over electrolyte read alike.  Measured: on 10 and 20 nm slices (10 and 5 slices
behind) the test raised void Dice on all 8 phantom stacks; on the shipped 40 nm-slice samples (2
slices behind) it lowered the cathode void fraction 0.096 -> 0.090 (diglyme, truth 0.149) and
0.0057 -> 0.0051 (carbonate, truth 0.016)."""


def electrolyte_columns(grey: np.ndarray, *, level: float, spread: float, depth: int, flat_k: float,
                        where: np.ndarray | None = None) -> np.ndarray:
    """Voxels that are frozen electrolyte in front of frozen electrolyte, from their column's grey.

    An empty pore's face shows, attenuated, what lies ``depth`` slices behind it: over electrolyte
    it is darker than the electrolyte (the attenuated electrolyte grey), over empty space darker
    still, over binder or particles brighter once the face comes near the void's floor, where its
    column's deeper faces turn to solid grey.  A face at the electrolyte grey whose column stays
    at the electrolyte grey through the ``depth`` slices behind it shows electrolyte in front of
    electrolyte: no void.  The test takes the mean absolute deviation from ``level`` over the
    slices behind (those in the array: the last slice has none and is never flagged).  A face whose
    ``depth`` slices reach past the last slice is tested on the part in the array: a column flat
    there could still be a void whose floor lies beyond it (over binder a void's face reads about
    the electrolyte's grey), but on the 24x192 phantoms (``auto``, seeds 0-1, corrected and
    oracle-corrected) leaving those faces untested kept voxels 17-21 % void (diglyme; carbonate 1 of
    56 on seed 1) and lowered the split's void Dice by 0.0013-0.0024 on 6 of 8 stacks: the part seen
    is evidence enough.

    Measured on the phantoms (48x256x256, seeds 0-2, 20 nm slices): the voxels this takes back
    from the voids of :func:`split_voids` (its tail, outer ring and far-wall rim) are 10-25 %
    void, below the share at which removing them costs Dice.

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Grey values of the dark test (the pore average, each slice brought to ``level``).
    level, spread : float
        Electrolyte grey level and noise spread.
    depth : int
        Slices behind the face the test covers (the shine-through depth).
    flat_k : float
        Largest deviation from ``level``, in spreads, at the face and on average behind it.
    where : ndarray of bool, optional
        Only these voxels are tested (the others are returned False): the split asks about the
        voxels it widened the voids into.

    Returns
    -------
    ndarray of bool
        The electrolyte columns' voxels.
    """
    g = np.asarray(grey, dtype=np.float32)
    if flat_k <= 0 or depth < 1 or g.shape[0] < 2:
        return np.zeros(g.shape, dtype=bool)
    tol = float(flat_k) * max(float(spread), 1e-12)
    # compiled, voxel by voxel: the deviations behind a face summed in float32 in depth order
    return flat_columns(g, level, tol, depth, where)


def wall_shift(dark_pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, pixel_nm: Sequence[float],
               min_boundary: int = 200) -> float:
    """Mean sideways shift (nm) of the void walls between slices a given depth apart.

    A wall inclined to the milling direction moves sideways from one slice to a deeper one; the
    area between the two slices' dark cores (their symmetric difference) divided by the cores'
    mean boundary length is that shift, averaged over the walls.

    Parameters
    ----------
    dark_pairs : iterable of (ndarray of bool, ndarray of bool)
        Dark cores (:func:`dark_cores`) of slice pairs the wanted depth apart (read once, in turn:
        a generator need not hold them all).
    pixel_nm : 2 floats
        ``(y, x)`` pixel size (nm).
    min_boundary : int
        Boundary pixels over all pairs from which the measurement is taken whole; with fewer, it
        is shrunk towards 0 (no rim) in proportion to the pixels seen, so a stack a few walls
        short of the count keeps most of its rim instead of losing it all (a cliff there had
        halved carbonate's void fraction on one phantom when a change elsewhere took its dark
        cores' boundary from 252 to 194 pixels).

    Returns
    -------
    float
        Mean shift in nm, 0 when no wall is seen.
    """
    area = 0.0
    boundary = 0
    for a, b in dark_pairs:
        area += float((a ^ b).sum())
        for m in (a, b):
            boundary += int((m & ~ndi.binary_erosion(m, border_value=1)).sum())
    if boundary == 0:
        return 0.0
    vy, vx = (float(v) for v in pixel_nm)
    # both slices' boundaries were counted: the mean boundary length is half of it
    shift = area * vy * vx / (0.5 * boundary * math.sqrt(vy * vx))
    return shift * min(1.0, boundary / max(float(min_boundary), 1.0))


def lit_ring(void: np.ndarray, binder: np.ndarray, particle: np.ndarray, *, depth: int,
             ring: np.ndarray) -> np.ndarray:
    """Binder-labelled voxels beside a void that are the void's face lit by a particle behind it.

    An empty pore's face shows, attenuated and blurred, the material beyond it within the
    shine-through depth (``depth`` slices).  Where that is a particle (the brightest material of
    the cathode), the attenuated particle grey is about the binder's: next to its edge, where the
    void's column ends on a particle within the shine-through depth, a void lit this way is read
    as binder by any grey test.  Binder itself is binder whatever lies behind it, so the cue is
    the pair: binder-grey within ``ring`` of a void found, with a particle in one of the
    ``depth`` slices behind.

    Measured with the phantoms' truth (24x192x192 diglyme seed 0, after the correction stage):
    of the binder-labelled cathode voxels within 1-2 pixels of a void found, those over a
    particle one shine-through depth behind are 57-67 % void (64-74 % pore), those over binder,
    electrolyte or void 3-19 %; farther from the voids the share over a particle falls (38 %
    at 5 pixels, 21 % over the whole cathode), so the ring is the void's outer ring
    (:attr:`VoidCues.grow_nm`), not more.  A particle anywhere within the depth (the floor a
    real shine-through shows) rather than exactly one depth behind took slightly more
    (void Dice of the split +0.0006 and +0.002 on seeds 0 and 1).

    The stack's end reads as unlit here, unlike in the tails and the floor (:func:`lit_from_behind`
    ``beyond``), and the difference is the cue's role, not an oversight.  There a voxel lies under a
    dark core, void by geometry, and "lit" only lifts a veto (its grey is what a void's face may
    show); here "lit" is the evidence itself: beside a void and unlit, a binder-grey voxel is void
    3-19 % of the time.  A face whose look reaches past the last slice is lit as often as the
    unseen material is a particle, so counting it lit takes voxels at about that base rate: on the
    24x192 phantoms (diglyme seeds 0-1, ``auto``, corrected and oracle-corrected) the binder-labelled
    voxels it would add in the last 5 slices were 26-37 % void (0.40 in the last slice, 0.13 in the
    fifth from the end, whose look is mostly seen), and end to end (``segmentation.py``, seeds 0-1,
    both methods) the binder Dice fell by 0.004-0.008 and the pore's by 0.0004-0.0012 on all 8
    diglyme rows, the void's by up to 0.003 (one row +0.001; carbonate seed 0 void +0.003..+0.008,
    seed 1 -0.001..-0.002); over seeds 0-3 (32 rows) the void, pore and binder Dice fell on 19, 18
    and 24 rows and rose on 10, 2 and 3.

    Parameters
    ----------
    void : ndarray of bool (z, y, x)
        The voids found.
    binder : ndarray of bool
        Binder-labelled voxels (the only ones taken).
    particle : ndarray of bool
        Particle (solid brighter than binder) voxels.
    depth : int
        Shine-through depth in slices (along +z, the milling direction): slices ``z + 1`` to
        ``z + depth`` are looked at, those in the array (the last slice takes nothing: what lies
        beyond it is not seen, and only a particle seen lights the ring); below 1 nothing is taken.
    ring : ndarray of bool
        In-plane structure of the ring's width (:func:`_rim_disk`).

    Returns
    -------
    ndarray of bool
        The lit voxels to add to the voids.
    """
    lit = lit_from_behind(particle, depth) & np.asarray(binder, dtype=bool)
    if lit.any():
        lit &= _morph(void, ring, erode=False)
    return lit


def lit_from_behind(particle: np.ndarray, depth: int, *, blur: np.ndarray | None = None,
                    beyond: bool = False) -> np.ndarray:
    """Voxels with a particle within ``depth`` slices behind them along the milling direction (+z).

    An empty pore's face shows the material up to the shine-through depth behind it, attenuated:
    over a particle (the cathode's brightest material) it reads binder-grey, over anything else
    darker than the binder.  These are the voxels where a binder-grey face may be a void's.

    Parameters
    ----------
    particle : ndarray of bool (z, y, x)
        Particle voxels.
    depth : int
        Shine-through depth in slices: slices ``z + 1`` to ``z + depth`` are looked at, those in
        the array (the last slice sees nothing); below 1 nothing is lit.
    blur : ndarray of bool, optional
        In-plane structure (1, ny, nx): the face shows the material behind it blurred, so a particle
        within it aside lights the face too; None looks straight behind only.
    beyond : bool
        True: a voxel whose ``depth`` slices behind reach past the array's last slice counts as lit
        (what lies there is not seen); False (default): only the particles in the array light.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> p = np.zeros((6, 1, 1), bool); p[4] = True
    >>> lit_from_behind(p, 2)[:, 0, 0].tolist()
    [False, False, True, True, False, False]
    """
    part = np.asarray(particle, dtype=bool)
    if blur is not None and part.any():
        part = _morph(part, blur, erode=False)
    lit = np.zeros(part.shape, dtype=bool)
    for k in range(1, min(int(depth), lit.shape[0] - 1) + 1):
        lit[:-k] |= part[k:]
    if beyond and int(depth) >= 1:
        lit[-int(depth):] = True
    return lit


def lit_floor(labels: np.ndarray, *, electrolyte: int, void: int, depth: int, blur: np.ndarray) -> np.ndarray:
    """Voxels whose face may be lifted out of the dark by what lies behind: a solid (any phase but the
    pore's; not the face's frame, whose trench is empty, nor unassigned voxels) within ``depth`` slices
    behind and ``blur`` aside, or the end of the array within ``depth``.

    An empty pore's face shows the material up to the shine-through depth behind it, attenuated:
    over empty space almost nothing, over frozen electrolyte the electrolyte's grey attenuated
    (darker than the electrolyte), over a solid brighter.  So a void whose face is not dark has a
    solid behind it; with only pore behind, a face at the electrolyte grey is electrolyte.  What lies
    beyond the array's last slice is not seen: those voxels count as lit.

    Measured on the benchmark's 24x192x192 phantoms with their truth (``benchmarks/void_pieces.py``,
    carbonate seed 0, oracle-corrected, method ``auto``): of the 206 dark seeds 165 are void, 102 of
    them void one shine-through depth deeper too and 61 over frozen electrolyte there (dark for that);
    the dark columns' continuation 2-5 slices below their last dark slice was 6-20 % void, while on
    seed 1, whose voids mostly end on particles, 37-95 %.

    Parameters
    ----------
    labels : ndarray (z, y, x)
        Phase labels; ``electrolyte`` and ``void`` are the pore, 0 and ``PHASES["frame"]`` nothing
        known to shine, every other value a solid.
    electrolyte, void : int
        The pore's label values.
    depth : int
        Shine-through depth in slices (:func:`lit_from_behind`).
    blur : ndarray of bool
        In-plane structure of the shine-through blur (:func:`lit_from_behind`).

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> lab = np.full((6, 1, 1), 1, np.uint8); lab[4] = 3      # electrolyte (1) over a solid (3)
    >>> lit_floor(lab, electrolyte=1, void=2, depth=2, blur=np.ones((1, 1, 1), bool))[:, 0, 0].tolist()
    [False, False, True, True, True, True]
    """
    lab = np.asarray(labels)
    solid = (lab != electrolyte) & (lab != void) & (lab != 0) & (lab != PHASES["frame"])
    return lit_from_behind(solid, depth, blur=blur, beyond=True)


def split_voids(
    smoothed: np.ndarray, phases: np.ndarray, cathode: np.ndarray, *, void: int, electrolyte: int, binder: int,
    level: float, spread: float, voxel_size_nm: Sequence[float], cues: VoidCues = VoidCues(),
    active: int | None = PHASES["active"],
) -> np.ndarray:
    """Void versus electrolyte (and binder) in the cathode's pore space, from physical cues.

    1. *Edge rim*: binder voxels in pieces thinner than ``edge_nm`` (a morphological opening)
       that touch the pore are the bright rim that edge effects paint where a pore meets a
       particle; they return to the pore.  Beyond the array's faces (the stack's first and last
       slices, and the field's edges in the slice plane, both denoised in ``reflect`` mode) the
       binder continues as its mirror image: a body the stack's face or the field's edge cuts is
       not thin for that.
    2. *Dark seeds*: pore or binder voxels darker than the electrolyte ``level`` by ``dark_k``
       ``spread`` cannot hold electrolyte (an empty pore over empty space shows almost nothing),
       where they hold a core ``core_k`` spreads below it (:func:`dark_cores`).
    3. *Shine-through tail*: an empty pore's face shows, attenuated and blurred, what lies beyond it
       along the milling direction; near the void's far end that is material, so the void looks
       electrolyte- or binder-grey there.  A seed is dark because the void continues
       ``shine_depth_nm`` behind it, so each seed column is continued along +z for
       ``shine_depth_nm`` through the pore (:func:`continue_down`), and through binder-labelled
       voxels only where a particle lies within ``shine_depth_nm`` behind them
       and the shine-through blur (the outer ring's width) aside, or the stack's end (what lies
       beyond it is not seen) (:func:`lit_from_behind`): a void's
       face shows the material behind it attenuated and blurred, binder-grey over a particle and
       darker than the binder over anything else, so an unlit binder-grey voxel is the void's floor,
       not its face.  Measured with the phantoms' truth (24x192 diglyme seeds 0-1, ``auto``,
       corrected and oracle-corrected): the binder-labelled voxels the cores' tails took were 76-81 %
       void where lit so, 19-37 % where not (``active`` None: what lights a face is not known, and
       the tails go through the binder as through the pore).  Over the full depth only where a
       floor lights the face (a solid within ``shine_depth_nm`` behind and the blur aside, or the
       stack's end, :func:`lit_floor`): with only pore behind, a void's face stays dark, so a column
       that stops looking dark there has ended; its last, narrowing slices are the outer ring's
       continuation (step 4).
    4. *Outer ring*: the seeds widen in-plane by ``grow_nm`` into the pore, whatever the grey there
       (the ring of a void next to its edge is not dark; its lift reaches the electrolyte's grey, and
       binder-grey voxels beside a core are taken only where a particle lights them, step 8: into
       the binder too, the ring took about as much binder as void there: diglyme seed 0 (24x192,
       ``auto``) pore Dice 0.948 against 0.949, void Dice 0.773 / 0.775 against 0.776 / 0.779
       corrected / oracle-corrected); on pixels as long as the
       ring, by the edge pixel and the one the pore average lifts (:func:`_ring_disk`).  How deep a ring column
       goes is not seen (from none at the void's edge to the core's depth beside the core), so
       the ring is continued along +z into the slices that begin within the mean, half the
       shine-through depth (through the pore, and the binder lit from behind, as the cores' tails).  Measured with the phantoms' truth, the share of void among the ring's
       continuation falls slice by slice (48x256x256 diglyme, 20 nm slices: 0.80 in the ring's own
       slice, then 0.71, 0.60, 0.52, 0.44, 0.28 over the 5 slices of a 100 nm tail; carbonate 0.64
       down to 0.07): continuing it as deep as the cores put a fifth of the false void under the
       voids' shrinking lower halves.  On 40 nm slices (the shipped diglyme sample: 0.95, 0.87,
       0.74) the rounding up keeps both of its slices.
    5. *Ceiling*: pore voxels one slice in front of (``z - 1``) a dark seed or its outer ring that read
       more than ``cues.faint_k`` spreads below the level (darker than a filled pore) are the void's
       first slice, lifted towards the electrolyte grey by the edge effects around its narrow
       cross-section (:func:`void_ceiling`; ``faint_k`` None: none).
    6. *Far-wall rim*: voids at least ``2 * cues.rim_nm`` wide widen in-plane by ``cues.rim_nm``
       (from the measured ``wall_shift_nm``) into the pore, where the face shows the material
       beyond the void's far wall; but not into the outer side of a wall inclined to the milling
       direction, which the voids of the slices within half the shine-through depth in front or
       behind reach (:func:`inclined_wall_side`): the cores and their tails have placed that wall in
       this slice, and the rim beyond it is electrolyte.  Measured with the truth (split alone,
       48x256 diglyme seeds 0-1, corrected and oracle-corrected, ``auto``): the rim's voxels were
       35 % void, 46 % with the rule; void Dice +0.009 to +0.015, the cathode electrolyte's
       through-plane tortuosity +30..+69 % -> +18..+37 % of its truth (``benchmarks/tau_errors.py``).
       Nor into a voxel over a filled floor (only pore within ``shine_depth_nm`` behind and the blur
       aside, :func:`lit_floor`) that reads the electrolyte grey within ``cues.faint_k`` spreads: there
       the band would show the attenuated electrolyte, darker than a filled pore.
    7. *Electrolyte columns*: steps 3-6 widen by lengths whatever the grey; the voxels they took
       whose face and column behind it stay at the electrolyte grey (``cues.flat_k``,
       :func:`electrolyte_columns`) are electrolyte in front of electrolyte, not void.
    8. *Lit ring*: the voids widen by ``cues.grow_nm`` into binder-labelled voxels whose column
       meets a particle (an ``active`` voxel of the cathode) within ``shine_depth_nm`` behind
       (:func:`lit_ring`; ``cues.lit_ring``): the void's face lit by the particle beyond it,
       binder-grey.  Only a particle in the stack lights it: the lit face is the cue itself here,
       not a veto lifted as in the tails (step 3), so the unseen material beyond the last slice
       does not (measured: :func:`lit_ring`).
    9. *Vote*: among the cathode's pore voxels (void and electrolyte; binder and particles neither
       vote nor change) each becomes void where the Gaussian-weighted share of void around it, over
       ``cues.vote_nm``, exceeds one half (:func:`refine_pores`): the void's border with the
       electrolyte decided at the scale of its continuity, not voxel by voxel.

    Parameters
    ----------
    smoothed : ndarray (z, y, x)
        Denoised grey values (the ones the per-region thresholds were applied to).
    phases : ndarray (z, y, x) uint8
        Phases with the cathode's pore labelled ``electrolyte``.
    cathode : ndarray of bool
        The cathode region.
    void, electrolyte, binder : int
        Label values.
    level, spread : float
        Electrolyte grey level and spread (:func:`electrolyte_level`).
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size; z is the milling direction (deeper slices have larger z).
    cues : VoidCues
        Lengths and the dark-seed margin.
    active : int or None
        Label value of the particles (the active material), the only label that lights a void's
        face in the tails (steps 3-4) and the lit ring (step 8); default: the value of :data:`volrecon.phases.PHASES`.  Any
        other label in the cathode (a classifier's separator, SEI, sodium or collector voxels
        there, which the cathode cannot hold) lights nothing; None (a vocabulary without
        particles) skips the lit ring.

    Returns
    -------
    ndarray
        ``phases`` with cathode voxels relabelled ``void`` / ``electrolyte``.
    """
    cat = np.asarray(cathode, dtype=bool)
    out = np.array(phases, copy=True)
    pore = cat & (out == electrolyte)
    bind = cat & (out == binder)
    if cues.edge_nm > 0 and bind.any():
        # the rim is a length (edge brightening + probe blur): a box of voxels would call binder
        # three coarse voxels wide (60-120 nm at 20-40 nm voxels) a rim
        box = _rim_box(cues, voxel_size_nm)
        touch = _box([max(1, n // 2) for n in box.shape])
        # the array's faces (the stack's first and last slices, the field's edges) are not the binder's end:
        # a piece they cut is as deep as the denoising (reflect) saw it, not what the array holds of it
        rim = bind & ~_opening(bind, box, mirrored=True) & _morph(pore, touch, erode=False)
        out[rim] = electrolyte
        pore |= rim
        bind &= ~rim
    space = pore | bind
    g = np.asarray(smoothed)
    # the pore's average reads fewer voxels in a thin pore than where its spread was measured
    noise = average_noise(cat & (np.asarray(phases) == electrolyte), sigma_nm=cues.average_nm,
                          voxel_size_nm=voxel_size_nm)
    dark = (level - g) / (max(spread, 1e-12) * noise)
    seeds = dark_cores(dark, space, cues=cues, voxel_size_nm=voxel_size_nm)
    if not seeds.any():
        return out
    # a dark core is void at least the shine-through depth deeper: its columns continue that far
    core = _depth_slices(cues.shine_depth_nm, voxel_size_nm)
    ring_disk = _ring_disk(cues, voxel_size_nm)  # the outer ring's width: also the shine-through blur aside
    # the tails' binder-grey is the void's face only where a particle lights it through the shine-through
    # blur (the outer ring's width aside): a tail voxel lies under a dark core, void by geometry down to
    # the true depth, so a particle aside behind it is evidence enough (the lit ring, beside a core
    # only, asks for one straight behind); what lies beyond the stack's last slice is not seen, and may
    # light it (as for the floor, lit_floor)
    tail = space if active is None else pore | (
        bind & lit_from_behind(cat & (out == active), core, blur=ring_disk, beyond=True))
    # below its last dark slice a core's column is void over the whole depth only where a floor lights
    # its face: over the pore (electrolyte or void behind) a void's face stays dark, so a column that
    # stops looking dark there has ended (its own narrowing last slices are the outer ring's, below)
    floor = lit_floor(out, electrolyte=electrolyte, void=void, depth=core, blur=ring_disk)
    grown = continue_down(seeds, tail & floor, core)
    if cues.grow_nm > 0:
        # the void's outer ring is not dark (edge brightening at its own edge, the shine-through
        # blur of the walls): a grey gate cannot find it, so the dark cores widen by a length
        # (on coarse pixels by the pixels the dark test misses, _ring_disk)
        # How deep a ring column goes is not seen (none at the void's edge, the core's depth beside
        # the core): it continues into every slice that begins within the mean, half the
        # shine-through depth (rounded up: on 40 nm slices the ring is a whole pixel that
        # straddles the edge, mostly void, and continues as deep as the core)
        # The lift reaches the electrolyte's grey, not the binder's: a binder-labelled voxel beside a
        # core is the void's face only where a particle lights it (the lit ring, below), else binder
        ring = _morph(seeds, ring_disk, erode=False) & pore
        # (never deeper than the core: on slices thicker than twice the depth the core gets none)
        half = int(math.ceil(0.5 * float(cues.shine_depth_nm) / float(voxel_size_nm[0]) - 1e-9))
        grown |= continue_down(ring, tail, min(half, core))
    if cues.faint_k is not None:
        # the void's first slice over a core: the same empty space behind it, lifted by the edge
        # effects of its narrow cross-section, still darker than a filled pore
        grown |= void_ceiling(seeds, pore, dark, ring=ring_disk, faint_k=cues.faint_k)
    if cues.rim_nm > 0:
        # only voids at least a rim wide on each side: the walls' shift is a mean over the walls
        # of voids that wide; a void narrower than its rim would be mostly rim
        disk = _rim_disk(cues.rim_nm, voxel_size_nm)
        rim = _morph(_opening(grown, disk), disk, erode=False) & pore
        if cues.faint_k is not None:
            # over a filled floor (only pore behind) the band shows the attenuated electrolyte beyond the
            # far wall, darker than a filled pore: a band voxel at the electrolyte grey is the filled pore
            # itself (a brighter one is lifted by the walls beside it, as the outer ring is)
            rim &= floor | (np.abs(dark) > cues.faint_k)
        # and not beside an inclined wall, which the cores and their tails have placed in this slice
        grown |= rim & ~inclined_wall_side(grown, _rim_slices(cues, voxel_size_nm))
    if cues.flat_k > 0 and core >= FLAT_MIN_SLICES:
        grown &= ~electrolyte_columns(g, level=level, spread=spread, depth=core, flat_k=cues.flat_k, where=grown)
    if cues.lit_ring and cues.grow_nm > 0 and active is not None:
        # binder-grey beside a void over a particle within the shine-through depth behind: the void's
        # face lit by the particle (its attenuated grey is the binder's), taken by the outer ring's width
        grown |= lit_ring(grown, bind, cat & (out == active), depth=core,
                          ring=ring_disk)
    out[grown] = void
    if cues.vote_nm > 0:
        out = _cathode_vote(out, cat, bind, void=void, electrolyte=electrolyte, binder=binder, sigma_nm=cues.vote_nm,
                            voxel_size_nm=voxel_size_nm)
    return out


def _cathode_vote(labels: np.ndarray, cathode: np.ndarray, was_binder: np.ndarray, *, void: int, electrolyte: int,
                  binder: int, sigma_nm: float, voxel_size_nm: Sequence[float]) -> np.ndarray:
    """:func:`refine_pores` over the cathode's pore voxels only: the pore of another region (the
    separator's electrolyte beside the cathode) neither votes nor changes, and a voxel the split took
    from binder (``was_binder``) that the vote does not keep void returns to binder, not to the pore."""
    voted = _cathode_refined(labels, cathode, void=void, electrolyte=electrolyte, sigma_nm=sigma_nm,
                             voxel_size_nm=voxel_size_nm)
    voted[was_binder & (voted == electrolyte)] = binder
    return np.where(cathode, voted, labels)



@dataclass(frozen=True)
class ShineDepth:
    """The shine-through depth measured on a stack (:func:`measure_shine_depth`).

    Attributes
    ----------
    slices : int
        Depth in whole slices (0: not measured).
    step : ndarray of float
        Mean grey step ``g(z_e + j + 1) - g(z_e + j)`` after the last dark slice ``z_e`` of a
        dark core's interior column, for ``j = 1 ... len(step)`` (NaN where too few columns reach).
    error : ndarray of float
        Standard error of each mean step.
    columns : ndarray of int
        Columns averaged for each ``j``.
    """

    slices: int
    step: np.ndarray
    error: np.ndarray
    columns: np.ndarray

    def to_dict(self) -> dict[str, object]:
        """JSON-safe (a depth too few ends reach: ``None``)."""
        def listed(a: np.ndarray) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in a]

        return {"slices": self.slices, "step": listed(self.step), "error": listed(self.error),
                "columns": [int(v) for v in self.columns]}


SHINE_MIN_COLUMNS = 50
"""Fewest dark-core ends a depth's mean step needs (:func:`measure_shine_depth`)."""

SHINE_MIN_REACH = 0.5
"""Share of the ends that reach one slice deeper a depth's mean needs (a depth only the ends in the stack's
first slices reach averages other columns: on the 24-slice phantoms those steps drift by +0.03 to +0.06)."""

SHINE_MIN_SIGNIFICANCE = 3.0
"""How many standard errors the step at the measured depth must stand above every other depth's step."""


def dark_core_ends(dark: np.ndarray, interior: np.ndarray) -> np.ndarray:
    """Voxels where a dark core's interior column ends: ``interior`` there, not ``dark`` one slice deeper.

    Parameters
    ----------
    dark : ndarray of bool (z, y, x)
        The dark test.
    interior : ndarray of bool
        Dark voxels far enough inside their core (an in-plane erosion of ``dark``).

    Returns
    -------
    ndarray of bool
        ``(z - 1, y, x)``: the end at slice ``z`` for ``z = 0 ... nz - 2``.
    """
    return np.asarray(interior, bool)[:-1] & ~np.asarray(dark, bool)[1:]


def measure_shine_depth(grey: np.ndarray, ends: np.ndarray, *, max_slices: int,
                        min_columns: int = SHINE_MIN_COLUMNS,
                        min_significance: float = SHINE_MIN_SIGNIFICANCE) -> ShineDepth:
    """How deep an empty pore's face shows the material behind it, from the dark cores' ends.

    The face of an empty pore shows, attenuated, the material ``D`` slices behind it, so along a
    column through a void the face is dark while the void still goes on ``D`` slices deeper (the dark
    core, ``V(z) & V(z + D)``), then shows the material beyond the void's floor for its last ``D``
    slices; after them the column meets that material itself and its grey steps *up*, from the
    attenuated copy to the material's own grey, ``D`` slices after the column's last dark slice,
    whatever the material.  Between, the steps are those of the material deeper down, of either
    sign.  So the mean step ``j`` slices after a dark core's end peaks at ``j = D``.  Only the
    ends of columns well inside their core count (``ends``, :func:`dark_core_ends`): at a core's
    edge the blur of the face and of the shine-through moves where the dark test stops, and the
    step spreads over several slices.

    Parameters
    ----------
    grey : ndarray (z, y, x)
        Grey values (not averaged in-plane: the step is the column's own).
    ends : ndarray of bool (z - 1, y, x)
        The dark cores' interior columns' last dark slices (:func:`dark_core_ends`).
    max_slices : int
        Largest depth looked for.
    min_columns : int
        Fewest ends a depth's mean needs; it needs :data:`SHINE_MIN_REACH` of the ends that reach
        one slice too.
    min_significance : float
        The largest mean step must stand this many of its standard errors above every other
        depth's, else nothing is measured.

    Returns
    -------
    ShineDepth
        ``slices`` 0 when not measurable (too few ends, no clear peak).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = rng.normal(0.0, 0.1, (12, 1, 400)).astype(np.float32)
    >>> g[:4] -= 1.0            # dark cores end at slice 3 ...
    >>> g[8:] += 0.5            # ... and the material itself begins 4 slices later
    >>> measure_shine_depth(g, dark_core_ends(g < -0.5, g < -0.5), max_slices=6).slices
    4
    """
    nz = grey.shape[0]
    k = max(0, min(int(max_slices), nz - 2))
    step, err, cols = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k, np.int64)
    zi, yi, xi = np.nonzero(ends)
    g = np.asarray(grey)
    for j in range(1, k + 1):
        ok = zi + j + 1 <= nz - 1
        a, b, c = zi[ok] + j, yi[ok], xi[ok]
        v = g[a + 1, b, c].astype(np.float64) - g[a, b, c]
        v = v[np.isfinite(v)]
        cols[j - 1] = v.size
        # a depth only the ends in the stack's first slices reach is a mean over another set of
        # columns (the stack's own depth trends): counted only where enough of the ends reach it
        if v.size >= max(min_columns, SHINE_MIN_REACH * cols[0]):
            step[j - 1], err[j - 1] = v.mean(), v.std() / math.sqrt(v.size)
    if not np.isfinite(step).any():
        return ShineDepth(0, step, err, cols)
    best = int(np.nanargmax(step))
    # the first lit face sees the void's floor itself through the shine-through blur, and brightens
    # as the faces behind it leave the floor: its step carries the floor's shape (+0.3 to +0.6 of the
    # material's step on the phantoms) and is no rival of a deeper peak
    others = np.delete(step, [best] if best == 0 else [0, best])
    others = others[np.isfinite(others)]
    margin = step[best] - (others.max() if others.size else -np.inf)
    return ShineDepth(best + 1 if margin > min_significance * err[best] else 0, step, err, cols)
