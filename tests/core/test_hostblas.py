"""fusemap.hostblas: one OpenBLAS thread while FuseMap works inside a host (R) that loaded OpenBLAS
globally, restored afterwards; a no-op in a plain Python process."""

import ctypes.util
import glob
import subprocess
import sys

import pytest

from fusemap.hostblas import host_blas_threads, single_threaded_host_blas


def test_no_host_openblas_is_a_no_op():
    before = host_blas_threads()
    with single_threaded_host_blas():
        pass
    assert host_blas_threads() == before


def _system_openblas():
    found = sorted(glob.glob("/usr/lib/*/openblas*/libopenblas*.so*")) or [ctypes.util.find_library("openblas")]
    return next((f for f in found if f), None)


def test_global_openblas_is_single_threaded_inside_and_restored():
    lib = _system_openblas()
    if lib is None:
        pytest.skip("no system OpenBLAS to load (scripts/setup_r.sh installs libopenblas0-pthread)")
    # in a child: loading a BLAS globally here could capture torch's BLAS symbols for the rest of the run
    code = f"""
import ctypes
ctypes.CDLL({lib!r}, mode=ctypes.RTLD_GLOBAL).openblas_set_num_threads(3)
from fusemap.hostblas import host_blas_threads, single_threaded_host_blas
before = host_blas_threads()
with single_threaded_host_blas():
    inside = host_blas_threads()
try:
    with single_threaded_host_blas():
        raise KeyError
except KeyError:
    pass
print(before, inside, host_blas_threads())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "1", "3"]
