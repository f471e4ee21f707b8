/* AVX-512 kernels: 16-wide dense and activations, VNNI int8 dot products.
 * The 4x8 float blocks are 8 wide, so the float block-sparse product reuses
 * 256-bit FMAs (with AVX-512's 32 registers). Selected at run time.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <string.h>

#include "nnet.h"

#ifdef NNET_HAVE_X86
#include <immintrin.h>

#include "vec_avx2.h"

#define TGT __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma")))

TGT static inline __m512 exp16(__m512 x) {
  __m512 fx, y, z;
  __m512i n;
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.f)), _mm512_set1_ps(87.f));
  fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  z = _mm512_mul_ps(x, x);
  y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_add_ps(_mm512_fmadd_ps(y, z, x), _mm512_set1_ps(1.f));
  n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(n));
}

TGT static void sgemv_accum_avx512(float *out, const float *w, int rows, int cols, const float *x) {
  int i, j = 0;
  for (; j + 16 <= cols; j += 16) {
    __m512 a0 = _mm512_loadu_ps(out + j), a1 = _mm512_setzero_ps();
    const float *wj = w + j;
    for (i = 0; i + 2 <= rows; i += 2) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_loadu_ps(wj + (long)i * cols), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 1]), _mm512_loadu_ps(wj + (long)(i + 1) * cols), a1);
    }
    for (; i < rows; i++)
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_loadu_ps(wj + (long)i * cols), a0);
    _mm512_storeu_ps(out + j, _mm512_add_ps(a0, a1));
  }
  for (; j < cols; j++) {
    float s = out[j];
    for (i = 0; i < rows; i++) s += x[i] * w[(long)i * cols + j];
    out[j] = s;
  }
}

/* 4x8 float block as two zmm (rows 0-1, rows 2-3); inputs paired by one permute each. */
TGT static void sparse_sgemv_accum_avx512(float *out, const float *w, const int32_t *idx,
                                          int ngroups, const float *x) {
  const __m512i p01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i p23 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  int g, b;
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    __m256 s;
    for (b = 0; b + 2 <= count; b += 2) {
      __m512 x0 = _mm512_castps128_ps512(_mm_loadu_ps(x + idx[0]));
      __m512 x1 = _mm512_castps128_ps512(_mm_loadu_ps(x + idx[1]));
      a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(p01, x0), _mm512_loadu_ps(w), a0);
      a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(p23, x0), _mm512_loadu_ps(w + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(p01, x1), _mm512_loadu_ps(w + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(p23, x1), _mm512_loadu_ps(w + 48), a3);
      idx += 2;
      w += 64;
    }
    if (b < count) {
      __m512 x0 = _mm512_castps128_ps512(_mm_loadu_ps(x + idx[0]));
      a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(p01, x0), _mm512_loadu_ps(w), a0);
      a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(p23, x0), _mm512_loadu_ps(w + 16), a1);
      idx++;
      w += 32;
    }
    a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    s = _mm256_add_ps(_mm512_castps512_ps256(a0), _mm512_extractf32x8_ps(a0, 1));
    _mm256_storeu_ps(out + 8 * g, _mm256_add_ps(s, _mm256_loadu_ps(out + 8 * g)));
  }
}

TGT static void sparse_i8_accum_vnni(float *out, const int8_t *w, const int32_t *idx, int ngroups,
                                     const uint8_t *x, float scale) {
  int g, b;
  const __m256 sc = _mm256_set1_ps(scale);
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    __m256i a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
    int32_t x4;
    for (b = 0; b + 4 <= count; b += 4) {
      memcpy(&x4, x + idx[0], 4);
      a0 = _mm256_dpbusd_epi32(a0, _mm256_set1_epi32(x4), _mm256_loadu_si256((const __m256i *)w));
      memcpy(&x4, x + idx[1], 4);
      a1 = _mm256_dpbusd_epi32(a1, _mm256_set1_epi32(x4), _mm256_loadu_si256((const __m256i *)(w + 32)));
      memcpy(&x4, x + idx[2], 4);
      a2 = _mm256_dpbusd_epi32(a2, _mm256_set1_epi32(x4), _mm256_loadu_si256((const __m256i *)(w + 64)));
      memcpy(&x4, x + idx[3], 4);
      a3 = _mm256_dpbusd_epi32(a3, _mm256_set1_epi32(x4), _mm256_loadu_si256((const __m256i *)(w + 96)));
      idx += 4;
      w += 128;
    }
    for (; b < count; b++) {
      memcpy(&x4, x + *idx++, 4);
      a0 = _mm256_dpbusd_epi32(a0, _mm256_set1_epi32(x4), _mm256_loadu_si256((const __m256i *)w));
      w += 32;
    }
    a0 = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
    _mm256_storeu_ps(out + 8 * g, _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), sc, _mm256_loadu_ps(out + 8 * g)));
  }
}

