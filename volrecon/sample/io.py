"""Writing phantoms to disk: TIFF slices with instrument metadata and a ``truth/`` folder.

Layout of a phantom folder::

    slice_00000.tif ...        8-bit slices (16-bit when quantisation is off), vendor metadata tag
    truth/truth.json           every true figure (see volrecon.sample.truth) and all parameters
    truth/truth.zarr/          zarr v3 group: labels (uint8), regions (uint8), clean (float16, 0-1)
                               chunked one slice per chunk, axes (z, y, x), voxel size in attrs
    truth/drift.csv            slice,dy,dx  (scipy.ndimage.shift sense: applied to slice -> registered)
    truth/brightness.csv       slice,gain,offset
    truth/shading.npy          (Y, X) float32 multiplicative field
    truth/curtains.csv         slice,stripe,amplitude (stripe geometry in truth.json)
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tifffile

from volrecon.errors import OutputError
from volrecon.phases import PHASES, REGIONS
from volrecon.sample.metadata import SliceInfo, Vendor, extratags
from volrecon.sample.phantom import Phantom, accumulate, finish, plan_phantom
from volrecon.sample.render import iter_slices
from volrecon.sample.truth import TruthAccumulator


def slice_name(index: int, z_nm: float | None = None) -> str:
    """File name of slice ``index`` (``slice_00012.tif`` or ``slice_00012_z=0.2400um.tif``)."""
    if z_nm is None:
        return f"slice_{index:05d}.tif"
    return f"slice_{index:05d}_z={z_nm / 1000:.4f}um.tif"


class _Writer:
    """Streams slices into a phantom folder."""

    def __init__(self, root: Path, *, shape: tuple[int, int], slices: int, info: dict[str, Any],
                 vendor: Vendor, name_with_z: bool, voxel_nm: tuple[float, float, float],
                 write_clean: bool = True) -> None:
        import zarr

        self.root, self.vendor, self.name_with_z, self.info = root, vendor, name_with_z, info
        self.voxel_nm = voxel_nm
        (root / "truth").mkdir(parents=True, exist_ok=True)
        self.group = zarr.open_group(str(root / "truth" / "truth.zarr"), mode="w")
        h, w = shape
        attrs = {
            "axes": ["z", "y", "x"], "unit": "nanometer",
            "voxel_size_nm": {"z": voxel_nm[0], "y": voxel_nm[1], "x": voxel_nm[2]},
        }
        self.labels = self.group.create_array("labels", shape=(slices, h, w), chunks=(1, h, w), dtype="uint8")
        self.labels.attrs.update({**attrs, "values": dict(PHASES)})
        self.regions = self.group.create_array("regions", shape=(slices, h, w), chunks=(1, h, w), dtype="uint8")
        self.regions.attrs.update({**attrs, "values": dict(REGIONS)})
        self.clean = None
        if write_clean:
            self.clean = self.group.create_array("clean", shape=(slices, h, w), chunks=(1, h, w), dtype="float16")
            self.clean.attrs.update({**attrs, "range": [0.0, 1.0], "frame": "undrifted (specimen)"})
        self.names: list[str] = []

    def add(self, k: int, *, acquired: np.ndarray, labels: np.ndarray, regions: np.ndarray, clean: np.ndarray) -> None:
        z_nm = k * self.voxel_nm[0] if self.name_with_z else None
        name = slice_name(k, z_nm)
        info = SliceInfo(index=k, **self.info)
        data = acquired
        if data.dtype != np.uint8:
            data = np.clip(np.rint(data.astype(np.float32) * 257.0), 0, 65535).astype(np.uint16)
        tifffile.imwrite(
            self.root / name, data, photometric="minisblack", metadata=None,
            extratags=extratags(self.vendor, info),
        )
        self.labels[k] = labels
        self.regions[k] = regions
        if self.clean is not None:
            self.clean[k] = clean.astype(np.float16)
        self.names.append(name)

    def close(self, ph: Phantom) -> None:
        t = self.root / "truth"
        truth = dict(ph.truth)
        truth["files"] = {"slices": self.names, "vendor": self.vendor, "truth_zarr": "truth.zarr"}
        (t / "truth.json").write_text(json.dumps(truth, indent=2, default=_json_default))
        _csv(t / "drift.csv", "slice,dy,dx", ph.drift)
        _csv(t / "brightness.csv", "slice,gain,offset", ph.brightness)
        np.save(t / "shading.npy", ph.shading.astype(np.float32))
        amp = ph.curtains.get("amplitude")
        with open(t / "curtains.csv", "w") as f:
            f.write("slice,stripe,amplitude\n")
            if amp is not None and amp.size:
                for k, j in zip(*np.nonzero(amp)):
                    f.write(f"{k},{j},{amp[k, j]:.6g}\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _csv(path: Path, header: str, rows: np.ndarray) -> None:
    with open(path, "w") as f:
        f.write(header + "\n")
        for k, r in enumerate(rows):
            f.write(f"{k}," + ",".join(f"{v:.6f}" for v in r) + "\n")


def _slice_info(ph_truth: dict[str, Any]) -> dict[str, Any]:
    cal = ph_truth["calibration"]
    gen = ph_truth["generator"]
    return dict(
        slices=gen["slices"], width=gen["shape"][1], height=gen["shape"][0],
        databar_rows=ph_truth["acquisition"]["databar_rows"], pixel_x_nm=cal["recorded_pixel_size_nm"]["x"],
        pixel_y_nm=cal["recorded_pixel_size_nm"]["y"], slice_nm=cal["slice_thickness_nm"],
        tilt_deg=cal["tilt_deg"], tilt_corrected=cal["tilt_corrected_by_instrument"],
    )


def _prepare(out_dir: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another -o/--out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) or choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return out, tmp


def _commit(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def write_phantom(
    ph: Phantom, out_dir: str | os.PathLike, *, vendor: Vendor = "thermo", name_with_z: bool = False,
    overwrite: bool = False, write_clean: bool = True,
) -> Path:
    """Write a phantom held in memory: TIFF slices with metadata and the ``truth/`` folder.

    Parameters
    ----------
    ph : Phantom
        From :func:`make_phantom`.
    out_dir : path
        Folder to create (refused when it exists and is not empty, unless ``overwrite``).
    vendor : {"thermo", "zeiss"}
        Metadata layout: Thermo/FEI INI tag 34682 or Zeiss CZ_SEM tag 34118.
    name_with_z : bool
        Name slices ``slice_00012_z=0.2400um.tif`` (depth in the name) instead of ``slice_00012.tif``.
    overwrite : bool
        Replace an existing folder.
    write_clean : bool
        Store the ideal image (``truth.zarr/clean``, float16); off saves space.

    Returns
    -------
    Path
        The folder written (atomically: a temporary sibling renamed at the end).
    """
    out, tmp = _prepare(out_dir, overwrite)
    try:
        z, h, w = ph.labels.shape
        writer = _Writer(tmp, shape=(h, w), slices=z, info=_slice_info(ph.truth), vendor=vendor,
                         name_with_z=name_with_z, voxel_nm=ph.voxel_size_nm, write_clean=write_clean)
        for k in range(z):
            writer.add(k, acquired=np.asarray(ph.acquired[k]), labels=np.asarray(ph.labels[k]),
                       regions=np.asarray(ph.regions[k]), clean=np.asarray(ph.clean[k]))
        writer.close(ph)
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def generate(
    preset: str, out_dir: str | os.PathLike, *, slices: int = 64, shape: tuple[int, int] | str = (512, 512),
    seed: int = 0, frame: bool = False, artefacts: Any = None, overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None, vendor: Vendor = "thermo", name_with_z: bool = False,
    voxel_size_nm: tuple[float, float, float] = (20.0, 10.0, 10.0), cycles: float | None = None,
    workers: int | None = None, write_clean: bool = True, **specimen: Any,
) -> Phantom:
    """Generate a phantom straight to disk, slice by slice (memory bounded); what ``volrecon sample`` runs.

    Parameters are those of :func:`make_phantom` and :func:`write_phantom`.  The folder is
    written to a temporary sibling and renamed when complete.

    Returns
    -------
    Phantom
        With lazy (dask) ``labels``, ``regions``, ``clean`` and ``acquired`` read from the folder.

    Raises
    ------
    OutputError
        ``out_dir`` exists and is not empty and ``overwrite`` is False.
    """
    out, tmp = _prepare(out_dir, overwrite)
    try:
        plan = plan_phantom(preset, slices=slices, shape=shape, seed=seed, voxel_size_nm=voxel_size_nm,
                            cycles=cycles, frame=frame, artefacts=artefacts, **specimen)
        acc = TruthAccumulator(plan.slices, plan.voxel_nm)
        writer = _Writer(tmp, shape=plan.shape, slices=plan.slices, info=_plan_info(plan), vendor=vendor,
                         name_with_z=name_with_z, voxel_nm=plan.voxel_nm, write_clean=write_clean)
        for s in iter_slices(plan, workers=workers, progress=progress):
            accumulate(acc, plan, s)
            writer.add(s.index, acquired=s.acquired, labels=s.labels, regions=s.regions, clean=s.clean)
        ph = finish(plan, acc, labels=None, regions=None, clean=None, acquired=None)
        writer.close(ph)
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lazy = load_truth(out, lazy=True)
    ph.labels, ph.regions, ph.clean, ph.acquired = lazy["labels"], lazy["regions"], lazy["clean"], lazy["acquired"]
    return ph


def _plan_info(plan: Any) -> dict[str, Any]:
    art = plan.art
    return dict(
        slices=plan.slices, width=plan.shape[1], height=plan.shape[0], databar_rows=plan.databar_rows,
        pixel_x_nm=plan.recorded_pixel_nm[1], pixel_y_nm=plan.recorded_pixel_nm[0], slice_nm=plan.voxel_nm[0],
        tilt_deg=art.tilt_deg, tilt_corrected=not art.foreshortening,
    )


def load_truth(folder: str | os.PathLike, *, lazy: bool = False) -> dict[str, Any]:
    """Read a phantom folder's ground truth (and its slices).

    Returns
    -------
    dict
        ``truth`` (truth.json), ``labels``, ``regions``, ``clean`` (float32; None when not
        written), ``acquired``
        (from the TIFFs), ``drift`` (Z, 2), ``brightness`` (Z, 2), ``shading`` (Y, X);
        arrays are dask arrays when ``lazy``.
    """
    import zarr

    root = Path(folder)
    t = root / "truth"
    truth = json.loads((t / "truth.json").read_text())
    group = zarr.open_group(str(t / "truth.zarr"), mode="r")
    names = truth.get("files", {}).get("slices") or sorted(p.name for p in root.glob("slice_*.tif"))
    files = [root / n for n in names]
    if lazy:
        import dask
        import dask.array as da

        first = tifffile.imread(files[0])
        acquired = da.stack(
            [da.from_delayed(dask.delayed(tifffile.imread)(f), first.shape, first.dtype) for f in files]
        )
        labels = da.from_zarr(group["labels"])
        regions = da.from_zarr(group["regions"])
        clean = da.from_zarr(group["clean"]).astype(np.float32) if "clean" in group else None
    else:
        acquired = np.stack([tifffile.imread(f) for f in files])
        labels, regions = group["labels"][...], group["regions"][...]
        clean = group["clean"][...].astype(np.float32) if "clean" in group else None
    return {
        "truth": truth, "labels": labels, "regions": regions, "clean": clean, "acquired": acquired,
        "drift": np.loadtxt(t / "drift.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1:],
        "brightness": np.loadtxt(t / "brightness.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1:],
        "shading": np.load(t / "shading.npy"),
    }
