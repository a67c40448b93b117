#include "kernels/blas_core.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string_view>

namespace holdfast::kernels {

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

std::string blas_core_override() {
#if defined(__x86_64__) || defined(__i386__)
  if (std::getenv("OPENBLAS_CORETYPE")) return "";
  const std::string core = blas_core_name();
  // Cores without AVX2+FMA kernels: OpenBLAS's fallbacks for CPUs it does not recognise.
  constexpr std::array<std::string_view, 7> kPreAvx2 = {"Prescott", "Core2",       "Penryn", "Dunnington",
                                                        "Nehalem",  "Sandybridge", "Atom"};
  const bool pre_avx2 = std::find(kPreAvx2.begin(), kPreAvx2.end(), core) != kPreAvx2.end();
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512 && (pre_avx2 || core == "Haswell")) return "SkylakeX";
  if (avx2 && pre_avx2) return "Haswell";
#endif
  return "";
}

}  // namespace holdfast::kernels
