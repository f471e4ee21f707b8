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
  return _mm512_scalef_ps(y, fx); /* y * 2^fx in one instruction */
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
TGT static void sparse_sgemv_accum_avx512(float *out, const float *bias, const float *w,
                                          const int32_t *idx, int ngroups, const float *x) {
  const float *init = bias ? bias : out;
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
    _mm256_storeu_ps(out + 8 * g, _mm256_add_ps(s, _mm256_loadu_ps(init + 8 * g)));
  }
}

TGT static void sparse_i8_accum_vnni(float *out, const float *bias, const int8_t *w,
                                     const int32_t *idx, int ngroups, const uint8_t *x, float scale) {
  int g, b;
  const float *init = bias ? bias : out;
  const __m256 sc = _mm256_set1_ps(scale);
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    int32_t x0, x1;
    for (b = 0; b + 2 <= count; b += 2) {
      memcpy(&x0, x + idx[0], 4);
      memcpy(&x1, x + idx[1], 4);
      a0 = _mm256_dpbusd_epi32(a0, _mm256_set1_epi32(x0), _mm256_loadu_si256((const __m256i *)w));
      a1 = _mm256_dpbusd_epi32(a1, _mm256_set1_epi32(x1), _mm256_loadu_si256((const __m256i *)(w + 32)));
      idx += 2;
      w += 64;
    }
    if (b < count) {
      memcpy(&x0, x + *idx++, 4);
      a0 = _mm256_dpbusd_epi32(a0, _mm256_set1_epi32(x0), _mm256_loadu_si256((const __m256i *)w));
      w += 32;
    }
    a0 = _mm256_add_epi32(a0, a1);
    _mm256_storeu_ps(out + 8 * g, _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), sc, _mm256_loadu_ps(init + 8 * g)));
  }
}

/* Dense int8 product: each input quad broadcast once for 3 output groups, with even and
 * odd row quads in separate accumulators (6 independent dot-product chains). */
TGT static void dense_i8_accum_vnni(float *out, const int8_t *w, int rows4, int ngroups,
                                    const uint8_t *x, float scale) {
  const __m256 sc = _mm256_set1_ps(scale);
  int g0, r, j;
  for (g0 = 0; g0 < ngroups; g0 += 3) {
    const int ng = ngroups - g0 < 3 ? ngroups - g0 : 3;
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256(), a2 = _mm256_setzero_si256();
    __m256i b0 = _mm256_setzero_si256(), b1 = _mm256_setzero_si256(), b2 = _mm256_setzero_si256();
    __m256i acc[3];
    if (ng == 3) {
      for (r = 0; r + 2 <= rows4; r += 2) {
        int32_t x0, x1;
        const int8_t *w0 = w + ((size_t)r * ngroups + g0) * 32, *w1 = w0 + (size_t)ngroups * 32;
        __m256i v0, v1;
        memcpy(&x0, x + 4 * r, 4);
        memcpy(&x1, x + 4 * r + 4, 4);
        v0 = _mm256_set1_epi32(x0);
        v1 = _mm256_set1_epi32(x1);
        a0 = _mm256_dpbusd_epi32(a0, v0, _mm256_loadu_si256((const __m256i *)w0));
        a1 = _mm256_dpbusd_epi32(a1, v0, _mm256_loadu_si256((const __m256i *)(w0 + 32)));
        a2 = _mm256_dpbusd_epi32(a2, v0, _mm256_loadu_si256((const __m256i *)(w0 + 64)));
        b0 = _mm256_dpbusd_epi32(b0, v1, _mm256_loadu_si256((const __m256i *)w1));
        b1 = _mm256_dpbusd_epi32(b1, v1, _mm256_loadu_si256((const __m256i *)(w1 + 32)));
        b2 = _mm256_dpbusd_epi32(b2, v1, _mm256_loadu_si256((const __m256i *)(w1 + 64)));
      }
    } else {
      r = 0;
    }
    acc[0] = _mm256_add_epi32(a0, b0);
    acc[1] = _mm256_add_epi32(a1, b1);
    acc[2] = _mm256_add_epi32(a2, b2);
    for (; r < rows4; r++) {   /* remaining row quad, or groups left over (< 3) */
      int32_t x4;
      __m256i xv;
      const int8_t *wr = w + ((size_t)r * ngroups + g0) * 32;
      memcpy(&x4, x + 4 * r, 4);
      xv = _mm256_set1_epi32(x4);
      for (j = 0; j < ng; j++)
        acc[j] = _mm256_dpbusd_epi32(acc[j], xv, _mm256_loadu_si256((const __m256i *)(wr + 32 * j)));
    }
    for (j = 0; j < ng; j++)
      _mm256_storeu_ps(out + 8 * (g0 + j), _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[j]), sc,
                                                         _mm256_loadu_ps(out + 8 * (g0 + j))));
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

#define LOAD_IN16(o) \
  (in2 ? _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(in + (o)), _mm512_loadu_ps(in2 + (o))), \
                       _mm512_add_ps(_mm512_loadu_ps(in3 + (o)), _mm512_loadu_ps(in4 + (o)))) \
       : _mm512_loadu_ps(in + (o)))

TGT static void gru_update_avx512(float *h, const float *in, const float *in2, const float *in3,
                                  const float *in4, const float *rec, const float *diag, int n) {
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
    z = sigmoid16(_mm512_add_ps(LOAD_IN16(i), rz));
    r = sigmoid16(_mm512_add_ps(LOAD_IN16(n + i), rr));
    hh = tanh16(_mm512_fmadd_ps(r, rh, LOAD_IN16(2 * n + i)));
    _mm512_storeu_ps(h + i, _mm512_fmadd_ps(z, _mm512_sub_ps(hv, hh), hh));
  }
  if (i < n) nnet_gru_update_avx2_from(h, in, in2, in3, in4, rec, diag, n, i);
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
                                         gru_update_avx512,
                                         nnet_quantize_u8_avx2, dense_i8_accum_vnni,
                                         nnet_mdense_units_avx2};
#endif
