/* AVX2/FMA kernels (selected at run time; compiled with function target attributes).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <string.h>

#include "nnet.h"

#ifdef SIMD_X86
#include <immintrin.h>

#include "vec_avx2.h"

#define TGT __attribute__((target("avx2,fma")))

TGT static void sgemv_accum_avx2(float *out, const float *w, int rows, int cols, const float *x) {
  int i, j = 0;
  for (; j + 8 <= cols; j += 8) {
    __m256 a0 = _mm256_loadu_ps(out + j), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const float *wj = w + j;
    for (i = 0; i + 4 <= rows; i += 4) {
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i), _mm256_loadu_ps(wj + (long)i * cols), a0);
      a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i + 1),
                           _mm256_loadu_ps(wj + (long)(i + 1) * cols), a1);
      a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i + 2),
                           _mm256_loadu_ps(wj + (long)(i + 2) * cols), a2);
      a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i + 3),
                           _mm256_loadu_ps(wj + (long)(i + 3) * cols), a3);
    }
    for (; i < rows; i++)
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i), _mm256_loadu_ps(wj + (long)i * cols), a0);
    _mm256_storeu_ps(out + j, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  }
  for (; j < cols; j++) {
    float s = out[j];
    for (i = 0; i < rows; i++) s += x[i] * w[(long)i * cols + j];
    out[j] = s;
  }
}

/* sgemv_accum_avx2 on nv (constant, <= 3) vectors: per vector the same four accumulator
 * chains, tail rows and column tail, in the same order; the weight rows are loaded once. */
TGT static inline __attribute__((always_inline)) void sgemm_avx2_nv(
    float *out, int ldo, const float *w, int rows, int cols, const float *x, int ldx, const int nv) {
  int i, j = 0, v;
  for (; j + 8 <= cols; j += 8) {
    __m256 a[3][4];
    const float *wj = w + j;
    for (v = 0; v < nv; v++) {
      a[v][0] = _mm256_loadu_ps(out + (long)v * ldo + j);
      a[v][1] = a[v][2] = a[v][3] = _mm256_setzero_ps();
    }
    for (i = 0; i + 4 <= rows; i += 4) {
      const __m256 w0 = _mm256_loadu_ps(wj + (long)i * cols), w1 = _mm256_loadu_ps(wj + (long)(i + 1) * cols);
      const __m256 w2 = _mm256_loadu_ps(wj + (long)(i + 2) * cols);
      const __m256 w3 = _mm256_loadu_ps(wj + (long)(i + 3) * cols);
      for (v = 0; v < nv; v++) {
        const float *xv = x + (long)v * ldx + i;
        a[v][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(xv), w0, a[v][0]);
        a[v][1] = _mm256_fmadd_ps(_mm256_broadcast_ss(xv + 1), w1, a[v][1]);
        a[v][2] = _mm256_fmadd_ps(_mm256_broadcast_ss(xv + 2), w2, a[v][2]);
        a[v][3] = _mm256_fmadd_ps(_mm256_broadcast_ss(xv + 3), w3, a[v][3]);
      }
    }
    for (; i < rows; i++) {
      const __m256 wi = _mm256_loadu_ps(wj + (long)i * cols);
      for (v = 0; v < nv; v++)
        a[v][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + (long)v * ldx + i), wi, a[v][0]);
    }
    for (v = 0; v < nv; v++)
      _mm256_storeu_ps(out + (long)v * ldo + j,
                       _mm256_add_ps(_mm256_add_ps(a[v][0], a[v][1]), _mm256_add_ps(a[v][2], a[v][3])));
  }
  for (; j < cols; j++)
    for (v = 0; v < nv; v++) {
      float s = out[(long)v * ldo + j];
      for (i = 0; i < rows; i++) s += x[(long)v * ldx + i] * w[(long)i * cols + j];
      out[(long)v * ldo + j] = s;
    }
}

TGT static void sgemm_accum_avx2(float *out, int ldo, const float *w, int rows, int cols,
                                 const float *x, int ldx, int n) {
  int v = 0;
  for (; v + 3 <= n; v += 3)
    sgemm_avx2_nv(out + (long)v * ldo, ldo, w, rows, cols, x + (long)v * ldx, ldx, 3);
  if (n - v == 2) sgemm_avx2_nv(out + (long)v * ldo, ldo, w, rows, cols, x + (long)v * ldx, ldx, 2);
  if (n - v == 1) sgemm_avx2_nv(out + (long)v * ldo, ldo, w, rows, cols, x + (long)v * ldx, ldx, 1);
}

