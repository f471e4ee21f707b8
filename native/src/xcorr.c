/* Pitch cross-correlation kernels with run-time CPU dispatch.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include "xcorr.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define XCORR_X86 1
#endif

void xcorr_energy_c(const float *x, const float *y, float *xcorr, float *yy, int len, int max_lag) {
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

#ifdef XCORR_X86
/* 8 lags per vector, lags processed in blocks of 8 (max_lag % 8 == 0 is not required). */
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

int xcorr_cpu_level(void) {
#ifdef XCORR_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return XCORR_AVX512;
  if (__builtin_cpu_supports("avx2")) return XCORR_AVX2;
#endif
  return XCORR_SCALAR;
}

xcorr_fn xcorr_select(int level) {
  int cpu = xcorr_cpu_level();
  if (level > cpu || level < 0) level = cpu;
#ifdef XCORR_X86
  if (level >= XCORR_AVX512) return xcorr_energy_avx512;
  if (level >= XCORR_AVX2) return xcorr_energy_avx2;
#endif
  return xcorr_energy_c;
}
