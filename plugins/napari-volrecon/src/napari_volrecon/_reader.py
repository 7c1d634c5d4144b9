"""Reader: a volrecon run folder (``image.ome.zarr`` + ``run.toml``) or an NGFF volume with its labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import zarr

from napari_volrecon._layers import LayerDataTuple, image_layer, labels_layer


def image_path_of(path: str | Path) -> Path | None:
    """The OME-Zarr image behind ``path`` (a run folder or the image itself), or None if not ours."""
    p = Path(path)
    if (p / "run.toml").is_file() and (p / "image.ome.zarr").is_dir():
        return p / "image.ome.zarr"
    if p.is_dir() and ((p / "zarr.json").is_file() or (p / ".zattrs").is_file()):
        try:
            attrs = zarr.open_group(str(p), mode="r").attrs.asdict()
        except Exception:  # not a zarr group napari-volrecon can read: let other readers try
            return None
        ome = attrs.get("ome", attrs)
        if "multiscales" in ome and "image-label" not in ome:
            return p
    return None


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerDataTuple]] | None:
    """npe2 reader hook: claim run folders and OME-Zarr images, leave everything else alone."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_volume if image_path_of(path) is not None else None


def _label_colours(group_path: Path) -> dict[str, str]:
    attrs = zarr.open_group(str(group_path), mode="r").attrs.asdict()
    label_meta = attrs.get("ome", attrs).get("image-label") or {}
    by_value = {int(c["label-value"]): c["rgba"] for c in label_meta.get("colors") or []}
    names = {int(p["label-value"]): str(p["name"]) for p in label_meta.get("properties") or [] if "name" in p}
    return {names[v]: "#{:02x}{:02x}{:02x}".format(*rgba[:3]) for v, rgba in by_value.items() if v in names}


def read_volume(path: str | list[str]) -> list[LayerDataTuple]:
    """Layers of a volrecon volume: the image (lazy, multiscale) and each label image, named.

    Nothing is loaded but the coarsest level (for grey limits); napari reads the rest as shown.
    """
    from volrecon.io.omezarr import read_label_names, read_ome_zarr

    if isinstance(path, list):
        path = path[0]
    image_path = image_path_of(path)
    if image_path is None:
        raise ValueError(f"{path}: not a volrecon run folder or OME-Zarr image")
    img = read_ome_zarr(image_path)
    title = Path(path).name.removesuffix(".ome.zarr")
    multiscale = len(img.levels) > 1
    data = list(img.levels) if multiscale else img.levels[0]
    layers = [image_layer(data, name=title, voxel_size_nm=img.voxel_size_nm[0], multiscale=multiscale)]
    labels_dir = image_path / "labels"
    listed = zarr.open_group(str(labels_dir), mode="r").attrs.asdict() if labels_dir.is_dir() else {}
    for name in listed.get("ome", listed).get("labels", []):
        lab = read_ome_zarr(labels_dir / name)
        many = len(lab.levels) > 1
        layers.append(labels_layer(
            list(lab.levels) if many else lab.levels[0], name=name, voxel_size_nm=lab.voxel_size_nm[0],
            names=read_label_names(labels_dir / name), colours=_label_colours(labels_dir / name) or None, multiscale=many,
        ))
    return layers
