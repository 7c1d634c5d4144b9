"""Before/after destriping figures of the two real Zeiss Auriga slices (docs/corrections/*.png).

Run from the repository root: ``python docs/corrections/zeiss_destripe.py``.  Reads
``../shared/data/zeiss_auriga_fibsem_2slices/ZEISS_SEM_multipage.tif`` (GPL data, not copied
here) and prints the gate's verdict and the stripe index before/after.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

from volrecon.correct import apply_curtains, estimate_curtains  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1].parent / "shared" / "data" / "zeiss_auriga_fibsem_2slices" / "ZEISS_SEM_multipage.tif"


def main() -> None:
    stack = tifffile.imread(DATA)
    stack = stack.reshape((-1,) + stack.shape[-2:])
    gated = estimate_curtains(stack)
    forced = estimate_curtains(stack, min_significance=0)
    print(f"gate: enabled={gated.enabled} significance={gated.significance:.1f}; "
          f"stripe index {forced.stripe_index_before:.2f} -> {forced.stripe_index_after:.2f} grey levels (filter on)")
    out = apply_curtains(stack.astype(np.float32), forced)
    for z in range(stack.shape[0]):
        before, after = stack[z].astype(np.float32), out[z]
        removed = before - after
        lim = max(float(np.quantile(np.abs(removed), 0.999)), 1.0)
        lo, hi = np.quantile(before, (0.005, 0.995))
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.6))
        for a, img, title in ((ax[0], before, "before"), (ax[1], after, "after (highpass destriper)")):
            a.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            a.set_title(title)
        im = ax[2].imshow(removed, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax[2].set_title("removed component (grey levels)")
        fig.colorbar(im, ax=ax[2], fraction=0.035)
        for a in ax:
            a.set_axis_off()
        fig.tight_layout()
        fig.savefig(HERE / f"zeiss_slice{z}_destripe.png", dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    main()
