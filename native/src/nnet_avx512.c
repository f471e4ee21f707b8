/* AVX-512 kernels: 16-wide dense and activations, VNNI int8 dot products.
 * The 4x8 float blocks are 8 wide, so the float block-sparse product reuses
 * 256-bit FMAs (with AVX-512's 32 registers). Selected at run time.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <string.h>

#include "nnet.h"

#ifdef SIMD_X86
#include <immintrin.h>

#include "vec_avx2.h"

#define TGT __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma")))
/* For the kernels with many accumulators: GCC's partial redundancy elimination (-ftree-pre)
 * makes it keep copies of the accumulators on the stack in the inner loops (spills on every
 * step); without it they stay in registers. */
#define TGT_NOPRE TGT __attribute__((optimize("no-tree-pre")))

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

/* sgemv_accum_avx512 on nv (constant, <= 8) vectors: per vector the same two accumulator
 * chains, tail row and column tail, in the same order; each weight row is loaded once. */
TGT static inline __attribute__((always_inline)) void sgemm_avx512_nv(
    float *out, int ldo, const float *w, int rows, int cols, const float *x, int ldx, const int nv) {
  int i, j = 0, v;
  for (; j + 16 <= cols; j += 16) {
    __m512 a0[8], a1[8];
    const float *wj = w + j;
    for (v = 0; v < nv; v++) a0[v] = _mm512_loadu_ps(out + (long)v * ldo + j), a1[v] = _mm512_setzero_ps();
    for (i = 0; i + 2 <= rows; i += 2) {
      const __m512 w0 = _mm512_loadu_ps(wj + (long)i * cols), w1 = _mm512_loadu_ps(wj + (long)(i + 1) * cols);
      for (v = 0; v < nv; v++) {
        a0[v] = _mm512_fmadd_ps(_mm512_set1_ps(x[(long)v * ldx + i]), w0, a0[v]);
        a1[v] = _mm512_fmadd_ps(_mm512_set1_ps(x[(long)v * ldx + i + 1]), w1, a1[v]);
      }
    }
    if (i < rows) {
      const __m512 wi = _mm512_loadu_ps(wj + (long)i * cols);
      for (v = 0; v < nv; v++) a0[v] = _mm512_fmadd_ps(_mm512_set1_ps(x[(long)v * ldx + i]), wi, a0[v]);
    }
    for (v = 0; v < nv; v++) _mm512_storeu_ps(out + (long)v * ldo + j, _mm512_add_ps(a0[v], a1[v]));
  }
  for (; j < cols; j++)
    for (v = 0; v < nv; v++) {
      float s = out[(long)v * ldo + j];
      for (i = 0; i < rows; i++) s += x[(long)v * ldx + i] * w[(long)i * cols + j];
      out[(long)v * ldo + j] = s;
    }
}

TGT static void sgemm_accum_avx512(float *out, int ldo, const float *w, int rows, int cols,
                                   const float *x, int ldx, int n) {
  for (; n >= 8; n -= 8, out += 8L * ldo, x += 8L * ldx) sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 8);
  switch (n) {
    case 7: sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 7); break;
    case 6: sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 6); break;
    case 5: sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 5); break;
    case 4: sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 4); break;
    case 3: sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 3); break;
    case 2: sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 2); break;
    case 1: sgemm_avx512_nv(out, ldo, w, rows, cols, x, ldx, 1); break;
    default: break;
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

/* Two int8 4x8 blocks (inputs idx[0..1]) into two independent VNNI accumulators. */
TGT static inline void vnni_two_blocks(__m256i *a0, __m256i *a1, const uint8_t *x,
                                       const int32_t *idx, const int8_t *w) {
  int32_t x0, x1;
  memcpy(&x0, x + idx[0], 4);
  memcpy(&x1, x + idx[1], 4);
  *a0 = _mm256_dpbusd_epi32(*a0, _mm256_set1_epi32(x0), _mm256_loadu_si256((const __m256i *)w));
  *a1 = _mm256_dpbusd_epi32(*a1, _mm256_set1_epi32(x1), _mm256_loadu_si256((const __m256i *)(w + 32)));
}

