// OpenBLAS picks its kernels from the CPU model once, when the library loads. Debian 12's OpenBLAS
// (0.3.21) does not know newer Xeons (Sapphire Rapids, shown by VMs as "Intel(R) Xeon(R) Processor")
// and falls back to its SSE3 "Prescott" kernels: 35 instead of 196 GFLOP/s for SGEMM on 2 cores here.
// OPENBLAS_CORETYPE overrides the choice but is read only at load time, so main() re-executes the
// binary once with it set.
#pragma once

#include <string>

namespace holdfast::kernels {

// The OpenBLAS core this CPU should use when OpenBLAS chose a weaker one ("SkylakeX" for AVX-512,
// "Haswell" for AVX2+FMA); "" when its choice is fine or the user set OPENBLAS_CORETYPE.
std::string blas_core_override();

// The core OpenBLAS runs, e.g. "SkylakeX" (for `holdfast bench` and its reports).
std::string blas_core_name();

}  // namespace holdfast::kernels