/* One 4x8 block into four accumulators (one per input row): 4 independent FMA chains.
 * The 4 inputs come from one 128-bit load broadcast to both lanes, then in-lane
 * shuffles (fewer loads than 4 scalar broadcasts). */
#define BLOCK_FMA(a, xr, w)                                                              \
  do {                                                                                   \
    __m256 xv_ = _mm256_broadcast_ps((const __m128 *)(xr));                              \
    a##0 = _mm256_fmadd_ps(_mm256_permute_ps(xv_, 0x00), _mm256_loadu_ps((w)), a##0);      \
    a##1 = _mm256_fmadd_ps(_mm256_permute_ps(xv_, 0x55), _mm256_loadu_ps((w) + 8), a##1);  \
    a##2 = _mm256_fmadd_ps(_mm256_permute_ps(xv_, 0xAA), _mm256_loadu_ps((w) + 16), a##2); \
    a##3 = _mm256_fmadd_ps(_mm256_permute_ps(xv_, 0xFF), _mm256_loadu_ps((w) + 24), a##3); \
  } while (0)

TGT static void sparse_sgemv_accum_avx2(float *out, const float *bias, const float *w,
                                        const int32_t *idx, int ngroups, const float *x) {
  int g, b;
  const float *init = bias ? bias : out;
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    __m256 a0 = _mm256_loadu_ps(init + 8 * g), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    __m256 b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
    for (b = 0; b + 2 <= count; b += 2) {
      BLOCK_FMA(a, x + idx[0], w);
      BLOCK_FMA(b, x + idx[1], w + 32);
      idx += 2;
      w += 64;
    }
    if (b < count) {
      BLOCK_FMA(a, x + idx[0], w);
      idx++;
      w += 32;
    }
    a0 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    b0 = _mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3));
    _mm256_storeu_ps(out + 8 * g, _mm256_add_ps(a0, b0));
  }
}

/* One int8 4x8 block (inputs x4) into the accumulators lo (outputs 0-3 as pairs) and hi (4-7):
 * widened to int16, multiplied and pair-added by madd (exact, no saturation). */
#define I8_BLOCK(lo, hi, x4, w)                                                                 \
  do {                                                                                          \
    const __m256i xv_ = _mm256_cvtepu8_epi16(_mm_set1_epi32(x4));                               \
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(                                                \
                                  _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w))), xv_)); \
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(                                                \
                                  _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)((w) + 16))), xv_)); \
  } while (0)

/* int8 without VNNI: two blocks per step into two accumulator pairs (independent chains),
 * then pair-add; integer sums, so the order does not matter. */
TGT static void sparse_i8_accum_avx2(float *out, const float *bias, const int8_t *w,
                                     const int32_t *idx, int ngroups, const uint8_t *x, float scale) {
  int g, b;
  const float *init = bias ? bias : out;
  const __m256 sc = _mm256_set1_ps(scale);
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256(), s;
    __m256i lo1 = _mm256_setzero_si256(), hi1 = _mm256_setzero_si256();
    int32_t x0, x1;
    for (b = 0; b + 2 <= count; b += 2, idx += 2, w += 64) {
      memcpy(&x0, x + idx[0], 4);
      memcpy(&x1, x + idx[1], 4);
      I8_BLOCK(lo, hi, x0, w);
      I8_BLOCK(lo1, hi1, x1, w + 32);
    }
    if (b < count) {
      memcpy(&x0, x + *idx++, 4);
      I8_BLOCK(lo, hi, x0, w);
      w += 32;
    }
    lo = _mm256_add_epi32(lo, lo1);
    hi = _mm256_add_epi32(hi, hi1);
    /* hadd gives outputs (0,1,4,5 | 2,3,6,7); permute back to 0..7 */
    s = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(lo, hi), _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
    _mm256_storeu_ps(out + 8 * g, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, _mm256_loadu_ps(init + 8 * g)));
  }
}

TGT static void vec_sigmoid_avx2(float *y, const float *x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sigmoid8(_mm256_loadu_ps(x + i)));
  for (; i < n; i++) y[i] = nnet_sigmoid(x[i]);
}

TGT static void vec_tanh_avx2(float *y, const float *x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, tanh8(_mm256_loadu_ps(x + i)));
  for (; i < n; i++) y[i] = nnet_tanh(x[i]);
}

#define LOAD_IN8(o) \
  (in2 ? _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(in + (o)), _mm256_loadu_ps(in2 + (o))), \
                       _mm256_add_ps(_mm256_loadu_ps(in3 + (o)), _mm256_loadu_ps(in4 + (o)))) \
       : _mm256_loadu_ps(in + (o)))

