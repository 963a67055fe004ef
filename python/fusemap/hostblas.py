"""Thread count of a BLAS that the host process loaded before torch (R's OpenBLAS under reticulate).

torch's CPU library exports the BLAS symbols it bundles; when FuseMap runs inside R, they resolve
to the BLAS that R loaded. OpenBLAS then runs torch's matrix products with its own thread pool,
which spins against torch's OpenMP threads: on 2 cores a training ran 1.7x longer, half of it in
the kernel. One OpenBLAS thread while FuseMap works removes that; the count is restored after, so
R's own linear algebra keeps its threads.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager


def _openblas():
    try:
        lib = ctypes.CDLL(None)  # symbols visible in the whole process (R's BLAS under reticulate)
        get, put = lib.openblas_get_num_threads, lib.openblas_set_num_threads
    except (OSError, AttributeError):
        return None
    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
    return get, put


def host_blas_threads() -> int | None:
    """Threads of the process-wide OpenBLAS, or None when the process has none."""
    found = _openblas()
    return None if found is None else int(found[0]())


@contextmanager
def single_threaded_host_blas():
    """Run the block with the process-wide OpenBLAS (if any) on one thread, then restore it."""
    found = _openblas()
    if found is None:
        yield
        return
    get, put = found
    before = int(get())
    put(1)
    try:
        yield
    finally:
        put(before)
