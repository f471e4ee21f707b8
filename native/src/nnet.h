/* Neural-network kernels of the synthesiser: scalar reference + SIMD variants.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#ifndef LPCNET_NNET_H
#define LPCNET_NNET_H

#include <stdint.h>

/* Block-sparse matrices (docs/weights-format.md): for each group of 8 output
 * columns, idx holds a count then the first input row of each 4x8 block; float
 * blocks are 4 rows of 8, int8 blocks 8 outputs of 4 consecutive inputs. */
#define NNET_BLOCK_ROWS 4
#define NNET_BLOCK_COLS 8
/* floats per 4-level sampling subtree table (tree4) */
#define NNET_TREE_STRIDE (18 * 32)

/** One set of kernels; every SIMD table has the same semantics as the scalar one. */
typedef struct {
  int level; /* 0 scalar, 2 AVX2/FMA, 3 AVX-512 */
  /* out[j] += sum_i x[i] w[i*cols + j], w row-major (rows = inputs) */
  void (*sgemv_accum)(float *out, const float *w, int rows, int cols, const float *x);
  /* out[8g + c] = (bias ? bias : out)[8g + c] + block-sparse product, ngroups groups of 8 */
  void (*sparse_sgemv_accum)(float *out, const float *bias, const float *w, const int32_t *idx,
                             int ngroups, const float *x);
  /* the same with scale * sum q * xq, xq unsigned (x quantised as 127 x + 127) */
  void (*sparse_i8_accum)(float *out, const float *bias, const int8_t *w, const int32_t *idx,
                          int ngroups, const uint8_t *x, float scale);
  /* the same when every group's block count is even and >= 2 (padded with zero blocks);
   * NULL where the general kernel is as fast (the padding would only add work) */
  void (*sparse_i8_accum_even)(float *out, const float *bias, const int8_t *w, const int32_t *idx,
                               int ngroups, const uint8_t *x, float scale);
  void (*vec_sigmoid)(float *y, const float *x, int n);
  void (*vec_tanh)(float *y, const float *x, int n);
  /* reset_after GRU update (spec C.3): the 3n input sums are in (+ in2 + in3 + in4 when
   * in2 is not NULL), rec the 3n recurrent sums (gates z, r, h); diag (3n, may be NULL)
   * adds diag * h to rec first; h is updated in place */
  void (*gru_update)(float *h, const float *in, const float *in2, const float *in3,
                     const float *in4, const float *rec, const float *diag, int n);
  /* out = 127 + round(127 x), x in [-1, 1] */
  void (*quantize_u8)(uint8_t *out, const float *x, int n);
  /* pre-sigmoid dual-FC outputs of `count` (<= 4) units: out[j] = sum_c f[u,c] tanh(b[u,c] +
   * w[u,c,:] . v), u = units[j]; w (units, 2, n), b and f (units, 2) */
  /* out[8g + c] += scale * dense int8 product; w (rows4, ngroups, 8, 4); NULL if absent */
  void (*dense_i8_accum)(float *out, const int8_t *w, int rows4, int ngroups, const uint8_t *x,
                         float scale);
  void (*mdense_units)(const float *w, const float *b, const float *f, const float *v, int n,
                       const int *units, int count, float *out);
  /* Four levels of the sampling tree at once (16 GRU B units only; NULL if absent): t is
   * one subtree table (NNET_TREE_STRIDE floats, 64-byte aligned; rows 0-15: input i's
   * weights, row 16 the biases, row 17 the output factors; lane j < 15 is channel 0 of
   * the subtree's node j + 1 in heap order, lane 16 + j its channel 1). Bit of node h is
   * gain * x_h > thr4[level of h]; returns the 4 bits of the path taken, MSB first. */
  int (*tree4)(const float *t, const float *v, float gain, const float *thr4);
  /* gru_update with faster, approximate activations (max error ~4e-5) for the int8
   * engine, and when q is not NULL quantize_u8(q, h, n) of the new state; NULL where there
   * is none (gru_update then quantize_u8 are used) */
  void (*gru_update_fast)(float *h, const float *in, const float *in2, const float *in3,
                          const float *in4, const float *rec, const float *diag, int n,
                          uint8_t *q);
} NNetKernels;

extern const NNetKernels nnet_kernels_c;
#if defined(__x86_64__) || defined(__i386__)
#define NNET_HAVE_X86 1
extern const NNetKernels nnet_kernels_avx2;
extern const NNetKernels nnet_kernels_avx512;
/* shared by the AVX2 and AVX-512 tables (the float blocks are 8 wide) */
void nnet_sparse_sgemv_accum_avx2(float *out, const float *bias, const float *w,
                                  const int32_t *idx, int ngroups, const float *x);
void nnet_gru_update_avx2_from(float *h, const float *in, const float *in2, const float *in3,
                               const float *in4, const float *rec, const float *diag, int n, int i0);
void nnet_gru_update_avx2(float *h, const float *in, const float *in2, const float *in3,
                          const float *in4, const float *rec, const float *diag, int n);
void nnet_quantize_u8_avx2(uint8_t *out, const float *x, int n);
void nnet_mdense_units_avx2(const float *w, const float *b, const float *f, const float *v, int n,
                            const int *units, int count, float *out);
#endif

/** Best kernels for this CPU, or the requested level clamped to what it supports (-1 = best). */
const NNetKernels *nnet_select(int level);

/* Scalar exp approximation shared by all levels (Cephes-style, ~1 ulp on [-87, 87]). */
static inline float nnet_expf(float x) {
  float fx, y, z;
  union { float f; int32_t i; } u;
  int32_t n;
  if (x != x) return x; /* NaN: no float -> int conversion */
  x = x > 87.f ? 87.f : (x < -87.f ? -87.f : x);
  fx = x * 1.44269504088896341f;
  fx = (float)(int32_t)(fx + (fx >= 0.f ? 0.5f : -0.5f));
  n = (int32_t)fx;
  x = x - fx * 0.693359375f;
  x = x - fx * -2.12194440e-4f;
  z = x * x;
  y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.f;
  u.i = (n + 127) << 23;
  return y * u.f;
}

static inline float nnet_sigmoid(float x) { return 1.f / (1.f + nnet_expf(-x)); }

static inline float nnet_tanh(float x) {
  float e = nnet_expf(2.f * x);
  return (e - 1.f) / (e + 1.f);
}

#endif
