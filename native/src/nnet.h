/* Neural-network kernels of the synthesiser: kernel tables per SIMD level, scalar references,
 * and the weight layouts some kernels read (built once when a model is loaded).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#ifndef LPCNET_NNET_H
#define LPCNET_NNET_H

#include <stdint.h>

#include "simd.h"

/* Block-sparse matrices (docs/weights-format.md): for each group of 8 output
 * columns, idx holds a count then the first input row of each 4x8 block; float
 * blocks are 4 rows of 8, int8 blocks 8 outputs of 4 consecutive inputs. */
#define NNET_BLOCK_ROWS 4
#define NNET_BLOCK_COLS 8
#define NNET_BLOCK_SIZE (NNET_BLOCK_ROWS * NNET_BLOCK_COLS)
/* int8 products: the state is quantised to u = 127 + round(127 h) and the weights to
 * q = round(128 w), so sum q u / (128 x 127) is the float product (docs/weights-format.md). */
#define NNET_I8_SCALE (1.f / (128.f * 127.f))
/* floats per 4-level sampling subtree table (tree4) */
#define NNET_TREE_STRIDE (18 * 32)
/* the 17 subtree tables of the 8-level sampling tree: one for levels 0-3, 16 for 4-7 */
#define NNET_TREE_TABLES 17

/** One kernel table per SIMD level; every slot of a SIMD table computes what the same slot
 * of nnet_kernels_ref computes (to the tolerances of native/tests/test_kernels.c). */
typedef struct {
  int level; /* LPCNET_SIMD_* */
  /* out[j] += sum_i x[i] w[i*cols + j], w row-major (rows = inputs) */
  void (*sgemv_accum)(float *out, const float *w, int rows, int cols, const float *x);
  /* sgemv_accum of n vectors x + v ldx into out + v ldo, the weights read once for several
   * vectors; each vector's result is bit-identical to sgemv_accum of the same table (same
   * operations in the same order), so batching never changes a result */
  void (*sgemm_accum)(float *out, int ldo, const float *w, int rows, int cols, const float *x,
                      int ldx, int n);
  /* out[8g + c] = (bias ? bias : out)[8g + c] + block-sparse product, ngroups groups of 8 */
  void (*sparse_sgemv_accum)(float *out, const float *bias, const float *w, const int32_t *idx,
                             int ngroups, const float *x);
  /* the same with scale * sum q * xq, xq unsigned (x quantised as 127 x + 127) */
  void (*sparse_i8_accum)(float *out, const float *bias, const int8_t *w, const int32_t *idx,
                          int ngroups, const uint8_t *x, float scale);
  /* the same when every group's block count is even and >= 2 (nnet_pad_even_i8); NULL where
   * the general kernel is as fast (the padding would only add work) */
  void (*sparse_i8_accum_even)(float *out, const float *bias, const int8_t *w, const int32_t *idx,
                               int ngroups, const uint8_t *x, float scale);
  /* sparse_i8_accum of k streams at once, the weights read once (NULL if absent): stream s's
   * result out + s ldo (init: bias + s ldb, or the output itself if bias is NULL) is
   * bit-identical to the same table's sparse_i8_accum (and _even) on stream s's state; xe
   * holds the k states in the nnet_expand_u8 layout, idx / w a block list (padded lists too) */
  void (*sparse_i8_accum_multi)(float *out, int ldo, const float *bias, int ldb, const int8_t *w,
                                const int32_t *idx, int ngroups, const uint8_t *xe, int k,
                                float scale);
  /* out[8g + c] += scale * dense int8 product of groups 0..ngroups-1; w (rows4, gstride, 8, 4)
   * (gstride >= ngroups groups per row quad) as made by nnet_dense_i8_from_blocks; NULL if
   * absent */
  void (*dense_i8_accum)(float *out, const int8_t *w, int rows4, int ngroups, int gstride,
                         const uint8_t *x, float scale);
  /* dense_i8_accum of k streams at once (the weights read once): out[s] and x[s] are stream
   * s's outputs and state; bit-identical to the same table's dense_i8_accum on each stream;
   * NULL if absent */
  void (*dense_i8_accum_multi)(float *const *out, const int8_t *w, int rows4, int ngroups,
                               int gstride, const uint8_t *const *x, int k, float scale);
  void (*vec_sigmoid)(float *y, const float *x, int n);
  void (*vec_tanh)(float *y, const float *x, int n);
  /* reset_after GRU update (docs/native.md): the 3n input sums are in (+ in2 + in3 + in4
   * when in2 is not NULL), rec the 3n recurrent sums (gates z, r, h); diag (3n, may be NULL)
   * adds diag * h to rec first; h is updated in place */
  void (*gru_update)(float *h, const float *in, const float *in2, const float *in3,
                     const float *in4, const float *rec, const float *diag, int n);
  /* gru_update with the spline sigmoid / tanh of nnet_sig_spline (max error 4.3e-5), for
   * the int8 engine, and when q is not NULL quantize_u8(q, h, n) of the new state; NULL
   * where there is none (gru_update then quantize_u8 are used) */
  void (*gru_update_fast)(float *h, const float *in, const float *in2, const float *in3,
                          const float *in4, const float *rec, const float *diag, int n,
                          uint8_t *q);
  /* out = 127 + round(127 x), x in [-1, 1] */
  void (*quantize_u8)(uint8_t *out, const float *x, int n);
  /* pre-sigmoid dual-FC outputs of `count` (<= 4) units: out[j] = sum_c f[u,c] tanh(b[u,c] +
   * w[u,c,:] . v), u = units[j]; w (units, 2, n), b and f (units, 2) */
  void (*mdense_units)(const float *w, const float *b, const float *f, const float *v, int n,
                       const int *units, int count, float *out);
  /* Four levels of the sampling tree at once (16 GRU B units only; NULL if absent): t is
   * one subtree table of nnet_tree4_tables (NNET_TREE_STRIDE floats, 64-byte aligned). The
   * bit of node h is gain * x_h > thr4[level of h], x_h its mdense_units output; returns
   * the 4 bits of the path taken, MSB first. */
  int (*tree4)(const float *t, const float *v, float gain, const float *thr4);
} NNetKernels;

