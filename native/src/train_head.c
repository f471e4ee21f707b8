/* Output head of training in one pass per sample: dual FC -> probability tree -> cross-entropy.
 *
 * See include/lpcnet_gru.h (lpcnet_tree_head_forward) for the maths. The dual FC runs in the
 * kernels of gru_kernels.c (head_fwd / head_bwd, chosen at run time); the tree, the loss and
 * their gradients are one C code at every level (compiled twice: generic and AVX-512). Samples
 * are split over threads; the weight gradients are summed per thread, then in thread order.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gru_kernels.h"
#include "lpcnet_gru.h"
#include "row_threads.h"

int lpcnet_gru_simd_level(void);

typedef struct {
    int N, D, U, C, depth, row0, row1, status;
    const GruKernels *k;
    const float *v, *Kp, *bias_t, *factor_t, *dloss, *dpdf;
    const int32_t *target;
    float eps;
    float *pdf, *loss;                          /* outputs or NULL */
    float *dv, *dKp, *dbias_t, *dfactor_t;      /* gradients or NULL; dKp.. are this job's sums */
} head_job;

/* Samples per block of the backward pass (the dual FC's weight gradients are summed per block). */
#define HEAD_BLOCK 16
/* Inlined also into the AVX-512 copy of head_rows below, so that it is compiled for that target. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Tree levels of one sample: P + 2^(b+1) - 2 holds the 2^(b+1) prefix probabilities after
 * bit b (MSB first), P_{b+1}[2p + bit] = P_b[p] (bit ? q : 1 - q) with q = q[2^b + p]. */
ALWAYS_INLINE void tree_levels(int depth, const float *q, float *P)
{
    P[0] = 1.0f - q[1];
    P[1] = q[1];
    for (int b = 1; b < depth; b++) {
        const float *prev = P + (1 << b) - 2, *qb = q + (1 << b);
        float *next = P + (2 << b) - 2;
        for (int p = 0; p < (1 << b); p++) {
            next[2 * p] = prev[p] * (1.0f - qb[p]);
            next[2 * p + 1] = prev[p] * qb[p];
        }
    }
}

/* dL/dq (U; q[0] is not a node) from dL/dleaves, down the levels of tree_levels. */
ALWAYS_INLINE void tree_backward(int depth, const float *q, const float *P, float *dP, float *dq)
{
    dq[0] = 0.0f;
    for (int b = depth - 1; b >= 0; b--) {
        const float *dnext = dP + (2 << b) - 2, *qb = q + (1 << b);
        float *dqb = dq + (1 << b);
        if (b == 0) {
            dqb[0] = dnext[1] - dnext[0];
            break;
        }
        const float *prev = P + (1 << b) - 2;
        float *dprev = dP + (1 << b) - 2;
        for (int p = 0; p < (1 << b); p++) {
            dqb[p] = (dnext[2 * p + 1] - dnext[2 * p]) * prev[p];
            dprev[p] = dnext[2 * p] * (1.0f - qb[p]) + dnext[2 * p + 1] * qb[p];
        }
    }
}

