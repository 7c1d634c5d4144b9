"""Export volumes and phase surfaces to VTK files that ParaView opens, in physical units (nm).

- ``.vti``: the image (or labels) as vtkImageData with spacing = voxel size; VTK's x/y/z are
  volrecon's x/y/z (the array is written in VTK's x-fastest order).
- ``.vtp``: one closed surface per phase, extracted with discrete flying edges on the label
  image (optionally smoothed with a windowed-sinc filter and decimated by quadric clustering),
  made slab by slab along z and written as one VTK piece per slab.

Both are written by volrecon itself in VTK's XML format (appended, zlib-compressed blocks), slab
by slab, so that memory does not grow with the number of slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from volrecon.errors import OutputError, ParameterError


@dataclass(frozen=True)
class SurfaceInfo:
    """A written phase surface.

    Attributes
    ----------
    phase : str
        Phase name.
    path : Path
        The ``.vtp`` file.
    area_nm2 : float
        Surface area in nm².
    triangles : int
        Number of triangles.
    bounds_nm : tuple of 6 floats
        ``(xmin, xmax, ymin, ymax, zmin, zmax)`` in nm.
    """

    phase: str
    path: Path
    area_nm2: float
    triangles: int
    bounds_nm: tuple[float, float, float, float, float, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "path": str(self.path),
            "area_nm2": self.area_nm2,
            "triangles": self.triangles,
            "bounds_nm": list(self.bounds_nm),
        }


def _image_data(volume: np.ndarray, voxel_size_nm: Sequence[float], name: str):  # type: ignore[no-untyped-def]
    import vtk
    from vtkmodules.util import numpy_support

    vol = np.ascontiguousarray(volume)
    if vol.ndim != 3:
        raise ParameterError(f"VTK export needs a (z, y, x) volume, got {vol.ndim} dimensions")
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    image = vtk.vtkImageData()
    image.SetDimensions(vol.shape[2], vol.shape[1], vol.shape[0])
    image.SetSpacing(vx, vy, vz)
    image.SetOrigin(0.0, 0.0, 0.0)
    # no copy: the VTK array keeps a reference to the numpy buffer (a volume's worth less memory)
    scalars = numpy_support.numpy_to_vtk(vol.ravel(order="C"), deep=False)
    scalars.SetName(name)
    image.GetPointData().SetScalars(scalars)
    return image


def _xml_header(kind: str) -> str:
    return (f'<?xml version="1.0"?>\n<VTKFile type="{kind}" version="1.0" byte_order="LittleEndian" '
            'header_type="UInt64" compressor="vtkZLibDataCompressor">\n')


class _AppendedBlocks:
    """The raw appended-data section of a VTK XML file, written array by array to a scratch file.

    Each array is stored as VTK's zlib-compressed format: a UInt64 header (number of blocks,
    block size, size of a last partial block or 0, compressed size of each block) and the
    blocks.  Arrays are added piece by piece (``add``), so nothing but one piece is in memory.
    """

    def __init__(self, folder: Path) -> None:
        import tempfile

        try:
            self._file = tempfile.TemporaryFile(dir=folder, prefix=".vtk-appended-")  # noqa: SIM115 (closed by __exit__)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot write there ({exc.strerror}); check the folder is writable") from None
        self.size = 0

    def __enter__(self) -> _AppendedBlocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, parts: Iterator[np.ndarray], nbytes: int, block: int) -> int:
        """Append one array given as consecutive byte-chunks (``nbytes`` in all); returns its offset."""
        import zlib

        offset = self.size
        nblocks = max(1, -(-nbytes // block))
        header = np.zeros(3 + nblocks, np.uint64)
        header[:3] = nblocks, block, nbytes - (nblocks - 1) * block if nbytes % block else 0
        start = self._file.seek(0, 2)
        self._file.write(header.tobytes())
        pending, k = b"", 0
        for part in parts:
            data = memoryview(pending + np.ascontiguousarray(part).tobytes())
            pos = 0
            while len(data) - pos >= block:
                k = self._block(header, k, data[pos:pos + block], zlib)
                pos += block
            pending = bytes(data[pos:])
        if pending or k == 0:
            k = self._block(header, k, pending, zlib)
        end = self._file.seek(0, 2)
        self._file.seek(start)
        self._file.write(header.tobytes())
        self._file.seek(end)
        self.size = end
        return offset

    def _block(self, header: np.ndarray, k: int, data: bytes | memoryview, zlib: Any) -> int:
        packed = zlib.compress(data, 1)  # fast level: export time is dominated by compression otherwise
        header[3 + k] = len(packed)
        self._file.write(packed)
        return k + 1

    def copy_to(self, out: Any) -> None:
        import shutil

        self._file.seek(0)
        shutil.copyfileobj(self._file, out, 16 * 2**20)


_VTK_TYPES = {np.dtype(t): n for t, n in ((np.int8, "Int8"), (np.uint8, "UInt8"), (np.int16, "Int16"), (np.uint16, "UInt16"),
                                          (np.int32, "Int32"), (np.uint32, "UInt32"), (np.int64, "Int64"), (np.uint64, "UInt64"),
                                          (np.float32, "Float32"), (np.float64, "Float64"))}


def write_vti(volume: Any, path: str | Path, *, voxel_size_nm: Sequence[float], name: str = "image",
              slab_voxels: int = 8_000_000) -> Path:
    """Write a ``(z, y, x)`` array as a compressed ``.vti`` with physical spacing in nm.

    ``volume`` may be numpy or dask; it is read and compressed slab by slab along z (VTK's x/y/z
    are volrecon's x/y/z, so the z slabs are consecutive in VTK's x-fastest order), so memory
    does not grow with the number of slices.
    """
    path = Path(path)
    if len(volume.shape) != 3:
        raise ParameterError(f"VTK export needs a (z, y, x) volume, got {len(volume.shape)} dimensions")
    dtype = np.dtype(volume.dtype).newbyteorder("=")  # the slabs are written little-endian whatever the input's order
    if dtype not in _VTK_TYPES:
        raise ParameterError(f"VTK export: dtype {dtype} is not supported; convert to an integer or float type")
    nz, ny, nx = (int(n) for n in volume.shape)
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    step = max(1, slab_voxels // max(1, ny * nx))
    lo, hi = [np.inf], [-np.inf]
    extent = f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"

    def head_of(vmin: float, vmax: float) -> str:
        return (_xml_header("ImageData")
                + f'  <ImageData WholeExtent="{extent}" Origin="0 0 0" Spacing="{vx!r} {vy!r} {vz!r}" '
                  'Direction="1 0 0 0 1 0 0 0 1">\n'
                + f'    <Piece Extent="{extent}">\n      <PointData Scalars="{name}">\n'
                + f'        <DataArray type="{_VTK_TYPES[dtype]}" Name="{name}" format="appended" '
                  f'RangeMin="{vmin!r}" RangeMax="{vmax!r}" offset="0"/>\n'
                + "      </PointData>\n      <CellData>\n      </CellData>\n    </Piece>\n  </ImageData>\n")

    def slabs() -> Iterator[np.ndarray]:
        for z0 in range(0, nz, step):
            part = np.asarray(volume[z0:z0 + step])
            if part.size:
                lo[0], hi[0] = min(lo[0], float(part.min())), max(hi[0], float(part.max()))
            yield part.astype(dtype.newbyteorder("<"), copy=False)

    with _AppendedBlocks(path.parent) as blocks:
        blocks.add(slabs(), nz * ny * nx * dtype.itemsize, max(dtype.itemsize, min(2**20, ny * nx * dtype.itemsize)))
        _write_xml(path, head_of(lo[0], hi[0]), blocks)
    return path


def _cluster_spacing(voxel_size_nm: Sequence[float], decimate: float) -> tuple[float, float, float]:
    """Cluster cell (x, y, z) of the decimation: triangles per area go as 1 / cell area, so
    keeping ``1 - decimate`` of them takes cells ``1 / sqrt(1 - decimate)`` voxels wide."""
    f = 1.0 / np.sqrt(1.0 - decimate)
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    return (vx * f, vy * f, vz * f)


def _contour(mask: np.ndarray, origin: Sequence[float], voxel_size_nm: Sequence[float], smooth_iterations: int,
             decimate: float):  # type: ignore[no-untyped-def]
    """Flying edges on a 0/1 mask placed at ``origin`` (x, y, z nm), smoothed and decimated."""
    import vtk

    image = _image_data(mask, voxel_size_nm, "mask")
    image.SetOrigin(*origin)
    fe = vtk.vtkDiscreteFlyingEdges3D()
    fe.SetInputData(image)
    fe.SetValue(0, 1)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.Update()
    surface = fe.GetOutput()
    if smooth_iterations > 0 and surface.GetNumberOfCells():
        sm = vtk.vtkWindowedSincPolyDataFilter()
        sm.SetInputData(surface)
        sm.SetNumberOfIterations(smooth_iterations)
        sm.BoundarySmoothingOff()
        sm.NonManifoldSmoothingOn()
        # in nm, not normalised to the piece's bounds: the same vertex then gets the same
        # coordinates, to the bit, in every slab that holds it (the slabs' seams match exactly)
        sm.NormalizeCoordinatesOff()
        sm.SetPassBand(0.1)
        sm.Update()
        surface = sm.GetOutput()
    if decimate > 0 and surface.GetNumberOfCells():
        # quadric clustering on one grid fixed in space (not DecimatePro: ~10x the CPU for the
        # same area): a cell's vertex depends only on the triangles in and around it, so a
        # piece of the volume gives the same triangles as the whole wherever its margin suffices
        vz, vy, vx = (float(v) for v in voxel_size_nm)
        qc = vtk.vtkQuadricClustering()
        qc.SetInputData(surface)
        qc.AutoAdjustNumberOfDivisionsOff()
        qc.SetDivisionOrigin(-2.0 * vx, -2.0 * vy, -2.0 * vz)
        qc.SetDivisionSpacing(*_cluster_spacing(voxel_size_nm, decimate))
        qc.UseInputPointsOn()
        qc.Update()
        surface = qc.GetOutput()
    return surface


def _check_decimate(decimate: float) -> None:
    if not 0.0 <= decimate < 0.96:
        raise ParameterError(f"decimate={decimate}: give a fraction between 0 and 0.95")


def phase_surface(
    labels: np.ndarray,
    value: int,
    *,
    voxel_size_nm: Sequence[float],
    smooth_iterations: int = 0,
    decimate: float = 0.0,
):  # type: ignore[no-untyped-def]
    """The boundary surface of ``labels == value`` as vtkPolyData (nm), closed at the volume edge.

    Parameters
    ----------
    labels : ndarray
        Integer labels ``(z, y, x)``.
    value : int
        Label value of the phase.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_iterations : int
        Windowed-sinc smoothing iterations (0: none; the voxel staircase is kept).
    decimate : float
        About this fraction of the triangles is removed (0–0.95): an approximate fraction, by
        quadric clustering on cells ``1 / sqrt(1 - decimate)`` voxels wide (the triangle count
        goes as the inverse cell area; the count written is reported, not guaranteed).

    Returns
    -------
    vtkPolyData
        The triangulated surface, points in nm (VTK's x, y, z).
    """
    _check_decimate(decimate)
    labels = np.asarray(labels)
    # pad with background so the surface closes where the phase touches the volume's faces
    mask = np.zeros(tuple(n + 2 for n in labels.shape), np.uint8)
    np.equal(labels, value, out=mask[1:-1, 1:-1, 1:-1].view(np.bool_))
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    return _contour(mask, (-vx, -vy, -vz), voxel_size_nm, smooth_iterations, decimate)


def _triangles(surface) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Points (n, 3) float32 and triangles (m, 3) int64 of a triangulated vtkPolyData."""
    from vtkmodules.util import numpy_support

    if surface.GetNumberOfCells() == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    pts = numpy_support.vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float32, copy=False)
    conn = numpy_support.vtk_to_numpy(surface.GetPolys().GetConnectivityArray()).astype(np.int64, copy=False)
    return pts, conn.reshape(-1, 3)


