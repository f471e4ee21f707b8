/* Kernels of the fused training GRU (gru_train.c): one table per SIMD level and the scalar
 * references. Layouts: include/lpcnet_gru.h; packed weight panels: below.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#ifndef LPCNET_GRU_KERNELS_H
#define LPCNET_GRU_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

/* Weights are packed in panels of 16 columns (gru_pack_panels). */
#define PANEL 16

/** P[jp][k][c] = M(k, jp*16 + c) with M(k, j) = base[k*sk + j*sj], k < K, zero for j >= N
 * (N rounded up to 16 columns). */
void gru_pack_panels(const float *base, size_t sk, size_t sj, int K, int N, float *P);
/** The same as bfloat16 pairs along k: P[jp][kk][c] = (M(2kk, j) low half, M(2kk+1, j) high
 * half), zero past N and past K; the operand layout of vdpbf16ps. */
void gru_pack_panels_bf16(const float *base, size_t sk, size_t sj, int K, int N, uint32_t *P);

/* Y (nb x Np) = bias (NULL: 0) + X . P, X rows of K floats (row stride ldx), P packed. */
typedef void (*matmul_fn)(int nb, int K, int Np, const float *X, size_t ldx, const float *P,
                          const float *bias, float *Y, size_t ldy);
/* The same with bfloat16 pairs along k (Kp = K/2 rounded up; the low half holds the even k)
 * for Xp (nb x Kp) and P (panels of Kp pairs), float32 sums. */
typedef void (*matmul_bf16_fn)(int nb, int Kp, int Np, const uint32_t *Xp, const uint32_t *P,
                               const float *bias, float *Y, size_t ldy);
/* One step's gates of one sequence: hr = h . U + b_rec (3H); writes the new state and the
 * cache [z, r, n, hr_n] (4H) (include/lpcnet_gru.h). */
typedef void (*fwd_gates_fn)(int H, const float *xp, const float *hr, const float *hprev,
                             float *hnew, float *cache);
/* Backward of fwd_gates given dh = dL/dh_new: dxp (3H), dhn (H), dhr = dL/dhr (3H) and
 * dhz = dL/dh_prev through the z h term (H). */
typedef void (*bwd_gates_fn)(int H, const float *dh, const float *hprev, const float *cache,
                             float *dxp, float *dhn, float *dhr, float *dhz);

/* Rows X (nb x K, row stride ldx) -> bfloat16 pairs Xp (nb x Kp, Kp = K/2 rounded up; the odd
 * tail's high half 0), rounded to nearest even as gru_to_bf16 (the SIMD level flushes
 * denormal inputs to zero, as vcvtneps2bf16 does). */
typedef void (*to_bf16_fn)(int nb, int K, const float *X, size_t ldx, uint32_t *Xp);
/* dst (n) = src[0] + src[1] + ... + src[nsrc - 1], added in that order (every level alike). */
typedef void (*sum_rows_fn)(int n, int nsrc, const float *const *src, float *dst);
/* dst[i][0..n) += src[0..n) for every i < ndst. */
typedef void (*add_to_rows_fn)(int n, const float *src, int ndst, float *const *dst);

/* Gaussian noise N(0, stddev^2) into out[0..n) from the counter-based stream `state`
 * (lpcnet_gru.h, lpcnet_normal_noise): pair 16k + j (j < 16) of block k fills
 * out[32k + j] = r cos(theta) and out[32k + 16 + j] = r sin(theta). */
typedef void (*normal_fill_fn)(float *out, size_t n, uint64_t state, float stddev);

/* Dual fully-connected layer of the output head (docs/model.md, MDense), one sample: with
 * Kp (C, D, U) = the kernel (U, D, C) transposed, bias_t and factor_t (C, U):
 *   t[c][u] = tanh(sum_d v[d] Kp[c][d][u] + bias_t[c][u]),  q[u] = sigmoid(sum_c factor_t[c][u] t[c][u]).
 * Writes t (C, U) and q (U). */
typedef void (*head_fwd_fn)(int D, int U, int C, const float *v, const float *Kp, const float *bias_t,
                            const float *factor_t, float *t, float *q);
/* Its backward for nb samples (v: nb rows of D; t: nb of C U; q, dq = dL/dq: nb of U): adds
 * into dKp (C, D, U), dbias_t, dfactor_t (C, U) and writes dv (nb rows of D); da (nb C U) is
 * scratch. */
typedef void (*head_bwd_fn)(int nb, int D, int U, int C, const float *v, const float *Kp,
                            const float *factor_t, const float *t, const float *q, const float *dq,
                            float *dv, float *dKp, float *dbias_t, float *dfactor_t, float *da);

typedef struct {
    int level;                  /* LPCNET_SIMD_* */
    matmul_fn matmul;
    fwd_gates_fn fwd_gates;
    bwd_gates_fn bwd_gates;
    sum_rows_fn sum_rows;
    add_to_rows_fn add_to_rows;
    matmul_bf16_fn matmul_bf16; /* NULL: no bfloat16 products at this level */
    to_bf16_fn to_bf16;         /* with matmul_bf16 */
    normal_fill_fn normal_fill;
    head_fwd_fn head_fwd;       /* U a multiple of 16 at the SIMD levels */
    head_bwd_fn head_bwd;
    int max_rows;               /* rows per matmul call */
} GruKernels;

/** Scalar references of every slot (none NULL): what the tests compare each level with. */
extern const GruKernels gru_kernels_ref;

/** The best table at or below `level` (LPCNET_SIMD_AUTO: the best for this CPU). At
 * LPCNET_SIMD_SCALAR the bf16 flag is ignored (float32 products), as documented in
 * include/lpcnet_gru.h. */
const GruKernels *gru_select(int level);

/** float -> bfloat16, round to nearest even (as TensorFlow's cast), NaN kept quiet. */
static inline uint16_t gru_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* SplitMix64's output function (Steele, Lea, Flood 2014). */
static inline uint64_t gru_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The 64 random bits of Box-Muller pair i of the stream `state`. */
static inline uint64_t gru_pair_bits(uint64_t state, uint64_t i)
{
    return gru_mix64(state + (i + 1) * 0x9E3779B97F4A7C15ull);
}

static inline float gru_from_bf16(uint32_t b)
{
    uint32_t u = (b & 0xffffu) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
