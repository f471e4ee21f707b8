/* Fused GRU recurrence for training (Keras GRU, reset_after=True, sigmoid/tanh).
 *
 * The input projection x.W + b_in of all T steps is computed outside (one large
 * matmul in TensorFlow, or in parts: embedding tables and frame projections, summed
 * here per step); these kernels run only the serial part, for a whole batch of
 * sequences, forward and backward, so one call replaces T small TensorFlow ops.
 *
 * Per step t, for each sequence b (gate order z, r, n as in Keras):
 *   hr = h . U + b_rec                        (3H)
 *   z  = sigmoid(xp_z + hr_z)
 *   r  = sigmoid(xp_r + hr_r)
 *   n  = tanh(xp_n + r * hr_n)
 *   h' = z * h + (1 - z) * n
 *
 * Layouts (row-major float32): xp (B, T, 3H), U (H, 3H), b_rec (3H), h0 (B, H),
 * h_out (B, T, H), cache (B, T, 4H) = [z, r, n, hr_n] per step (forward -> backward).
 * Sequences are independent, so rows are split over `threads` POSIX threads.
 *
 * bf16 != 0 (mixed-precision training): the per-step products h . U and dL/dhr . U^T
 * take bfloat16 operands (rounded to nearest even, as a bfloat16 Keras GRU would) with
 * float32 sums (AVX512-BF16 vdpbf16ps); gates and states stay float32. Ignored (float32
 * products) where the CPU lacks AVX512-BF16.
 */
#ifndef LPCNET_GRU_H
#define LPCNET_GRU_H

#include "lpcnet.h"

/* Input projections given in parts (the embedding fold of training, docs/training.md):
 *   xp[b,t] = xp[b,t] (if xp) + sum_j tables[j][codes[b,t,j]] + frames[b, t / frame_size] (if frames)
 * added in that order; tables (ncodes, levels, 3H), codes (B, T, ncodes) int32 in [0, levels),
 * frames (B, nframes, 3H) with nframes * frame_size >= T. At least one part is given. */
#define LPCNET_GRU_MAX_CODES 6
typedef struct {
  const float *xp;        /* (B, T, 3H) or NULL */
  int ncodes, levels;     /* 0 .. LPCNET_GRU_MAX_CODES code slots, table rows per slot */
  const int32_t *codes;   /* (B, T, ncodes) */
  const float *tables;    /* (ncodes, levels, 3H) */
  int frame_size, nframes;
  const float *frames;    /* (B, nframes, 3H) or NULL */
} LpcnetGruInput;

/* Forward over T steps from inputs in parts. hprev_bf16 (B, T, 2 ceil(H/2)) or NULL: the
 * states h_prev(t) (h0, then h_out(t - 1)) rounded to bfloat16, rows padded to an even
 * length with 0 (the bf16 operand of dL/dU outside). Returns 0, or -1 for bad sizes, a code
 * out of range, or out of memory. */
int lpcnet_gru_forward_parts(int B, int T, int H, const LpcnetGruInput *in, const float *U,
                             const float *b_rec, const float *h0, float *h_out, float *cache,
                             uint16_t *hprev_bf16, int threads, int bf16);

/* Backward (BPTT) of lpcnet_gru_forward_parts, `in` as given to it (its xp is not read).
 * Writes dL/dxp into the parts: dxp (B, T, 3H) when not NULL (the whole projection's
 * gradient, also the xp part's), dtables (ncodes, levels, 3H) = sums of dL/dxp over the
 * steps of each code, dframes (B, nframes, 3H) = sums over each frame's steps; and
 * dhr (B, T, 3H) = dL/dhr = [dz_pre, dr_pre, dn_pre * r] (for dL/dU = sum_t h_prev^T dhr
 * outside) and/or dhr_bf16 (B, T, 2 ceil(3H/2)), the same rounded to bfloat16 (rows padded
 * with 0; either may be NULL, not both), db_rec (3H) = dL/db_rec, dh0 (B, H). dtables and
 * db_rec are sums over the sequences: with several threads, in a fixed order for a given
 * thread count. */
int lpcnet_gru_backward_parts(int B, int T, int H, const LpcnetGruInput *in, const float *dh_out,
                              const float *h_out, const float *h0, const float *cache,
                              const float *U, float *dxp, float *dtables, float *dframes,
                              float *dhr, uint16_t *dhr_bf16, float *db_rec, float *dh0, int threads,
                              int bf16);