def surface_pieces(labels: Any, value: int, *, voxel_size_nm: Sequence[float], smooth_iterations: int = 0,
                   decimate: float = 0.0, slab_voxels: int = 8_000_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`phase_surface` made block by block.

    The volume is cut into blocks of about ``slab_voxels`` voxels (z, y and x alike, so a large
    slice is cut too); each is read with a margin of voxels on every inner side (the reach of
    the smoothing and of the clustering cells) and keeps the triangles whose centroid lies in
    its own voxels (the boundaries half-way between two voxel centres).  The pieces together are
    the whole-volume surface: the same triangles, with the vertices on block boundaries repeated
    in the pieces that share them.  Memory holds one block and its surface, whatever the size of
    the volume; a block's own voxels are at least two margins wide along each cut axis, so the
    margins at most double the work per axis.

    Parameters
    ----------
    labels : ndarray or dask array
        Integer labels ``(z, y, x)``, read one block (and its margin) at a time.
    value : int
        Label value of the phase.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_iterations, decimate
        As in :func:`phase_surface` (``decimate`` is an approximate fraction).
    slab_voxels : int
        Voxels of a block's own part (before its margins).

    Yields
    ------
    points : ndarray (n, 3) float32
        The block's vertices, ``(x, y, z)`` in nm.
    triangles : ndarray (m, 3) int64
        Vertex indices into ``points``; blocks without triangles are skipped.
    """
    _check_decimate(decimate)
    shape = tuple(int(n) for n in labels.shape)
    vs = [float(v) for v in voxel_size_nm]
    cells = int(np.ceil(_cluster_spacing(voxel_size_nm, decimate)[2] / vs[0])) if decimate > 0 else 0
    margin = smooth_iterations + 2 * cells + 2
    edge = max(2 * margin, round(slab_voxels ** (1 / 3)) - 2 * margin)
    starts = [range(0, n, edge) for n in shape]
    for z0 in starts[0]:
        for y0 in starts[1]:
            for x0 in starts[2]:
                core = [(o, min(n, o + edge)) for o, n in zip((z0, y0, x0), shape)]
                piece = _block_surface(labels, value, core, margin, vs, smooth_iterations, decimate)
                if piece is not None:
                    yield piece


def _block_surface(labels: Any, value: int, core: list[tuple[int, int]], margin: int, vs: list[float],
                   smooth_iterations: int, decimate: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The triangles of one block of :func:`surface_pieces` (``None`` when there are none)."""
    shape = [int(n) for n in labels.shape]
    read = [(max(0, a - margin), min(n, b + margin)) for (a, b), n in zip(core, shape)]
    # pad with background where the block meets the volume's faces: the surface closes there
    pads = [(int(r0 == 0), int(r1 == n)) for (r0, r1), n in zip(read, shape)]
    mask = np.zeros(tuple(r1 - r0 + p0 + p1 for (r0, r1), (p0, p1) in zip(read, pads)), np.uint8)
    inner = tuple(slice(p0, p0 + r1 - r0) for (r0, r1), (p0, _) in zip(read, pads))
    np.equal(np.asarray(labels[tuple(slice(r0, r1) for r0, r1 in read)]), value, out=mask[inner].view(np.bool_))
    if not mask.any():
        return None
    origin = [(r0 - p0) * v for (r0, _), (p0, _), v in zip(read, pads, vs)]
    surface = _contour(mask, origin[::-1], vs, smooth_iterations, decimate)
    del mask
    pts, tri = _triangles(surface)
    keep = np.ones(len(tri), bool)
    for a in range(3):  # points are (x, y, z): axis a of the volume is column 2 - a
        c = pts[tri, 2 - a].astype(np.float64).mean(axis=1)
        (a0, a1), n = core[a], shape[a]
        if a0 > 0:
            keep &= c >= (a0 - 0.5) * vs[a]
        if a1 < n:
            keep &= c < (a1 - 0.5) * vs[a]
    if not keep.any():
        return None
    used, tri = np.unique(tri[keep], return_inverse=True)
    return pts[used], tri.reshape(-1, 3)


def _area(pts: np.ndarray, tri: np.ndarray) -> float:
    p = pts.astype(np.float64)
    return float(0.5 * np.linalg.norm(np.cross(p[tri[:, 1]] - p[tri[:, 0]], p[tri[:, 2]] - p[tri[:, 0]]), axis=1).sum())


def write_surface_pieces(pieces: Iterator[tuple[np.ndarray, np.ndarray]], path: str | Path) -> tuple[float, int, tuple[float, ...]]:
    """Write triangle pieces as one ``.vtp`` (one VTK piece each, zlib-compressed).

    Vertices on the seams between pieces are repeated in each piece that holds them (the
    triangles are not): ParaView's *Clean* filter merges them where one connected mesh is needed.

    Parameters
    ----------
    pieces : iterator of (points, triangles)
        As :func:`surface_pieces` yields them: points ``(n, 3)`` float32 (x, y, z nm) and
        triangles ``(m, 3)`` indices into them; pieces without triangles are skipped.
    path : path-like
        The ``.vtp`` file (its folder must exist).

    Returns
    -------
    area_nm2 : float
        Total triangle area.
    triangles : int
        Number of triangles written.
    bounds_nm : tuple of 6 floats
        ``(xmin, xmax, ymin, ymax, zmin, zmax)``; zeros when nothing was written.

    Raises
    ------
    OutputError
        The file or its scratch space cannot be written.
    """
    path = Path(path)
    rows, area, count = [], 0.0, 0
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    with _AppendedBlocks(path.parent) as blocks:
        for pts, tri in pieces:
            if not len(tri):
                continue
            area += _area(pts, tri)
            count += len(tri)
            lo, hi = np.minimum(lo, pts.min(axis=0)), np.maximum(hi, pts.max(axis=0))
            offsets = np.arange(3, 3 * len(tri) + 1, 3, dtype=np.int64)
            at = [blocks.add(iter([a]), a.nbytes, 2**20) for a in (pts.astype("<f4"), tri.astype("<i8").ravel(), offsets)]
            rows.append(f'    <Piece NumberOfPoints="{len(pts)}" NumberOfVerts="0" NumberOfLines="0" NumberOfStrips="0" '
                        f'NumberOfPolys="{len(tri)}">\n'
                        f'      <Points>\n        <DataArray type="Float32" Name="Points" NumberOfComponents="3" '
                        f'format="appended" offset="{at[0]}"/>\n      </Points>\n'
                        f'      <Polys>\n        <DataArray type="Int64" Name="connectivity" format="appended" offset="{at[1]}"/>\n'
                        f'        <DataArray type="Int64" Name="offsets" format="appended" offset="{at[2]}"/>\n      </Polys>\n'
                        "    </Piece>\n")
        if not rows:
            rows.append('    <Piece NumberOfPoints="0" NumberOfVerts="0" NumberOfLines="0" NumberOfStrips="0" NumberOfPolys="0"/>\n')
            lo = hi = np.zeros(3)
        _write_xml(path, _xml_header("PolyData") + "  <PolyData>\n" + "".join(rows) + "  </PolyData>\n", blocks)
    return area, count, tuple(float(v) for pair in zip(lo, hi) for v in pair)


def _write_xml(path: Path, head: str, blocks: _AppendedBlocks) -> None:
    """The XML ``head`` (up to the appended data), the appended blocks and the closing tags."""
    try:
        with path.open("wb") as out:
            out.write((head + '  <AppendedData encoding="raw">\n   _').encode())
            blocks.copy_to(out)
            out.write(b"\n  </AppendedData>\n</VTKFile>\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the file ({exc.strerror}); check the folder is writable") from None


def surface_area_nm2(surface) -> float:  # type: ignore[no-untyped-def]
    """Total area of a triangulated vtkPolyData."""
    import vtk

    if surface.GetNumberOfCells() == 0:
        return 0.0
    mass = vtk.vtkMassProperties()
    tri = vtk.vtkTriangleFilter()
    tri.SetInputData(surface)
    tri.Update()
    mass.SetInputData(tri.GetOutput())
    mass.Update()
    return float(mass.GetSurfaceArea())


def phases_present(labels: Any, slab_voxels: int = 16_000_000) -> set[int]:
    """Label values present in a numpy or dask volume, read slab by slab along z.

    Parameters
    ----------
    labels : ndarray or dask array
        Integer labels ``(z, y, x)``.
    slab_voxels : int
        Voxels read at a time (whole slices, at least one).

    Returns
    -------
    set of int
        The distinct label values.
    """
    step = max(1, slab_voxels // max(1, int(np.prod(labels.shape[1:]))))
    found: set[int] = set()
    for z0 in range(0, int(labels.shape[0]), step):
        found |= set(np.unique(np.asarray(labels[z0:z0 + step])).tolist())
    return found


def write_phase_surfaces(
    labels: Any,
    folder: str | Path,
    *,
    phase_names: Mapping[str, int],
    voxel_size_nm: Sequence[float],
    smooth_iterations: int = 0,
    decimate: float = 0.0,
    skip: Sequence[str] = ("frame",),
    workers: int | None = None,
    slab_voxels: int = 8_000_000,
) -> list[SurfaceInfo]:
    """Write one ``<phase>.vtp`` per phase present in ``labels``.

    Parameters
    ----------
    labels : ndarray or dask array
        Integer labels ``(z, y, x)``; read block by block (:func:`surface_pieces`), so memory
        does not grow with the volume.
    folder : path-like
        Where the ``.vtp`` files go.
    phase_names : mapping
        Phase name -> label value.
    voxel_size_nm : 3 floats
        ``(z, y, x)`` voxel size.
    smooth_iterations : int
        As in :func:`phase_surface`.
    decimate : float
        About this fraction of the triangles is removed (0–0.95): approximate, by quadric
        clustering (:func:`phase_surface`); each file's true count is in its SurfaceInfo.
        Surfaces are written in pieces (:func:`surface_pieces`) whose seam vertices are
        repeated; ParaView's *Clean* filter merges them.
    skip : sequence of str
        Phases not written.
    workers : int, optional
        Phases extracted side by side (VTK's filters release the GIL); default 2, at most the
        number of CPUs.  Each worker holds one block of one phase and its surface.
    slab_voxels : int
        Voxels of a block (margins included; about 40 bytes each are held while it is contoured).

    Returns
    -------
    list of SurfaceInfo
        Area (nm²), triangle count and bounds of each written surface, in ``phase_names`` order.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    present = phases_present(labels, slab_voxels)
    wanted = [(name, int(v)) for name, v in phase_names.items() if name not in skip and int(v) in present]

    def one(name: str, value: int) -> SurfaceInfo:
        path = folder / f"{name}.vtp"
        pieces = surface_pieces(labels, value, voxel_size_nm=voxel_size_nm, smooth_iterations=smooth_iterations,
                                decimate=decimate, slab_voxels=slab_voxels)
        area, count, bounds = write_surface_pieces(pieces, path)
        return SurfaceInfo(name, path, area, count, bounds)  # type: ignore[arg-type]

    n = max(1, min(len(wanted), workers or min(2, os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda job: one(*job), wanted))