TGT static inline __m512 sigmoid16(__m512 x) {
  __m512 d = _mm512_add_ps(_mm512_set1_ps(1.f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), x)));
  __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f))); /* one Newton step */
}

TGT static inline __m512 tanh16(__m512 x) {
  return _mm512_fmsub_ps(_mm512_set1_ps(2.f), sigmoid16(_mm512_add_ps(x, x)), _mm512_set1_ps(1.f));
}

TGT static void gru_update_avx512(float *h, const float *in, const float *rec, const float *diag, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 hv = _mm512_loadu_ps(h + i);
    __m512 rz = _mm512_loadu_ps(rec + i), rr = _mm512_loadu_ps(rec + n + i);
    __m512 rh = _mm512_loadu_ps(rec + 2 * n + i), z, r, hh;
    if (diag) {
      rz = _mm512_fmadd_ps(_mm512_loadu_ps(diag + i), hv, rz);
      rr = _mm512_fmadd_ps(_mm512_loadu_ps(diag + n + i), hv, rr);
      rh = _mm512_fmadd_ps(_mm512_loadu_ps(diag + 2 * n + i), hv, rh);
    }
    z = sigmoid16(_mm512_add_ps(_mm512_loadu_ps(in + i), rz));
    r = sigmoid16(_mm512_add_ps(_mm512_loadu_ps(in + n + i), rr));
    hh = tanh16(_mm512_fmadd_ps(r, rh, _mm512_loadu_ps(in + 2 * n + i)));
    _mm512_storeu_ps(h + i, _mm512_fmadd_ps(z, _mm512_sub_ps(hv, hh), hh));
  }
  if (i < n) nnet_gru_update_avx2(h + i, in + i, rec + i, diag ? diag + i : NULL, n - i);
}

TGT static void vec_sum4_avx512(float *out, const float *a, const float *b, const float *c,
                                const float *d, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)),
                                            _mm512_add_ps(_mm512_loadu_ps(c + i), _mm512_loadu_ps(d + i))));
  if (i < n) nnet_vec_sum4_avx2(out + i, a + i, b + i, c + i, d + i, n - i);
}

TGT static void vec_sigmoid_avx512(float *y, const float *x, int n) {
  int i = 0;
  const __m512 one = _mm512_set1_ps(1.f);
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(x + i)));
    _mm512_storeu_ps(y + i, _mm512_div_ps(one, _mm512_add_ps(one, e)));
  }
  for (; i < n; i++) y[i] = nnet_sigmoid(x[i]);
}

TGT static void vec_tanh_avx512(float *y, const float *x, int n) {
  int i = 0;
  const __m512 one = _mm512_set1_ps(1.f);
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m512 e = exp16(_mm512_add_ps(v, v));
    _mm512_storeu_ps(y + i, _mm512_div_ps(_mm512_sub_ps(e, one), _mm512_add_ps(e, one)));
  }
  for (; i < n; i++) y[i] = nnet_tanh(x[i]);
}

const NNetKernels nnet_kernels_avx512 = {3, sgemv_accum_avx512, sparse_sgemv_accum_avx512,
                                         sparse_i8_accum_vnni, vec_sigmoid_avx512, vec_tanh_avx512,
                                         gru_update_avx512, vec_sum4_avx512,
                                         nnet_quantize_u8_avx2, nnet_mdense_unit_avx2};
#endif