/* Forward over T steps. Returns 0, or -1 for bad sizes / out of memory. */
int lpcnet_gru_forward(int B, int T, int H, const float *xp, const float *U, const float *b_rec,
                       const float *h0, float *h_out, float *cache, int threads, int bf16);

/* Backward (BPTT) given dh_out = dL/dh_out (B, T, H). Writes
 *   dxp (B, T, 3H) = dL/dxp = [dz_pre, dr_pre, dn_pre],
 *   dhn (B, T, H)  = dL/dhr_n = dn_pre * r  (so dL/dhr = [dz_pre, dr_pre, dhn]),
 *   dh0 (B, H)     = dL/dh0.
 * dL/dU = sum_t h_prev(t)^T . dL/dhr(t) and dL/db_rec are left to one large matmul
 * outside. Returns 0, or -1 for bad sizes / out of memory. */
int lpcnet_gru_backward(int B, int T, int H, const float *dh_out, const float *h_out,
                        const float *h0, const float *cache, const float *U, float *dxp,
                        float *dhn, float *dh0, int threads, int bf16);

/* Gaussian noise for training (layers.FastGaussianNoise): out[0..n) = N(0, stddev^2) draws of
 * the stream `seed`. Counter-based: pair i takes the 64 bits SplitMix64(mix(seed) + (i + 1) G)
 * (G = 0x9E3779B97F4A7C15), u1 = (bits 40..63 + 1/2) / 2^24, u2 = bits 16..39 / 2^24,
 * r = stddev sqrt(-2 ln u1), theta = 2 pi u2; pair 16k + j (j < 16) writes out[32k + j] =
 * r cos(theta), out[32k + 16 + j] = r sin(theta). |draws| <= 5.9 stddev. The SIMD levels
 * agree with the scalar one to float rounding (their own log / sincos polynomials). */
void lpcnet_normal_noise(float *out, size_t n, uint64_t seed, float stddev);

/* Output head of training (layers.MDense -> layers.TreeToPdf -> Keras' sparse categorical
 * cross-entropy, docs/training.md), N samples of D inputs, U = 2^depth units, C channels:
 *   q[u]  = sigmoid(sum_c factor[u][c] tanh(sum_d v[d] K[u][d][c] + bias[u][c]))
 *   pdf   = the binary tree of q[1..U-1] (docs/model.md), computed level by level as TreeToPdf
 *   loss  = log(sum_v clip(pdf[v])) - log(clip(pdf[y])), clip to [eps, 1 - eps]
 * v (N, D), K (U, D, C), bias and factor (U, C) as Keras stores them, target (N) in [0, U).
 * pdf (N, U) may be NULL. With dv non-NULL it also writes the gradients of sum_n loss[n]
 * (those of lpcnet_tree_head_backward for dloss = 1, dpdf = 0): one pass where a training step's
 * loss is the mean. Returns 0, or -1 for bad sizes, a target out of range or out of memory. */
int lpcnet_tree_head_forward(int N, int D, int U, int C, const float *v, const float *K,
                             const float *bias, const float *factor, const int32_t *target, float eps,
                             float *pdf, float *loss, float *dv, float *dK, float *dbias, float *dfactor,
                             int threads);
/* Backward given dloss (N) = dL/dloss and dpdf (N, U) = dL/dpdf (or NULL: 0): writes dv (N, D),
 * dK, dbias, dfactor (the weight gradients summed over the samples). */
int lpcnet_tree_head_backward(int N, int D, int U, int C, const float *v, const float *K,
                              const float *bias, const float *factor, const int32_t *target, float eps,
                              const float *dloss, const float *dpdf, float *dv, float *dK, float *dbias,
                              float *dfactor, int threads);

/* The LPCNET_SIMD_* level of the kernels in use: LPCNET_SIMD_AVX512_BF16 (4), LPCNET_SIMD_AVX512
 * (3) or LPCNET_SIMD_SCALAR (0); there are no AVX2 kernels (level 2 runs the portable C). */
int lpcnet_gru_simd_level(void);
/* Force a LPCNET_SIMD_* level (LPCNET_SIMD_AUTO = the best; capped at what the CPU has);
 * returns the level now in use. */
int lpcnet_gru_set_simd_level(int level);

#endif