/* vnni_two_blocks with both (non-negative) indices read by one 64-bit load (per block an
 * index, a state broadcast and the weights are loaded: two loads fewer per four blocks). */
TGT static inline void vnni_two_blocks64(__m256i *a0, __m256i *a1, const uint8_t *x,
                                         const int32_t *idx, const int8_t *w) {
  uint64_t both;
  int32_t x0, x1;
  memcpy(&both, idx, 8);
  memcpy(&x0, x + (uint32_t)both, 4);
  memcpy(&x1, x + (both >> 32), 4);
  *a0 = _mm256_dpbusd_epi32(*a0, _mm256_set1_epi32(x0), _mm256_loadu_si256((const __m256i *)w));
  *a1 = _mm256_dpbusd_epi32(*a1, _mm256_set1_epi32(x1), _mm256_loadu_si256((const __m256i *)(w + 32)));
}

/* out[8 outputs] = init + scale * (a0 + a1) */
TGT static inline void vnni_store_group(float *out, const float *init, __m256i a0, __m256i a1,
                                        __m256 sc) {
  a0 = _mm256_add_epi32(a0, a1);
  _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(a0), sc, _mm256_loadu_ps(init)));
}

TGT static void sparse_i8_accum_vnni(float *out, const float *bias, const int8_t *w,
                                     const int32_t *idx, int ngroups, const uint8_t *x, float scale) {
  int g, b;
  const float *init = bias ? bias : out;
  const __m256 sc = _mm256_set1_ps(scale);
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    for (b = 0; b + 2 <= count; b += 2) {
      vnni_two_blocks(&a0, &a1, x, idx, w);
      idx += 2;
      w += 64;
    }
    if (b < count) {
      int32_t x0;
      memcpy(&x0, x + *idx++, 4);
      a0 = _mm256_dpbusd_epi32(a0, _mm256_set1_epi32(x0), _mm256_loadu_si256((const __m256i *)w));
      w += 32;
    }
    vnni_store_group(out + 8 * g, init + 8 * g, a0, a1, sc);
  }
}

/* Block counts even and >= 2: four blocks per step into four accumulators (independent
 * dot-product chains), then the remaining pair; no odd remainder. (Without GCC's PRE: with it,
 * the accumulators were copied between registers at every step.) */
TGT_NOPRE static void sparse_i8_accum_even_vnni(float *out, const float *bias, const int8_t *w,
                                                const int32_t *idx, int ngroups, const uint8_t *x,
                                                float scale) {
  int g;
  const float *init = bias ? bias : out;
  const __m256 sc = _mm256_set1_ps(scale);
  for (g = 0; g < ngroups; g++) {
    const int32_t *end = idx + 1 + *idx;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (idx++; idx + 4 <= end; idx += 4, w += 128) {
      vnni_two_blocks64(&a0, &a1, x, idx, w);
      vnni_two_blocks64(&a2, &a3, x, idx + 2, w + 64);
    }
    if (idx < end) {
      vnni_two_blocks64(&a0, &a1, x, idx, w);
      idx += 2;
      w += 64;
    }
    vnni_store_group(out + 8 * g, init + 8 * g, _mm256_add_epi32(a0, a2), _mm256_add_epi32(a1, a3), sc);
  }
}

TGT static inline __attribute__((always_inline)) void i8_multi_store(
    float *out, int ldo, const float *bias, int ldb, int k, int s0, int g, __m512i acc, __m512 sc) {
  const int s1 = s0 + 1;
  const float *i0 = (bias ? bias + (long)s0 * ldb : out + (long)s0 * ldo) + 8 * g;
  __m512 init = _mm512_castps256_ps512(_mm256_loadu_ps(i0));
  __m512 y;
  if (s1 < k)
    init = _mm512_insertf32x8(
        init, _mm256_loadu_ps((bias ? bias + (long)s1 * ldb : out + (long)s1 * ldo) + 8 * g), 1);
  y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), sc, init);
  _mm256_storeu_ps(out + (long)s0 * ldo + 8 * g, _mm512_castps512_ps256(y));
  if (s1 < k) _mm256_storeu_ps(out + (long)s1 * ldo + 8 * g, _mm512_extractf32x8_ps(y, 1));
}

