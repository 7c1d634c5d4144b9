"""The run folder: atomic stage outputs, ``run.toml`` bookkeeping and resume.

A stage writes into a temporary sibling (``OUT/.tmp-<stage>-<pid>``) and its outputs are renamed
into place only when it succeeds, so an interrupted run never leaves a half-written result that
looks complete.  ``run.toml`` records, per stage, the effective parameters and whether the stage
completed; a re-run with the same parameters skips completed stages.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import tomllib
from contextlib import contextmanager
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import tomli_w

from volrecon.errors import OutputError

STAGES: tuple[str, ...] = ("assemble", "correct", "segment", "analyze", "report", "export")
"""Stage order: re-running a stage invalidates every later stage."""

SHARED_FOLDERS: tuple[str, ...] = ("figures", "tables", "corrections", "export")
"""Folders several stages write into: a stage owns the files it puts there, not the folder."""

RUN_FILE = "run.toml"
_TMP_PREFIX = ".tmp-"
_PACKAGES = ("volrecon", "numpy", "scipy", "dask", "distributed", "zarr", "ome-zarr", "tifffile", "scikit-image", "SimpleITK", "porespy")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = _metadata.version(pkg)
        except _metadata.PackageNotFoundError:
            continue
    return out


def toml_safe(value: Any) -> Any:
    """Convert to what TOML can hold: None dropped from tables, tuples to lists, paths to text."""
    if isinstance(value, Mapping):
        return {str(k): toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [toml_safe(v) for v in value if v is not None]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN
        return "nan"
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def _is_inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


class RunFolder:
    """A volrecon output folder (see DESIGN.md, "The run folder").

    Parameters
    ----------
    path : path-like
        The folder ``OUT``.
    source : str, optional
        What the run reads (recorded; a run folder holding another source is not reused).
    overwrite : bool
        Replace a previous run's outputs instead of refusing.
    input_paths : sequence of path-like
        Input folders/files: ``OUT`` must not lie inside them.

    Raises
    ------
    OutputError
        When ``OUT`` exists with other content, holds a run of another source without
        ``overwrite``, lies inside an input, or cannot be written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        source: str | None = None,
        overwrite: bool = False,
        input_paths: Sequence[str | Path] = (),
    ) -> None:
        self.path = Path(path)
        for inp in input_paths:
            inp = Path(inp)
            if inp.is_dir() and _is_inside(self.path, inp):
                raise OutputError(
                    f"-o {self.path}: the output lies inside the input folder {inp}; choose a folder outside it"
                )
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"-o {self.path}: exists and is a file; choose a folder name")
        run_file = self.path / RUN_FILE
        if self.path.is_dir() and any(self.path.iterdir()):
            if not run_file.is_file():
                raise OutputError(
                    f"-o {self.path}: the folder exists and is not a volrecon run (no {RUN_FILE}); "
                    "volrecon never deletes other files — choose a new or empty folder"
                )
            previous = self.read()
            previous_source = previous.get("source", {}).get("path")
            if overwrite:
                self._remove_outputs(previous)
            elif source is not None and previous_source not in (None, source):
                raise OutputError(
                    f"-o {self.path}: holds a run of {previous_source}; pass --overwrite to replace it "
                    "or choose another folder"
                )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f"{_TMP_PREFIX}probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError as exc:
            raise OutputError(f"-o {self.path}: cannot write there ({exc.strerror or exc}); choose a writable folder") from None
        self._clean_temporaries()
        data = self.read()
        data.setdefault("volrecon", {})
        data["volrecon"].setdefault("created", _now())
        data["versions"] = versions()
        if source is not None:
            data.setdefault("source", {})["path"] = source
        self.write(data)

    # ------------------------------------------------------------------ run.toml
    def read(self) -> dict[str, Any]:
        """Return the parsed ``run.toml`` (empty when absent)."""
        f = self.path / RUN_FILE
        if not f.is_file():
            return {}
        try:
            return tomllib.loads(f.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise OutputError(f"{f}: unreadable ({exc}); fix or delete it, or pass --overwrite") from None

    def write(self, data: Mapping[str, Any]) -> None:
        """Write ``run.toml`` atomically."""
        f = self.path / RUN_FILE
        tmp = f.with_name(f"{_TMP_PREFIX}{RUN_FILE}-{os.getpid()}")
        tmp.write_text(tomli_w.dumps(toml_safe(data)))
        os.replace(tmp, f)

    def update(self, section: str, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into table ``section`` of ``run.toml``."""
        data = self.read()
        data.setdefault(section, {}).update(toml_safe(values))
        self.write(data)

    # ------------------------------------------------------------------ stages
    def stage_done(self, name: str, params: Mapping[str, Any] | None = None) -> bool:
        """True when stage ``name`` completed with the same parameters and its outputs exist."""
        record = self.read().get("stages", {}).get(name, {})
        if not record.get("completed"):
            return False
        if params is not None and record.get("params", {}) != toml_safe(params):
            return False
        return all((self.path / o).exists() for o in record.get("outputs", []))

    @contextmanager
    def stage(
        self, name: str, params: Mapping[str, Any], outputs: Sequence[str] | None = None, *, in_place: Sequence[str] = ()
    ) -> Iterator[Path]:
        """Run a stage atomically.

        Yields a temporary folder; the stage writes each of ``outputs`` (paths relative to the
        run folder) inside it.  On success they are renamed into place and the stage is recorded
        as completed in ``run.toml``; on failure the temporary folder is removed and nothing
        that looked complete is left behind.  With ``outputs=None`` the outputs are whatever the
        stage wrote: each top-level entry, and each file inside the shared folders
        (``figures/``, ``tables/``, ``corrections/``, ``export/``).  ``in_place`` lists outputs
        the stage writes directly into the run folder by an atomic means of its own (label images
        inside ``image.ome.zarr``); they are recorded and checked on resume, not moved.
        """
        data = self.read()
        stages = data.setdefault("stages", {})
        order = list(STAGES)
        later = order[order.index(name) + 1:] if name in order else []
        for stage_name in [name, *later]:
            if stage_name in stages:
                stages[stage_name]["completed"] = False
        stages.setdefault(name, {})
        stages[name].update({"completed": False, "started": _now(), "params": toml_safe(params), "outputs": list(outputs or [])})
        self.write(data)
        tmp = self.path / f"{_TMP_PREFIX}{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            yield tmp
            if outputs is None:
                outputs = _discover_outputs(tmp)
            for rel in outputs:
                if not (tmp / rel).exists():
                    raise OutputError(f"stage {name!r} did not produce {rel}; this is a bug, please report it")
            for rel in outputs:
                final = self.path / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.exists():
                    old = self.path / f"{_TMP_PREFIX}old-{name}-{os.getpid()}-{final.name}"
                    os.replace(final, old)
                    os.replace(tmp / rel, final)
                    _remove(old)
                else:
                    os.replace(tmp / rel, final)
            for rel in in_place:
                if not (self.path / rel).exists():
                    raise OutputError(f"stage {name!r} did not produce {rel}; this is a bug, please report it")
            data = self.read()
            data.setdefault("stages", {}).setdefault(name, {}).update(
                {"completed": True, "finished": _now(), "outputs": [*outputs, *in_place]}
            )
            self.write(data)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ housekeeping
    def _clean_temporaries(self) -> None:
        for p in self.path.glob(f"{_TMP_PREFIX}*"):
            _remove(p)

    def _remove_outputs(self, previous: Mapping[str, Any]) -> None:
        for record in previous.get("stages", {}).values():
            for rel in record.get("outputs", []):
                target = self.path / rel
                if _is_inside(target, self.path) and target.exists():
                    _remove(target)
        (self.path / RUN_FILE).unlink(missing_ok=True)
        self._clean_temporaries()


def _discover_outputs(tmp: Path) -> list[str]:
    found: list[str] = []
    for entry in sorted(tmp.iterdir()):
        if entry.is_dir() and entry.name in SHARED_FOLDERS:
            found.extend(f"{entry.name}/{child.name}" for child in sorted(entry.iterdir()))
        else:
            found.append(entry.name)
    return found


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
