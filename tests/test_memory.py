"""The allocator setting of :mod:`volrecon._memory`: what glibc does with a large block freed
after a larger one, with and without :func:`volrecon._memory.bound_heap`; nothing elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from volrecon import _memory

# In a fresh interpreter: free a 16 MiB array (glibc's dynamic threshold rises to its size), then
# allocate an 8 MiB one and report whether it got its own mapping (mallinfo2's hblkhd: bytes in
# mmapped blocks) or came from the heap, where its memory stays resident once it is freed.
PROBE = """
import ctypes, json, sys
import numpy as np
from volrecon import _memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

lib = _memory._glibc()
lib.mallinfo2.restype = Info
applied = _memory.bound_heap() if sys.argv[1] == "bound" else False
big = np.ones(16 << 20, np.uint8)
del big
before = lib.mallinfo2().hblkhd
block = np.ones(8 << 20, np.uint8)
mapped = lib.mallinfo2().hblkhd - before >= block.nbytes
print(json.dumps({"applied": applied, "mapped": bool(mapped)}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(_memory._glibc() is None or not hasattr(_memory._glibc(), "mallinfo2"),
                    reason="glibc >= 2.33 only (mallinfo2)")
def test_bound_heap_keeps_large_blocks_mapped():
    """Without the setting glibc's threshold has crept up to 16 MiB and the 8 MiB block comes from
    the heap; with it the block is mapped on its own (and unmapped when freed)."""
    assert _probe("plain") == {"applied": False, "mapped": False}
    assert _probe("bound") == {"applied": True, "mapped": True}


def test_no_glibc_is_a_no_op(monkeypatch):
    """Elsewhere (no glibc) neither call changes anything or fails."""
    monkeypatch.setattr(_memory, "_glibc", lambda: None)
    assert _memory.bound_heap() is False
    _memory.release_memory()