/** Scalar references of every slot (none NULL): what the tests compare each level with. */
extern const NNetKernels nnet_kernels_ref;
/** What the engine runs at LPCNET_SIMD_SCALAR: nnet_kernels_ref without the six fast paths
 * (sparse_i8_accum_even, sparse_i8_accum_multi, dense_i8_accum, dense_i8_accum_multi,
 * gru_update_fast, tree4),
 * which in scalar code would only add work (padding, layouts) or change results (spline
 * activations). */
extern const NNetKernels nnet_kernels_c;
#ifdef SIMD_X86
extern const NNetKernels nnet_kernels_avx2;
extern const NNetKernels nnet_kernels_avx512;
/* AVX2 kernels the AVX-512 table reuses (nnet_avx2.c) */
void nnet_gru_update_avx2_from(float *h, const float *in, const float *in2, const float *in3,
                               const float *in4, const float *rec, const float *diag, int n, int i0);
void nnet_quantize_u8_avx2(uint8_t *out, const float *x, int n);
void nnet_mdense_units_avx2(const float *w, const float *b, const float *f, const float *v, int n,
                            const int *units, int count, float *out);
#endif

/** The best table at or below `level` (LPCNET_SIMD_AUTO: the best for this CPU). */
const NNetKernels *nnet_select(int level);

/* --- weight and state layouts of the fast-path kernels ------------------------------------ */
/* Expanded quantised states of k streams (sparse_i8_accum_multi): the 4 bytes of rows
 * 4r..4r+3 of stream s, repeated 8 times (one per output of a 4x8 block), at
 * xe + NNET_XE_BYTES (r kp + s), kp = nnet_xe_streams(k); a pad stream (k odd) reads zeros. */
#define NNET_XE_BYTES 32
static inline int nnet_xe_streams(int k) { return k + (k & 1); }
/** Write stream s's quantised state q (rows bytes, rows a multiple of 4) into xe. */
void nnet_expand_u8(uint8_t *xe, const uint8_t *q, int rows, int s, int k);