/* sparse_i8_accum_multi on np (constant, <= 8) stream pairs starting at pair p0: a zmm holds
 * the 8 outputs of two streams; per block, the weights are broadcast to both halves once and
 * each pair's expanded states (64 bytes) are one load. Each output is then
 * fma(float(acc), scale, init), as vnni_store_group. (Named accumulators: GCC keeps them in
 * registers, an array it copies around.) */
TGT static inline __attribute__((always_inline)) void i8_multi_pairs(
    float *out, int ldo, const float *bias, int ldb, const int8_t *w, const int32_t *idx,
    int ngroups, const uint8_t *xe, int kp, int k, int p0, const int np, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  const long row_bytes = (long)NNET_XE_BYTES * kp / NNET_BLOCK_ROWS; /* per state row */
  int g;
  xe += 64L * p0;
  for (g = 0; g < ngroups; g++) {
    const int32_t *end = idx + 1 + *idx;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (idx++; idx < end; idx++, w += 32) {
      const uint8_t *xr = xe + row_bytes * *idx;
      const __m512i wv = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)w));
#define MP_(j, a) if (np > j) a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512((const void *)(xr + 64 * j)), wv)
      MP_(0, a0); MP_(1, a1); MP_(2, a2); MP_(3, a3); MP_(4, a4); MP_(5, a5); MP_(6, a6); MP_(7, a7);
#undef MP_
    }
#define MS_(j, a) if (np > j) i8_multi_store(out, ldo, bias, ldb, k, 2 * (p0 + j), g, a, sc)
    MS_(0, a0); MS_(1, a1); MS_(2, a2); MS_(3, a3); MS_(4, a4); MS_(5, a5); MS_(6, a6); MS_(7, a7);
#undef MS_
  }
}

TGT_NOPRE static void sparse_i8_accum_multi_vnni(float *out, int ldo, const float *bias, int ldb,
                                           const int8_t *w, const int32_t *idx, int ngroups,
                                           const uint8_t *xe, int k, float scale) {
  const int kp = nnet_xe_streams(k), npairs = kp / 2;
  int p0;
  for (p0 = 0; p0 < npairs; p0 += 8) { /* at most 16 streams per pass over the weights */
    switch (npairs - p0 < 8 ? npairs - p0 : 8) {
      case 8: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 8, scale); break;
      case 7: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 7, scale); break;
      case 6: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 6, scale); break;
      case 5: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 5, scale); break;
      case 4: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 4, scale); break;
      case 3: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 3, scale); break;
      case 2: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 2, scale); break;
      default: i8_multi_pairs(out, ldo, bias, ldb, w, idx, ngroups, xe, kp, k, p0, 1, scale); break;
    }
  }
}

/* Dense int8 product of 2 nz groups (nz constant, <= 6: one zmm of weights per pair of groups
 * and row quad) with ph (constant, <= 8) row phases: nz ph independent dot-product chains; each
 * row quad's state bytes are broadcast once for all the groups. The accumulators are named
 * variables a<phase><zmm> (GCC keeps those in registers; an array it spills). */
#define DZ_DECL(p) \
  __m512i a##p##0 = _mm512_setzero_si512(), a##p##1 = a##p##0, a##p##2 = a##p##0, a##p##3 = a##p##0, \
          a##p##4 = a##p##0, a##p##5 = a##p##0
