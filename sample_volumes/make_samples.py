"""Regenerate the committed sample volumes and the orthoslice figure (deterministic by seed).

    python sample_volumes/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

from volrecon.sample import generate, load_truth, make_phantom
from volrecon.sample.figure import orthoslice_figure

HERE = Path(__file__).parent
COMMON = dict(slices=40, shape=(256, 256), seed=0, frame=True, artefacts="all", voxel_size_nm=(40.0, 20.0, 20.0))


def main() -> None:
    generate("diglyme", HERE / "diglyme_thermo", vendor="thermo", name_with_z=True, overwrite=True, write_clean=False, **COMMON)
    generate("carbonate", HERE / "carbonate_zeiss", vendor="zeiss", overwrite=True, write_clean=False, **COMMON)
    figs = {name: make_phantom(name, **COMMON) for name in ("diglyme", "carbonate")}
    orthoslice_figure(figs, HERE / "phantom_orthoslices.png")
    for d in ("diglyme_thermo", "carbonate_zeiss"):
        t = load_truth(HERE / d)["truth"]
        print(d, t["regions"]["cathode"]["void_share_of_pore"], t["regions"]["anode"]["sei_thickness_nm"]["mean"])


if __name__ == "__main__":
    main()
