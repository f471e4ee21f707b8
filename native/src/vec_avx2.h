/* 8-wide float exp / sigmoid / tanh for the AVX2 and AVX-512 kernel files.
 * Same polynomial as nnet_expf() (nnet.h). Include after <immintrin.h>.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#ifndef LPCNET_VEC_AVX2_H
#define LPCNET_VEC_AVX2_H

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x) {
  __m256 fx, y, z;
  __m256i n;
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(87.f));
  fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  z = _mm256_mul_ps(x, x);
  y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_add_ps(_mm256_fmadd_ps(y, z, x), _mm256_set1_ps(1.f));
  n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

/* 1 / d by the hardware estimate plus one Newton step (~1 ulp; d >= 1 here) */
__attribute__((target("avx2,fma"))) static inline __m256 recip8(__m256 d) {
  __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.f)));
}

__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return recip8(_mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* tanh(x) = 2 sigmoid(2x) - 1 */
__attribute__((target("avx2,fma"))) static inline __m256 tanh8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_fmsub_ps(_mm256_set1_ps(2.f), sigmoid8(_mm256_add_ps(x, x)), one);
}

#endif