#define DZ_STEP(p, rr)                                                                         \
  do {                                                                                         \
    int32_t x4_;                                                                               \
    const int8_t *wr_ = w + (size_t)(rr) * gstride * NNET_BLOCK_SIZE;                          \
    __m512i xv_;                                                                               \
    memcpy(&x4_, x + 4 * (rr), 4);                                                             \
    xv_ = _mm512_set1_epi32(x4_);                                                              \
    a##p##0 = _mm512_dpbusd_epi32(a##p##0, xv_, _mm512_loadu_si512((const void *)wr_));        \
    if (nz > 1) a##p##1 = _mm512_dpbusd_epi32(a##p##1, xv_, _mm512_loadu_si512((const void *)(wr_ + 64)));  \
    if (nz > 2) a##p##2 = _mm512_dpbusd_epi32(a##p##2, xv_, _mm512_loadu_si512((const void *)(wr_ + 128))); \
    if (nz > 3) a##p##3 = _mm512_dpbusd_epi32(a##p##3, xv_, _mm512_loadu_si512((const void *)(wr_ + 192))); \
    if (nz > 4) a##p##4 = _mm512_dpbusd_epi32(a##p##4, xv_, _mm512_loadu_si512((const void *)(wr_ + 256))); \
    if (nz > 5) a##p##5 = _mm512_dpbusd_epi32(a##p##5, xv_, _mm512_loadu_si512((const void *)(wr_ + 320))); \
  } while (0)
