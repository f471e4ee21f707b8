/* CPU detection for the SIMD layer (simd.h).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include "simd.h"

int simd_cpu_level(void) {
#ifdef SIMD_X86
  /* __builtin_cpu_supports also checks (XGETBV) that the OS saves the wide registers. */
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
      return __builtin_cpu_supports("avx512bf16") ? LPCNET_SIMD_AVX512_BF16 : LPCNET_SIMD_AVX512;
    return LPCNET_SIMD_AVX2;
  }
#endif
  return LPCNET_SIMD_SCALAR;
}

int simd_resolve(int requested) {
  const int cpu = simd_cpu_level();
  return (requested < 0 || requested > cpu) ? cpu : requested;
}