ALWAYS_INLINE float clip(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

/* Keras' sparse categorical cross-entropy on probabilities: clip to [eps, 1 - eps], log, softmax
 * cross-entropy = log(sum clip(P)) - log(clip(P[y])) (the sum in 16 interleaved partial sums,
 * then in order: the same at every level). With dL/dloss = g, sets dP (U) = dL/dP (zero where
 * the clip is active) plus dpdf when given. */
ALWAYS_INLINE float cross_entropy(int U, const float *P, int y, float eps, float g, const float *dpdf,
                                float *dP)
{
    const float hi = 1.0f - eps;
    float part[16] = {0}, S = 0.0f;
    for (int v = 0; v < U; v++) part[v & 15] += clip(P[v], eps, hi);
    for (int l = 0; l < 16; l++) S += part[l];
    float py = clip(P[y], eps, hi);
    if (dP) {
        float gs = g / S;
        if (dpdf)
            for (int v = 0; v < U; v++) dP[v] = ((P[v] >= eps && P[v] <= hi) ? gs : 0.0f) + dpdf[v];
        else
            for (int v = 0; v < U; v++) dP[v] = (P[v] >= eps && P[v] <= hi) ? gs : 0.0f;
        if (P[y] >= eps && P[y] <= hi) dP[y] -= g / py;
    }
    return logf(S) - logf(py);
}

/* Samples row0..row1 of a job (see lpcnet_tree_head_forward / _backward). */
ALWAYS_INLINE int head_rows(head_job *j)
{
    const int D = j->D, U = j->U, C = j->C, depth = j->depth;
    const size_t cu = (size_t)C * U;
    /* per block sample: t (C U), q (U), dq (U), da (C U); one sample: P (2U), dP (2U) */
    float *buf = malloc(sizeof(float) * (HEAD_BLOCK * (2 * cu + 2 * (size_t)U) + 4 * (size_t)U));
    if (!buf) return -1;
    float *t = buf, *q = t + HEAD_BLOCK * cu, *dq = q + HEAD_BLOCK * (size_t)U;
    float *da = dq + HEAD_BLOCK * (size_t)U, *P = da + HEAD_BLOCK * cu, *dP = P + 2 * U;
    for (int n0 = j->row0; n0 < j->row1; n0 += HEAD_BLOCK) {
        int nb = j->row1 - n0 < HEAD_BLOCK ? j->row1 - n0 : HEAD_BLOCK;
        for (int i = 0; i < nb; i++) {
            const int n = n0 + i, y = j->target[n];
            float *ti = t + i * cu, *qi = q + (size_t)i * U;
            j->k->head_fwd(D, U, C, j->v + (size_t)n * D, j->Kp, j->bias_t, j->factor_t, ti, qi);
            tree_levels(depth, qi, P);
            const float *leaves = P + U - 2;
            float g = j->dloss ? j->dloss[n] : 1.0f;       /* dL/dloss[n] */
            float l = cross_entropy(U, leaves, y, j->eps, g, j->dpdf ? j->dpdf + (size_t)n * U : NULL,
                                    j->dv ? dP + U - 2 : NULL);
            if (j->loss) j->loss[n] = l;
            if (j->pdf) memcpy(j->pdf + (size_t)n * U, leaves, sizeof(float) * U);
            if (j->dv) tree_backward(depth, qi, P, dP, dq + (size_t)i * U);
        }
        if (j->dv)
            j->k->head_bwd(nb, D, U, C, j->v + (size_t)n0 * D, j->Kp, j->factor_t, t, q, dq,
                           j->dv + (size_t)n0 * D, j->dKp, j->dbias_t, j->dfactor_t, da);
    }
    free(buf);
    return 0;
}

/* The same code compiled for AVX-512 (the loops above vectorise; -ffp-contract=off and the fixed
 * partial sums keep every result bit-identical to the generic build). */
static int head_rows_generic(head_job *j) { return head_rows(j); }
#ifdef SIMD_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
static int head_rows_avx512(head_job *j) { return head_rows(j); }
#pragma GCC pop_options
#endif

static void *run_head(void *arg)
{
    head_job *j = arg;
#ifdef SIMD_X86
    if (j->k->level >= LPCNET_SIMD_AVX512) {
        j->status = head_rows_avx512(j);
        return NULL;
    }
#endif
    j->status = head_rows_generic(j);
    return NULL;
}

/* Transposed copies of the weights; NULL if out of memory. */
static float *pack_head(int D, int U, int C, const float *K, const float *bias, const float *factor)
{
    float *w = malloc(sizeof(float) * ((size_t)C * D * U + 2 * (size_t)C * U));
    if (!w) return NULL;
    float *Kp = w, *bias_t = Kp + (size_t)C * D * U, *factor_t = bias_t + (size_t)C * U;
    for (int u = 0; u < U; u++)
        for (int c = 0; c < C; c++) {
            for (int d = 0; d < D; d++) Kp[((size_t)c * D + d) * U + u] = K[((size_t)u * D + d) * C + c];
            bias_t[(size_t)c * U + u] = bias[(size_t)u * C + c];
            factor_t[(size_t)c * U + u] = factor[(size_t)u * C + c];
        }
    return w;
}

static int head_depth(int U)
{
    int depth = 0;
    while ((1 << depth) < U) depth++;
    return (1 << depth) == U && depth >= 1 && depth <= 16 ? depth : -1;
}

static int run_head_jobs(head_job *proto, int threads, float *sums, size_t per_job)
{
    int N = proto->N, status = 0;
    threads = row_threads(threads, N);
    head_job jobs[ROW_THREADS_MAX];
    for (int i = 0; i < threads; i++) {
        jobs[i] = *proto;
        jobs[i].row0 = row_start(N, i, threads);
        jobs[i].row1 = row_start(N, i + 1, threads);
        jobs[i].status = -1;
        if (sums) {
            float *own = sums + (size_t)i * per_job;
            jobs[i].dKp = own;
            jobs[i].dbias_t = own + (size_t)proto->C * proto->D * proto->U;
            jobs[i].dfactor_t = jobs[i].dbias_t + (size_t)proto->C * proto->U;
        }
    }
    row_threads_run(run_head, jobs, sizeof jobs[0], threads);
    for (int i = 0; i < threads; i++)
        if (jobs[i].status) status = -1;
    return status ? -1 : threads;
}

static const GruKernels *head_kernels(int U)
{
    const GruKernels *k = gru_select(lpcnet_gru_simd_level());
    return U % 16 ? &gru_kernels_ref : k;
}

static int head_args_ok(int N, int D, int U, int C, const int32_t *target)
{
    if (N <= 0 || D <= 0 || C <= 0 || head_depth(U) < 0) return 0;
    for (int n = 0; n < N; n++)
        if (target[n] < 0 || target[n] >= U) return 0;
    return 1;
}

/* Forward and/or gradients (dv non-NULL) of N samples; see lpcnet_gru.h. */
static int tree_head(int N, int D, int U, int C, const float *v, const float *K, const float *bias,
                     const float *factor, const int32_t *target, float eps, const float *dloss,
                     const float *dpdf, float *pdf, float *loss, float *dv, float *dK, float *dbias,
                     float *dfactor, int threads)
{
    if (!head_args_ok(N, D, U, C, target)) return -1;
    float *w = pack_head(D, U, C, K, bias, factor);
    if (!w) return -1;
    int nt = row_threads(threads, N);
    size_t per_job = (size_t)C * D * U + 2 * (size_t)C * U;
    float *sums = dv ? calloc((size_t)nt * per_job, sizeof(float)) : NULL;
    if (dv && !sums) {
        free(w);
        return -1;
    }
    head_job proto = {0};
    proto.N = N; proto.D = D; proto.U = U; proto.C = C; proto.depth = head_depth(U);
    proto.k = head_kernels(U);
    proto.v = v; proto.Kp = w; proto.bias_t = w + (size_t)C * D * U;
    proto.factor_t = proto.bias_t + (size_t)C * U;
    proto.target = target; proto.eps = eps; proto.dloss = dloss; proto.dpdf = dpdf;
    proto.pdf = pdf; proto.loss = loss; proto.dv = dv;
    int used = run_head_jobs(&proto, nt, sums, per_job);
    if (used > 0 && dv) {
        for (int i = 1; i < used; i++)                      /* in thread order */
            for (size_t q = 0; q < per_job; q++) sums[q] += sums[(size_t)i * per_job + q];
        const float *dKp = sums, *db = sums + (size_t)C * D * U, *df = db + (size_t)C * U;
        for (int u = 0; u < U; u++)
            for (int c = 0; c < C; c++) {
                for (int d = 0; d < D; d++)
                    dK[((size_t)u * D + d) * C + c] = dKp[((size_t)c * D + d) * U + u];
                dbias[(size_t)u * C + c] = db[(size_t)c * U + u];
                dfactor[(size_t)u * C + c] = df[(size_t)c * U + u];
            }
    }
    free(sums);
    free(w);
    return used < 0 ? -1 : 0;
}

int lpcnet_tree_head_forward(int N, int D, int U, int C, const float *v, const float *K,
                             const float *bias, const float *factor, const int32_t *target, float eps,
                             float *pdf, float *loss, float *dv, float *dK, float *dbias, float *dfactor,
                             int threads)
{
    if (dv && (!dK || !dbias || !dfactor)) return -1;
    return tree_head(N, D, U, C, v, K, bias, factor, target, eps, NULL, NULL, pdf, loss, dv, dK, dbias,
                     dfactor, threads);
}

int lpcnet_tree_head_backward(int N, int D, int U, int C, const float *v, const float *K,
                              const float *bias, const float *factor, const int32_t *target, float eps,
                              const float *dloss, const float *dpdf, float *dv, float *dK, float *dbias,
                              float *dfactor, int threads)
{
    if (!dloss || !dv || !dK || !dbias || !dfactor) return -1;
    return tree_head(N, D, U, C, v, K, bias, factor, target, eps, dloss, dpdf, NULL, NULL, dv, dK, dbias,
                     dfactor, threads);
}