/** Block count of a group after padding for sparse_i8_accum_even: even and >= 2. */
static inline int nnet_even_blocks(int count) { return count < 2 ? 2 : count + (count & 1); }
/** Blocks of ngroups groups after padding (the padded idx has ngroups more entries). */
long nnet_padded_blocks(const int32_t *idx, int ngroups);
/** Copy an int8 block list with every group padded by zero blocks (row 0) to
 * nnet_even_blocks(count) blocks: the same sums, for sparse_i8_accum_even. */
void nnet_pad_even_i8(const int32_t *idx, const int8_t *wq, int ngroups, int32_t *pidx,
                      int8_t *pwq);
/** 1 if every group stores all rows / 4 blocks in row order (a dense matrix), else 0. */
int nnet_blocks_are_dense(const int32_t *idx, int rows, int ngroups);
/** The int8 blocks of such a matrix in panels of `panel` groups (the last may hold fewer), each
 * in the dense_i8_accum layout (rows4, groups of the panel, 8, 4): panel p starts at
 * dense + p rows4 panel NNET_BLOCK_SIZE and is read with gstride = panel (a product of a
 * panel's groups then streams through contiguous memory). panel = ngroups: one panel. */
void nnet_dense_i8_from_blocks(const int8_t *wq, int rows4, int ngroups, int panel, int8_t *dense);
/** Groups per panel of GRU A's dense int8 copy (one pass of the AVX-512 dense product). */
#define NNET_DENSE_PANEL 12
/** The NNET_TREE_TABLES subtree tables of the dual FC for tree4 (16 GRU B units): table 0 is
 * rooted at node 1 (levels 0-3), table 1 + p at node 16 + p (levels 4-7). Per table, rows
 * 0-15: input i's weights, row 16 the biases, row 17 the output factors; lane j < 15 is
 * channel 0 of the subtree's node j + 1 in heap order, lane 16 + j its channel 1. */
void nnet_tree4_tables(const float *md_w, const float *md_b, const float *md_f, float *t);

/* Cubic spline of the sigmoid on [-12, 12) in 32 pieces (coefficients c0..c3 of
 * c0 + c1 f + c2 f^2 + c3 f^3, f in [0, 1) the position in the piece; least-squares fits),
 * clamped outside; max error 2.2e-5 (tanh(x) = 2 sigmoid(2x) - 1: 4.3e-5), far below the
 * int8 weights' resolution. The spline coordinate of x is u = 16 + x * 4/3. */
extern const float nnet_sig_spline[4][32];

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

/* Pre-activations of GRU unit i (gru_update's arguments): the z and r gate sums (input +
 * recurrent, the diagonal included) and the candidate's input sum xh and recurrent sum rh. */
typedef struct {
  float z, r, xh, rh;
} NNetGruPre;

static inline NNetGruPre nnet_gru_pre(const float *h, const float *in, const float *in2,
                                      const float *in3, const float *in4, const float *rec,
                                      const float *diag, int n, int i) {
  NNetGruPre p;
  float rz = rec[i], rr = rec[n + i], xz = in[i], xr = in[n + i];
  p.xh = in[2 * n + i];
  p.rh = rec[2 * n + i];
  if (in2) {
    xz += in2[i] + in3[i] + in4[i];
    xr += in2[n + i] + in3[n + i] + in4[n + i];
    p.xh += in2[2 * n + i] + in3[2 * n + i] + in4[2 * n + i];
  }
  if (diag) {
    rz += diag[i] * h[i];
    rr += diag[n + i] * h[i];
    p.rh += diag[2 * n + i] * h[i];
  }
  p.z = xz + rz;
  p.r = xr + rr;
  return p;
}

/* Unit i of the reference gru_update: h = z h + (1 - z) tanh(xh + r rh). */
static inline void nnet_gru_unit(float *h, const float *in, const float *in2, const float *in3,
                                 const float *in4, const float *rec, const float *diag, int n,
                                 int i) {
  const NNetGruPre p = nnet_gru_pre(h, in, in2, in3, in4, rec, diag, n, i);
  const float z = nnet_sigmoid(p.z), r = nnet_sigmoid(p.r);
  h[i] = z * h[i] + (1.f - z) * nnet_tanh(p.xh + r * p.rh);
}

#endif
