"""The allocator setting of :mod:`volrecon._memory`: how many arenas glibc's threads allocate
from, with and without :func:`volrecon._memory.bound_heap`; nothing elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from volrecon import _memory

# In a fresh interpreter (the arena limit only acts before threads have made their own arenas):
# threads allocate and free arrays, then glibc's malloc_info lists the arenas ("<heap nr=...>").
PROBE = """
import ctypes, json, os, sys, tempfile, threading
import numpy as np
from volrecon import _memory

applied = _memory.bound_heap() if sys.argv[1] == "bound" else False

def work():
    for _ in range(20):
        del [np.ones(100_000, np.uint8) for _ in range(20)][:]

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lib = _memory._glibc()
lib.fdopen.restype = ctypes.c_void_p
lib.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
lib.fclose.argtypes = [ctypes.c_void_p]
with tempfile.TemporaryFile() as f:
    stream = lib.fdopen(os.dup(f.fileno()), b"w")
    lib.malloc_info(0, stream)
    lib.fclose(stream)
    f.seek(0)
    heaps = f.read().decode().count("<heap nr=")
print(json.dumps({"applied": applied, "arenas": heaps}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(_memory._glibc() is None, reason="glibc only")
@pytest.mark.skipif(_memory._user_set_arenas(os.environ), reason="the environment sets the arena limit itself")
def test_bound_heap_shares_one_arena():
    """Without the setting the threads allocate from arenas of their own (the memory one frees is
    kept for it alone); with it every thread allocates from the one arena."""
    plain = _probe("plain")
    assert plain["applied"] is False and plain["arenas"] > 1, plain
    assert _probe("bound") == {"applied": True, "arenas": _memory.ARENA_MAX}


def test_no_glibc_is_a_no_op(monkeypatch):
    """Elsewhere (no glibc) neither call changes anything or fails."""
    monkeypatch.setattr(_memory, "_glibc", lambda: None)
    assert _memory.bound_heap() is False
    _memory.release_memory()


def test_user_setting_is_left_alone(monkeypatch):
    """A limit the user set in the environment wins: nothing is changed."""
    for env in ({"MALLOC_ARENA_MAX": "4"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}):
        assert _memory._user_set_arenas(env)
        monkeypatch.setattr(os, "environ", env)
        assert _memory.bound_heap() is False
    assert not _memory._user_set_arenas({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"})


def test_only_the_command_line_sets_the_allocator(monkeypatch, tmp_path):
    """``volrecon``'s entry point limits the arenas before it runs a command; the library's stage
    functions (run inside napari's process by the plugin) never do."""
    from volrecon import cli, pipeline

    calls = []
    monkeypatch.setattr(cli, "bound_heap", lambda: calls.append("bound") or True)
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert not exc.code
    assert calls == ["bound"]
    assert "bound_heap" not in vars(pipeline)
