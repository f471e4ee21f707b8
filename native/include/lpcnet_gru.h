/* Fused GRU recurrence for training (Keras GRU, reset_after=True, sigmoid/tanh).
 *
 * The input projection x.W + b_in of all T steps is computed outside (one large
 * matmul in TensorFlow); these kernels run only the serial part, for a whole batch
 * of sequences, forward and backward, so one call replaces T small TensorFlow ops.
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

/* The LPCNET_SIMD_* level of the kernels in use: LPCNET_SIMD_AVX512_BF16 (4), LPCNET_SIMD_AVX512
 * (3) or LPCNET_SIMD_SCALAR (0); there are no AVX2 kernels (level 2 runs the portable C). */
int lpcnet_gru_simd_level(void);
/* Force a LPCNET_SIMD_* level (LPCNET_SIMD_AUTO = the best; capped at what the CPU has);
 * returns the level now in use. */
int lpcnet_gru_set_simd_level(int level);

#endif