#define DZ_SUM(j) \
  (_mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0##j, a1##j), _mm512_add_epi32(a2##j, a3##j)), \
                    _mm512_add_epi32(_mm512_add_epi32(a4##j, a5##j), _mm512_add_epi32(a6##j, a7##j))))
#define DZ_STORE(j)                                                                            \
  if (nz > j)                                                                                  \
  _mm512_storeu_ps(out + 16 * j, _mm512_fmadd_ps(_mm512_cvtepi32_ps(DZ_SUM(j)), _mm512_set1_ps(scale), \
                                                 _mm512_loadu_ps(out + 16 * j)))
TGT static inline __attribute__((always_inline)) void dense_i8_zmm(
    float *out, const int8_t *w, int rows4, int gstride, const uint8_t *x, float scale, const int nz,
    const int ph) {
  int r;
  DZ_DECL(0); DZ_DECL(1); DZ_DECL(2); DZ_DECL(3); DZ_DECL(4); DZ_DECL(5); DZ_DECL(6); DZ_DECL(7);
  for (r = 0; r + ph <= rows4; r += ph) {
    DZ_STEP(0, r);
    if (ph > 1) DZ_STEP(1, r + 1);
    if (ph > 2) DZ_STEP(2, r + 2);
    if (ph > 3) DZ_STEP(3, r + 3);
    if (ph > 4) DZ_STEP(4, r + 4);
    if (ph > 5) DZ_STEP(5, r + 5);
    if (ph > 6) DZ_STEP(6, r + 6);
    if (ph > 7) DZ_STEP(7, r + 7);
  }
  for (; r < rows4; r++) DZ_STEP(0, r);
  /* (unused accumulators are zero: the integer sums are the same) */
  DZ_STORE(0); DZ_STORE(1); DZ_STORE(2); DZ_STORE(3); DZ_STORE(4); DZ_STORE(5);
}

TGT_NOPRE static void dense_i8_accum_vnni(float *out, const int8_t *w, int rows4, int ngroups,
                                    int gstride, const uint8_t *x, float scale) {
  int g = 0, r;
  if (ngroups == 6) { /* GRU B of 16 units (48 outputs), on the critical path: 24 chains */
    dense_i8_zmm(out, w, rows4, gstride, x, scale, 3, 8);
    return;
  }
  for (; g + 12 <= ngroups; g += 12)
    dense_i8_zmm(out + 8 * g, w + 32 * g, rows4, gstride, x, scale, 6, 2);
  switch ((ngroups - g) / 2) {
    case 5: dense_i8_zmm(out + 8 * g, w + 32 * g, rows4, gstride, x, scale, 5, 2); g += 10; break;
    case 4: dense_i8_zmm(out + 8 * g, w + 32 * g, rows4, gstride, x, scale, 4, 3); g += 8; break;
    case 3: dense_i8_zmm(out + 8 * g, w + 32 * g, rows4, gstride, x, scale, 3, 4); g += 6; break;
    case 2: dense_i8_zmm(out + 8 * g, w + 32 * g, rows4, gstride, x, scale, 2, 4); g += 4; break;
    case 1: dense_i8_zmm(out + 8 * g, w + 32 * g, rows4, gstride, x, scale, 1, 4); g += 2; break;
    default: break;
  }
  if (g < ngroups) { /* an odd last group */
    __m256i acc = _mm256_setzero_si256();
    for (r = 0; r < rows4; r++) {
      int32_t x4;
      memcpy(&x4, x + 4 * r, 4);
      acc = _mm256_dpbusd_epi32(acc, _mm256_set1_epi32(x4),
                                _mm256_loadu_si256((const __m256i *)(w + ((size_t)r * gstride + g) * 32)));
    }
    _mm256_storeu_ps(out + 8 * g, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(scale),
                                                  _mm256_loadu_ps(out + 8 * g)));
  }
}

/* 48 outputs (6 groups, gstride 6: GRU B of 16 units) of ns (constant, <= 8) streams: per
 * row quad the 3 zmm of weights are loaded once and used by every stream (one chain per
 * stream and zmm; named accumulators b<stream><zmm>). Each stream's sums are those of
 * dense_i8_zmm, and its outputs fma(float(acc), scale, out) likewise. */
#define D48_DECL(s) __m512i b##s##0 = _mm512_setzero_si512(), b##s##1 = b##s##0, b##s##2 = b##s##0
#define D48_STEP(s)                                                        \
  if (ns > s) {                                                            \
    int32_t x4_;                                                           \
    __m512i xv_;                                                           \
    memcpy(&x4_, x##s + 4 * r, 4);                                         \
    xv_ = _mm512_set1_epi32(x4_);                                          \
    b##s##0 = _mm512_dpbusd_epi32(b##s##0, xv_, w0);                       \
    b##s##1 = _mm512_dpbusd_epi32(b##s##1, xv_, w1);                       \
    b##s##2 = _mm512_dpbusd_epi32(b##s##2, xv_, w2);                       \
  }
#define D48_STORE1(s, j, a) \
  _mm512_storeu_ps(out[s] + 16 * j,                                                            \
                   _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), sc, _mm512_loadu_ps(out[s] + 16 * j)))
#define D48_STORE(s) \
  if (ns > s) { D48_STORE1(s, 0, b##s##0); D48_STORE1(s, 1, b##s##1); D48_STORE1(s, 2, b##s##2); }
TGT static inline __attribute__((always_inline)) void dense48_streams(
    float *const *out, const int8_t *w, int rows4, const uint8_t *const *x, float scale, const int ns) {
  const __m512 sc = _mm512_set1_ps(scale);
  const uint8_t *x0 = x[0], *x1 = ns > 1 ? x[1] : x0, *x2 = ns > 2 ? x[2] : x0, *x3 = ns > 3 ? x[3] : x0;
  const uint8_t *x4 = ns > 4 ? x[4] : x0, *x5 = ns > 5 ? x[5] : x0, *x6 = ns > 6 ? x[6] : x0;
  const uint8_t *x7 = ns > 7 ? x[7] : x0;
  int r;
  D48_DECL(0); D48_DECL(1); D48_DECL(2); D48_DECL(3); D48_DECL(4); D48_DECL(5); D48_DECL(6); D48_DECL(7);
  for (r = 0; r < rows4; r++) {
    const __m512i w0 = _mm512_loadu_si512((const void *)(w + (size_t)r * 192));
    const __m512i w1 = _mm512_loadu_si512((const void *)(w + (size_t)r * 192 + 64));
    const __m512i w2 = _mm512_loadu_si512((const void *)(w + (size_t)r * 192 + 128));
    D48_STEP(0) D48_STEP(1) D48_STEP(2) D48_STEP(3) D48_STEP(4) D48_STEP(5) D48_STEP(6) D48_STEP(7)
  }
  D48_STORE(0) D48_STORE(1) D48_STORE(2) D48_STORE(3) D48_STORE(4) D48_STORE(5) D48_STORE(6) D48_STORE(7)
}

TGT_NOPRE static void dense_i8_accum_multi_vnni(float *const *out, const int8_t *w, int rows4, int ngroups,
                                          int gstride, const uint8_t *const *x, int k, float scale) {
  int s = 0;
  if (ngroups == 6 && gstride == 6) {
    for (; s + 8 <= k; s += 8) dense48_streams(out + s, w, rows4, x + s, scale, 8);
    switch (k - s) {
      case 7: dense48_streams(out + s, w, rows4, x + s, scale, 7); return;
      case 6: dense48_streams(out + s, w, rows4, x + s, scale, 6); return;
      case 5: dense48_streams(out + s, w, rows4, x + s, scale, 5); return;
      case 4: dense48_streams(out + s, w, rows4, x + s, scale, 4); return;
      case 3: dense48_streams(out + s, w, rows4, x + s, scale, 3); return;
      case 2: dense48_streams(out + s, w, rows4, x + s, scale, 2); return;
      case 1: dense48_streams(out + s, w, rows4, x + s, scale, 1); return;
      default: return;
    }
  }
  for (; s < k; s++) dense_i8_accum_vnni(out[s], w, rows4, ngroups, gstride, x[s], scale);
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

/* Units i..i+15 of a GRU update: the state hv, the update / reset gate pre-activations
 * (input + recurrent sums, the diagonal included), the recurrent candidate sum rh and the
 * candidate's input sum xh. Shared by the exact and the spline updates. */
typedef struct {
  __m512 hv, zpre, rpre, rh, xh;
} GruPre16;

TGT static inline GruPre16 gru_pre16(const float *h, const float *in, const float *in2,
                                     const float *in3, const float *in4, const float *rec,
                                     const float *diag, int n, int i) {
  GruPre16 g;
  __m512 rz = _mm512_loadu_ps(rec + i), rr = _mm512_loadu_ps(rec + n + i);
  g.hv = _mm512_loadu_ps(h + i);
  g.rh = _mm512_loadu_ps(rec + 2 * n + i);
  if (diag) {
    rz = _mm512_fmadd_ps(_mm512_loadu_ps(diag + i), g.hv, rz);
    rr = _mm512_fmadd_ps(_mm512_loadu_ps(diag + n + i), g.hv, rr);
    g.rh = _mm512_fmadd_ps(_mm512_loadu_ps(diag + 2 * n + i), g.hv, g.rh);
  }
  g.zpre = _mm512_add_ps(LOAD_IN16(i), rz);
  g.rpre = _mm512_add_ps(LOAD_IN16(n + i), rr);
  g.xh = LOAD_IN16(2 * n + i);
  return g;
}

TGT static void gru_update_avx512(float *h, const float *in, const float *in2, const float *in3,
                                  const float *in4, const float *rec, const float *diag, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    GruPre16 g = gru_pre16(h, in, in2, in3, in4, rec, diag, n, i);
    __m512 z = sigmoid16(g.zpre), r = sigmoid16(g.rpre);
    __m512 hh = tanh16(_mm512_fmadd_ps(r, g.rh, g.xh));
    _mm512_storeu_ps(h + i, _mm512_fmadd_ps(z, _mm512_sub_ps(g.hv, hh), hh));
  }
  if (i < n) nnet_gru_update_avx2_from(h, in, in2, in3, in4, rec, diag, n, i);
}

/* The spline sigmoid of nnet_sig_spline (nnet.h) for the int8 engine: 14 operations instead
 * of ~20 for exp + reciprocal; its 32 pieces per coefficient fit two zmm registers. */
typedef struct {
  __m512 c[4][2];
} SigTable;

TGT static inline SigTable sig_table(void) {
  SigTable t;
  int k;
  for (k = 0; k < 4; k++) {
    t.c[k][0] = _mm512_load_ps(nnet_sig_spline[k]);
    t.c[k][1] = _mm512_load_ps(nnet_sig_spline[k] + 16);
  }
  return t;
}

/* sigmoid(x) for x = (u - 16) * 0.75, u the spline coordinate. A short dependency chain: the
 * piece index (truncation) and the position in the piece (u - floor(u), one VREDUCEPS; the
 * same exact value as u - float(index)) in parallel, and the cubic in Estrin's form
 * (c0 + c1 f) + (c2 + c3 f) f^2: two FMA steps instead of three. */
TGT static inline __m512 sig_spline16(const SigTable *t, __m512 u) {
  __m512i i;
  __m512 f, f2, hi, lo;
  u = _mm512_min_ps(_mm512_max_ps(u, _mm512_setzero_ps()), _mm512_set1_ps(31.999998f));
  i = _mm512_cvttps_epi32(u);
  f = _mm512_reduce_ps(u, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  f2 = _mm512_mul_ps(f, f);
  hi = _mm512_fmadd_ps(_mm512_permutex2var_ps(t->c[3][0], i, t->c[3][1]), f,
                       _mm512_permutex2var_ps(t->c[2][0], i, t->c[2][1]));
  lo = _mm512_fmadd_ps(_mm512_permutex2var_ps(t->c[1][0], i, t->c[1][1]), f,
                       _mm512_permutex2var_ps(t->c[0][0], i, t->c[0][1]));
  return _mm512_fmadd_ps(hi, f2, lo);
}

/* gru_update with the spline sigmoid / tanh (int8 engine; n a multiple of 16, else exact),
 * also writing the quantised new state when q is not NULL. The candidate's coordinate is one
 * FMA after r (r (8/3 rh) + (8/3 xh + 16)), and the new state one FMA after the candidate's
 * spline value s: z h + (1 - z)(2 s - 1) = (2 - 2 z) s + (z (h + 1) - 1). */
TGT static void gru_update_fast_avx512(float *h, const float *in, const float *in2,
                                       const float *in3, const float *in4, const float *rec,
                                       const float *diag, int n, uint8_t *q) {
  const SigTable t = sig_table();
  const __m512 s1 = _mm512_set1_ps(4.f / 3.f), s2 = _mm512_set1_ps(8.f / 3.f);
  const __m512 c16 = _mm512_set1_ps(16.f), two = _mm512_set1_ps(2.f), one = _mm512_set1_ps(1.f);
  int i = 0;
  const __m512 q127 = _mm512_set1_ps(127.f), qm127 = _mm512_set1_ps(-127.f);
  if (n & 15) {
    gru_update_avx512(h, in, in2, in3, in4, rec, diag, n);
    if (q) nnet_quantize_u8_avx2(q, h, n);
    return;
  }
  for (; i < n; i += 16) {
    GruPre16 g = gru_pre16(h, in, in2, in3, in4, rec, diag, n, i);
    const __m512 z = sig_spline16(&t, _mm512_fmadd_ps(g.zpre, s1, c16));
    const __m512 r = sig_spline16(&t, _mm512_fmadd_ps(g.rpre, s1, c16));
    const __m512 s = sig_spline16(&t, _mm512_fmadd_ps(r, _mm512_mul_ps(g.rh, s2),
                                                      _mm512_fmadd_ps(g.xh, s2, c16)));
    const __m512 hv = _mm512_fmadd_ps(_mm512_fnmadd_ps(two, z, two), s,
                                      _mm512_fmsub_ps(z, _mm512_add_ps(g.hv, one), one));
    _mm512_storeu_ps(h + i, hv);
    if (q) { /* as nnet_quantize_u8_avx2 */
      __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(hv, q127), qm127), q127);
      __m512i k = _mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(127));
      _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(k));
    }
  }
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

/* 15 tree nodes x 2 channels = 30 dot products of 16 as 32 lanes (4 chains per half),
 * one tanh per half, then all 15 bit decisions by one compare and a 4-step walk. */
TGT static int tree4_avx512(const float *t, const float *v, float gain, const float *thr4) {
  const __m512i lvl = _mm512_setr_epi32(0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 0);
  __m512 a0 = _mm512_load_ps(t + 16 * 32), a1 = _mm512_load_ps(t + 16 * 32 + 16);
  __m512 b0 = _mm512_setzero_ps(), b1 = b0, c0 = b0, c1 = b0, d0 = b0, d1 = b0, x;
  __mmask16 bits;
  int i, h = 1;
  for (i = 0; i < 16; i += 4) {
    const __m512 v0 = _mm512_set1_ps(v[i]), v1 = _mm512_set1_ps(v[i + 1]);
    const __m512 v2 = _mm512_set1_ps(v[i + 2]), v3 = _mm512_set1_ps(v[i + 3]);
    a0 = _mm512_fmadd_ps(v0, _mm512_load_ps(t + i * 32), a0);
    a1 = _mm512_fmadd_ps(v0, _mm512_load_ps(t + i * 32 + 16), a1);
    b0 = _mm512_fmadd_ps(v1, _mm512_load_ps(t + i * 32 + 32), b0);
    b1 = _mm512_fmadd_ps(v1, _mm512_load_ps(t + i * 32 + 48), b1);
    c0 = _mm512_fmadd_ps(v2, _mm512_load_ps(t + i * 32 + 64), c0);
    c1 = _mm512_fmadd_ps(v2, _mm512_load_ps(t + i * 32 + 80), c1);
    d0 = _mm512_fmadd_ps(v3, _mm512_load_ps(t + i * 32 + 96), d0);
    d1 = _mm512_fmadd_ps(v3, _mm512_load_ps(t + i * 32 + 112), d1);
  }
  a0 = _mm512_add_ps(_mm512_add_ps(a0, b0), _mm512_add_ps(c0, d0));
  a1 = _mm512_add_ps(_mm512_add_ps(a1, b1), _mm512_add_ps(c1, d1));
  x = _mm512_add_ps(_mm512_mul_ps(_mm512_load_ps(t + 17 * 32), tanh16(a0)),
                    _mm512_mul_ps(_mm512_load_ps(t + 17 * 32 + 16), tanh16(a1)));
  bits = _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_set1_ps(gain), x),
                            _mm512_permutexvar_ps(lvl, _mm512_castps128_ps512(_mm_loadu_ps(thr4))),
                            _CMP_GT_OQ);
  for (i = 0; i < 4; i++) h = 2 * h + ((bits >> (h - 1)) & 1);
  return h - 16;
}

const NNetKernels nnet_kernels_avx512 = {
    .level = LPCNET_SIMD_AVX512,
    .sgemv_accum = sgemv_accum_avx512,
    .sgemm_accum = sgemm_accum_avx512,
    .sparse_sgemv_accum = sparse_sgemv_accum_avx512,
    .sparse_i8_accum = sparse_i8_accum_vnni,
    .sparse_i8_accum_even = sparse_i8_accum_even_vnni,
    .sparse_i8_accum_multi = sparse_i8_accum_multi_vnni,
    .dense_i8_accum = dense_i8_accum_vnni,
    .dense_i8_accum_multi = dense_i8_accum_multi_vnni,
    .vec_sigmoid = vec_sigmoid_avx512,
    .vec_tanh = vec_tanh_avx512,
    .gru_update = gru_update_avx512,
    .gru_update_fast = gru_update_fast_avx512,
    .quantize_u8 = nnet_quantize_u8_avx2,
    .mdense_units = nnet_mdense_units_avx2,
    .tree4 = tree4_avx512,
};
#endif
