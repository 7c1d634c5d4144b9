"""Sample data: small phantom cells with their true phases and layers."""

from __future__ import annotations

from napari_volrecon._layers import LayerDataTuple, image_layer, labels_layer


def _sample(preset: str) -> list[LayerDataTuple]:
    from volrecon.phases import PHASES, REGIONS
    from volrecon.sample import Artefacts, make_phantom

    ph = make_phantom(preset, slices=24, shape=(256, 256), frame=True, artefacts=Artefacts(drift=False), seed=0)
    # no drift, so the true labels lie on the raw image (every other artefact is on)
    vox = ph.voxel_size_nm
    return [
        image_layer(ph.acquired, name=f"{preset} phantom (raw)", voxel_size_nm=vox),
        labels_layer(ph.labels, name="phases (truth)", voxel_size_nm=vox, names=PHASES),
        labels_layer(ph.regions, name="regions (truth)", voxel_size_nm=vox, names=REGIONS),
    ]


def sample_diglyme() -> list[LayerDataTuple]:
    """A 24-slice phantom Na full cell with diglyme electrolyte: thin SEI, many cathode voids."""
    return _sample("diglyme")


def sample_carbonate() -> list[LayerDataTuple]:
    """A 24-slice phantom Na full cell with carbonate electrolyte: thick SEI, few cathode voids."""
    return _sample("carbonate")
