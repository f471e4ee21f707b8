/* Pitch cross-correlation kernels with run-time CPU dispatch.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include "xcorr.h"

#include "simd.h"

#ifdef SIMD_X86
#include <immintrin.h>
#endif

static void xcorr_energy_c(const float *x, const float *y, float *xcorr, float *yy, int len, int max_lag) {
  int i, t;
  for (i = 0; i < max_lag; i++) {
    float sxy = 0, syy = 0;
    for (t = 0; t < len; t++) {
      float prod = x[t] * y[i + t];
      float sq = y[i + t] * y[i + t];
      sxy += prod;
      syy += sq;
    }
    xcorr[i] = sxy;
    yy[i] = syy;
  }
}

#ifdef SIMD_X86
/* 16 lags per step in two vectors of 8; the last max_lag % 16 lags by the scalar kernel. */
__attribute__((target("avx2"))) static void xcorr_energy_avx2(const float *x, const float *y,
                                                              float *xcorr, float *yy, int len,
                                                              int max_lag) {
  int i, t;
  for (i = 0; i + 16 <= max_lag; i += 16) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 e0 = _mm256_setzero_ps(), e1 = _mm256_setzero_ps();
    for (t = 0; t < len; t++) {
      __m256 xt = _mm256_set1_ps(x[t]);
      __m256 y0 = _mm256_loadu_ps(y + i + t);
      __m256 y1 = _mm256_loadu_ps(y + i + t + 8);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(xt, y0));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(xt, y1));
      e0 = _mm256_add_ps(e0, _mm256_mul_ps(y0, y0));
      e1 = _mm256_add_ps(e1, _mm256_mul_ps(y1, y1));
    }
    _mm256_storeu_ps(xcorr + i, a0);
    _mm256_storeu_ps(xcorr + i + 8, a1);
    _mm256_storeu_ps(yy + i, e0);
    _mm256_storeu_ps(yy + i + 8, e1);
  }
  if (i < max_lag) xcorr_energy_c(x, y + i, xcorr + i, yy + i, len, max_lag - i);
}

/* 32 lags per step in two vectors of 16; the rest by the scalar kernel. */
__attribute__((target("avx512f"))) static void xcorr_energy_avx512(const float *x, const float *y,
                                                                   float *xcorr, float *yy,
                                                                   int len, int max_lag) {
  int i, t;
  for (i = 0; i + 32 <= max_lag; i += 32) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 e0 = _mm512_setzero_ps(), e1 = _mm512_setzero_ps();
    for (t = 0; t < len; t++) {
      __m512 xt = _mm512_set1_ps(x[t]);
      __m512 y0 = _mm512_loadu_ps(y + i + t);
      __m512 y1 = _mm512_loadu_ps(y + i + t + 16);
      a0 = _mm512_add_ps(a0, _mm512_mul_ps(xt, y0));
      a1 = _mm512_add_ps(a1, _mm512_mul_ps(xt, y1));
      e0 = _mm512_add_ps(e0, _mm512_mul_ps(y0, y0));
      e1 = _mm512_add_ps(e1, _mm512_mul_ps(y1, y1));
    }
    _mm512_storeu_ps(xcorr + i, a0);
    _mm512_storeu_ps(xcorr + i + 16, a1);
    _mm512_storeu_ps(yy + i, e0);
    _mm512_storeu_ps(yy + i + 16, e1);
  }
  if (i < max_lag) xcorr_energy_c(x, y + i, xcorr + i, yy + i, len, max_lag - i);
}
#endif

const XcorrKernels xcorr_kernels_c = {.level = LPCNET_SIMD_SCALAR, .xcorr_energy = xcorr_energy_c};
#ifdef SIMD_X86
static const XcorrKernels xcorr_kernels_avx2 = {.level = LPCNET_SIMD_AVX2,
                                                .xcorr_energy = xcorr_energy_avx2};
static const XcorrKernels xcorr_kernels_avx512 = {.level = LPCNET_SIMD_AVX512,
                                                  .xcorr_energy = xcorr_energy_avx512};
#endif

const XcorrKernels *xcorr_select(int level) {
  level = simd_resolve(level);
#ifdef SIMD_X86
  if (level >= LPCNET_SIMD_AVX512) return &xcorr_kernels_avx512;
  if (level >= LPCNET_SIMD_AVX2) return &xcorr_kernels_avx2;
#endif
  return &xcorr_kernels_c;
}
