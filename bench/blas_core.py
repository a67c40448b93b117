#!/usr/bin/python3
"""Prints the OPENBLAS_CORETYPE a benchmark peer should run with, by the rule of holdfast's
kernels/blas_core.h: Debian 12's OpenBLAS falls back to SSE3 kernels ("Prescott") on CPUs it does not
recognise; holdfast then re-executes itself with SkylakeX (AVX-512) or Haswell (AVX2+FMA) kernels, and
the PyTorch peer (which uses the same OpenBLAS) must get the same kernels for a fair comparison.
Prints nothing when OpenBLAS's own choice is fine."""
import ctypes, ctypes.util, os

PRE_AVX2 = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Atom"}

def main():
    if os.environ.get("OPENBLAS_CORETYPE"):
        return
    lib = None
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas"), "libblas.so.3"):
        try:
            lib = ctypes.CDLL(name) if name else None
        except OSError:
            continue
        if lib is not None and hasattr(lib, "openblas_get_corename"):
            break
        lib = None
    if lib is None:
        return
    lib.openblas_get_corename.restype = ctypes.c_char_p
    core = lib.openblas_get_corename().decode()
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
    avx2 = {"avx2", "fma"} <= flags
    if avx512 and (core in PRE_AVX2 or core == "Haswell"):
        print("SkylakeX")
    elif avx2 and core in PRE_AVX2:
        print("Haswell")

main()
