"""Layer data tuples for volrecon volumes: physical scale, phase names and colours."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from volrecon.phases import PHASE_COLOURS, PHASES, REGION_COLOURS, REGIONS

LayerDataTuple = tuple[Any, dict[str, Any], str]


def image_layer(data: Any, *, name: str, voxel_size_nm: Sequence[float], multiscale: bool = False) -> LayerDataTuple:
    """An image layer in nm (z, y, x), grey limits from the coarsest level so nothing big is read.

    Parameters
    ----------
    data : array or list of arrays
        The volume, or its resolution levels (full resolution first) when ``multiscale``.
    name : str
        Layer name.
    voxel_size_nm : 3 floats
        Full-resolution voxel size.
    multiscale : bool
        ``data`` is a list of levels.
    """
    coarse = data[-1] if multiscale else data
    lo, hi = np.percentile(np.asarray(coarse[:: max(1, coarse.shape[0] // 16)]), (0.5, 99.5))
    if hi <= lo:
        hi = lo + 1.0
    meta = {
        "name": name, "scale": tuple(float(v) for v in voxel_size_nm), "units": "nm",
        "multiscale": multiscale, "contrast_limits": (float(lo), float(hi)), "colormap": "gray",
    }
    return (data, meta, "image")


def labels_layer(
    data: Any, *, name: str, voxel_size_nm: Sequence[float], names: Mapping[str, int],
    colours: Mapping[str, str] | None = None, multiscale: bool = False,
) -> LayerDataTuple:
    """A labels layer whose values carry their phase (or region) names and colours.

    The names are the layer's ``features`` (napari shows them under the cursor); the colours
    come from ``colours`` by name, falling back to volrecon's own phase and region colours.
    """
    from napari.utils.colormaps import DirectLabelColormap

    if colours is not None:
        palette = dict(colours)
    else:  # a region image names only regions; "separator", "collector", "frame" are in both vocabularies
        palette = dict(REGION_COLOURS if set(names) <= set(REGIONS) else PHASE_COLOURS)
    colour_dict: dict[Any, Any] = {None: "transparent", 0: "transparent"}
    for label, value in names.items():
        colour_dict[int(value)] = palette.get(label, "magenta")
    ordered = sorted(names.items(), key=lambda kv: kv[1])
    features = {"index": [0] + [int(v) for _, v in ordered], name: ["unassigned"] + [k for k, _ in ordered]}
    meta = {
        "name": name, "scale": tuple(float(v) for v in voxel_size_nm), "units": "nm", "multiscale": multiscale,
        "features": features, "colormap": DirectLabelColormap(color_dict=colour_dict), "opacity": 0.5,
    }
    return (data, meta, "labels")


def names_from_features(features: Any) -> dict[str, int]:
    """Name -> value from a labels layer's features table as :func:`labels_layer` writes it ({} if none)."""
    if features is None or len(features) == 0 or "index" not in features:
        return {}
    columns = [c for c in features.columns if c != "index"]
    if not columns:
        return {}
    return {str(n): int(v) for v, n in zip(features["index"], features[columns[0]]) if int(v) != 0}


def layer_names(layer: Any) -> dict[str, int]:
    """Name -> value of a labels layer made by :func:`labels_layer` (or volrecon's phases if it has none)."""
    return names_from_features(getattr(layer, "features", None)) or dict(PHASES)


def voxel_size_of(layer: Any) -> tuple[float, float, float]:
    """The layer's (z, y, x) scale, taken as nm (volrecon layers are in nm)."""
    scale = tuple(float(s) for s in layer.scale[-3:])
    if len(scale) != 3:
        raise ValueError(f"layer {layer.name!r} is not a 3D volume; volrecon works on (z, y, x) stacks")
    return scale  # type: ignore[return-value]