/* GRU update of units i0..n-1 (gate blocks stay at offsets n and 2n) */
TGT void nnet_gru_update_avx2_from(float *h, const float *in, const float *in2, const float *in3,
                                   const float *in4, const float *rec, const float *diag, int n,
                                   int i0) {
  int i = i0;
  for (; i + 8 <= n; i += 8) {
    __m256 hv = _mm256_loadu_ps(h + i);
    __m256 rz = _mm256_loadu_ps(rec + i), rr = _mm256_loadu_ps(rec + n + i);
    __m256 rh = _mm256_loadu_ps(rec + 2 * n + i), z, r, hh;
    if (diag) {
      rz = _mm256_fmadd_ps(_mm256_loadu_ps(diag + i), hv, rz);
      rr = _mm256_fmadd_ps(_mm256_loadu_ps(diag + n + i), hv, rr);
      rh = _mm256_fmadd_ps(_mm256_loadu_ps(diag + 2 * n + i), hv, rh);
    }
    z = sigmoid8(_mm256_add_ps(LOAD_IN8(i), rz));
    r = sigmoid8(_mm256_add_ps(LOAD_IN8(n + i), rr));
    hh = tanh8(_mm256_fmadd_ps(r, rh, LOAD_IN8(2 * n + i)));
    /* z h + (1 - z) hh = hh + z (h - hh) */
    _mm256_storeu_ps(h + i, _mm256_fmadd_ps(z, _mm256_sub_ps(hv, hh), hh));
  }
  for (; i < n; i++) nnet_gru_unit(h, in, in2, in3, in4, rec, diag, n, i); /* tail */
}

TGT static void gru_update_avx2(float *h, const float *in, const float *in2, const float *in3,
                                const float *in4, const float *rec, const float *diag, int n) {
  nnet_gru_update_avx2_from(h, in, in2, in3, in4, rec, diag, n, 0);
}

TGT void nnet_quantize_u8_avx2(uint8_t *out, const float *x, int n) {
  int i = 0;
  const __m256 s = _mm256_set1_ps(127.f), lo = _mm256_set1_ps(-127.f);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), lo), s);
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(127));
    __m128i p = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    int64_t b8;
    p = _mm_packus_epi16(p, p);
    b8 = _mm_cvtsi128_si64(p);
    memcpy(out + i, &b8, 8);
  }
  for (; i < n; i++) {
    float v = 127.f * x[i];
    v = v > 127.f ? 127.f : (v < -127.f ? -127.f : (v == v ? v : 0.f));
    out[i] = (uint8_t)(127 + (int)nearbyintf(v));
  }
}

/* Up to 4 units x 2 channels = 8 dot products of 16, one 8-wide tanh. */
TGT void nnet_mdense_units_avx2(const float *w, const float *b, const float *f, const float *v, int n,
                                const int *units, int count, float *out) {
  if (n == 16 && count <= 4) {
    const __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
    float s[8] = {0}, t[8];
    int j, c;
    for (j = 0; j < count; j++) {
      for (c = 0; c < 2; c++) {
        const float *wc = w + ((size_t)units[j] * 2 + c) * 16;
        __m256 a = _mm256_fmadd_ps(v1, _mm256_loadu_ps(wc + 8), _mm256_mul_ps(v0, _mm256_loadu_ps(wc)));
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_movehdup_ps(q));
        s[2 * j + c] = _mm_cvtss_f32(q) + b[2 * units[j] + c];
      }
    }
    _mm256_storeu_ps(t, tanh8(_mm256_loadu_ps(s)));
    for (j = 0; j < count; j++)
      out[j] = f[2 * units[j]] * t[2 * j] + f[2 * units[j] + 1] * t[2 * j + 1];
    return;
  }
  nnet_kernels_ref.mdense_units(w, b, f, v, n, units, count, out);
}

const NNetKernels nnet_kernels_avx2 = {
    .level = LPCNET_SIMD_AVX2,
    .sgemv_accum = sgemv_accum_avx2,
    .sgemm_accum = sgemm_accum_avx2,
    .sparse_sgemv_accum = sparse_sgemv_accum_avx2,
    .sparse_i8_accum = sparse_i8_accum_avx2,
    .vec_sigmoid = vec_sigmoid_avx2,
    .vec_tanh = vec_tanh_avx2,
    .gru_update = gru_update_avx2,
    .quantize_u8 = nnet_quantize_u8_avx2,
    .mdense_units = nnet_mdense_units_avx2,
};
#endif
