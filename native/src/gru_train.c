/* Fused GRU recurrence for training: forward and backward over a whole batch.
 *
 * See include/lpcnet_gru.h for the maths and layouts. Each step is one small
 * matrix product (rows of the batch times a packed weight matrix) plus the gate
 * nonlinearities, by the kernels of gru_kernels.c chosen at run time (simd.h).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gru_kernels.h"
#include "lpcnet_gru.h"

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* Rows of X (nb x K, row stride ldx) -> bfloat16 pairs (nb x Kp). */
static void rows_to_bf16(int nb, int K, const float *X, size_t ldx, uint32_t *Xp)
{
    int Kp = (K + 1) / 2;
    for (int b = 0; b < nb; b++)
        for (int kk = 0; kk < Kp; kk++) {
            uint32_t lo = gru_to_bf16(X[b * ldx + 2 * kk]);
            uint32_t hi = 2 * kk + 1 < K ? gru_to_bf16(X[b * ldx + 2 * kk + 1]) : 0;
            Xp[(size_t)b * Kp + kk] = lo | (hi << 16);
        }
}

/* --- dispatch -------------------------------------------------------------------------- */
static int forced_level = LPCNET_SIMD_AUTO;

int lpcnet_gru_set_simd_level(int level)
{
    forced_level = level;
    return lpcnet_gru_simd_level();
}

int lpcnet_gru_simd_level(void) { return gru_select(forced_level)->level; }

/* --- drivers ------------------------------------------------------------------------------ */
typedef struct {
    int forward, B, T, H, row0, row1, status;
    const GruKernels *k;
    const float *P, *bias;      /* packed U (forward) or U^T (backward); padded b_rec */
    const uint32_t *P16;        /* the same as bfloat16 pairs, or NULL: float32 products */
    const float *xp, *h0, *dh_out, *h_out_c, *cache_c;
    float *h_out, *cache, *dxp, *dhn, *dh0;
} job;

static void forward_rows(job *j, int r0, int nb, float *hr, int Np, uint32_t *xbf)
{
    const int T = j->T, H = j->H;
    for (int t = 0; t < T; t++) {
        const float *X = t ? j->h_out + ((size_t)r0 * T + t - 1) * H : j->h0 + (size_t)r0 * H;
        size_t ldx = t ? (size_t)T * H : (size_t)H;
        if (j->P16) {
            rows_to_bf16(nb, H, X, ldx, xbf);
            j->k->matmul_bf16(nb, (H + 1) / 2, Np, xbf, j->P16, j->bias, hr, (size_t)Np);
        } else {
            /* Rows T*H floats apart share their L1 sets (4 KiB aliasing): copy them together. */
            float *xc = (float *)xbf;
            for (int b = 0; b < nb; b++) memcpy(xc + (size_t)b * H, X + b * ldx, sizeof(float) * H);
            j->k->matmul(nb, H, Np, xc, (size_t)H, j->P, j->bias, hr, (size_t)Np);
        }
        for (int b = 0; b < nb; b++) {
            size_t bt = (size_t)(r0 + b) * T + t;
            j->k->fwd_gates(H, j->xp + bt * 3 * H, hr + (size_t)b * Np, X + b * ldx,
                            j->h_out + bt * H, j->cache + bt * 4 * H);
        }
    }
}

static void backward_rows(job *j, int r0, int nb, float *carry, float *dh, float *dhr, float *tmp,
                          int Hp, uint32_t *xbf)
{
    const int T = j->T, H = j->H;
    memset(carry, 0, sizeof(float) * (size_t)nb * H);
    for (int t = T - 1; t >= 0; t--) {
        for (int b = 0; b < nb; b++) {
            size_t bt = (size_t)(r0 + b) * T + t;
            const float *g = j->dh_out + bt * H;
            float *c = carry + (size_t)b * H;
            for (int i = 0; i < H; i++) dh[i] = g[i] + c[i];
            const float *hprev = t ? j->h_out_c + (bt - 1) * H : j->h0 + (size_t)(r0 + b) * H;
            j->k->bwd_gates(H, dh, hprev, j->cache_c + bt * 4 * H, j->dxp + bt * 3 * H,
                            j->dhn + bt * H, dhr + (size_t)b * 3 * H, c);
        }
        if (j->P16) {
            rows_to_bf16(nb, 3 * H, dhr, (size_t)3 * H, xbf);
            j->k->matmul_bf16(nb, (3 * H + 1) / 2, Hp, xbf, j->P16, NULL, tmp, (size_t)Hp);
        } else {
            j->k->matmul(nb, 3 * H, Hp, dhr, (size_t)3 * H, j->P, NULL, tmp, (size_t)Hp);
        }
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < H; i++) carry[(size_t)b * H + i] += tmp[(size_t)b * Hp + i];
    }
    memcpy(j->dh0 + (size_t)r0 * H, carry, sizeof(float) * (size_t)nb * H);
}

static void *run_job(void *arg)
{
    job *j = arg;
    const int H = j->H, Np = round_up(3 * H, PANEL), Hp = round_up(H, PANEL);
    int chunk = j->k->max_rows < j->row1 - j->row0 ? j->k->max_rows : j->row1 - j->row0;
    float *buf;
    size_t need = j->forward ? (size_t)chunk * Np
                             : (size_t)chunk * H * 2 + (size_t)chunk * 3 * H + (size_t)chunk * Hp + H;
    size_t words = (size_t)chunk * ((3 * H + 1) / 2);      /* bfloat16 pairs of one step's rows */
    buf = malloc(sizeof(float) * (need + words));
    if (!buf) {
        j->status = -1;
        return NULL;
    }
    for (int r0 = j->row0; r0 < j->row1; r0 += chunk) {
        int nb = j->row1 - r0 < chunk ? j->row1 - r0 : chunk;
        uint32_t *xbf = (uint32_t *)(buf + need);
        if (j->forward) {
            forward_rows(j, r0, nb, buf, Np, xbf);
        } else {
            float *carry = buf, *dhr = carry + (size_t)chunk * H, *tmp = dhr + (size_t)chunk * 3 * H;
            float *dh = tmp + (size_t)chunk * Hp;
            backward_rows(j, r0, nb, carry, dh, dhr, tmp, Hp, xbf);
        }
    }
    free(buf);
    j->status = 0;
    return NULL;
}

/* Split rows over threads, run, join. */
static int run_threads(job *proto, int threads)
{
    int B = proto->B;
    if (threads < 1) threads = 1;
    if (threads > B) threads = B;
    if (threads > 64) threads = 64;
    job jobs[64];
    pthread_t tid[64];
    int started[64] = {0}, status = 0;
    for (int i = 0; i < threads; i++) {
        jobs[i] = *proto;
        jobs[i].row0 = (int)((long)B * i / threads);
        jobs[i].row1 = (int)((long)B * (i + 1) / threads);
        jobs[i].status = -1;
    }
    for (int i = 1; i < threads; i++)
        started[i] = pthread_create(&tid[i], NULL, run_job, &jobs[i]) == 0;
    run_job(&jobs[0]);
    for (int i = 1; i < threads; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            run_job(&jobs[i]);             /* could not start a thread: do its rows here */
    }
    for (int i = 0; i < threads; i++)
        if (jobs[i].status) status = -1;
    return status;
}

static int sizes_ok(int B, int T, int H) { return B > 0 && T > 0 && H > 0 && H <= (1 << 16); }

int lpcnet_gru_forward(int B, int T, int H, const float *xp, const float *U, const float *b_rec,
                       const float *h0, float *h_out, float *cache, int threads, int bf16)
{
    if (!sizes_ok(B, T, H)) return -1;
    const GruKernels *k = gru_select(forced_level);
    bf16 = bf16 && k->matmul_bf16;
    int Np = round_up(3 * H, PANEL);
    float *P = malloc(sizeof(float) * ((size_t)H * Np + Np));
    if (!P) return -1;
    float *bias = P + (size_t)H * Np;
    if (bf16)
        gru_pack_panels_bf16(U, (size_t)3 * H, 1, H, 3 * H, (uint32_t *)P);   /* needs half of P */
    else
        gru_pack_panels(U, (size_t)3 * H, 1, H, 3 * H, P);
    for (int j = 0; j < Np; j++) bias[j] = j < 3 * H ? b_rec[j] : 0.0f;
    job proto = {0};
    proto.forward = 1;
    proto.B = B; proto.T = T; proto.H = H;
    proto.k = k;
    proto.P = P; proto.bias = bias;
    proto.P16 = bf16 ? (const uint32_t *)P : NULL;
    proto.xp = xp; proto.h0 = h0; proto.h_out = h_out; proto.cache = cache;
    int status = run_threads(&proto, threads);
    free(P);
    return status;
}

int lpcnet_gru_backward(int B, int T, int H, const float *dh_out, const float *h_out,
                        const float *h0, const float *cache, const float *U, float *dxp,
                        float *dhn, float *dh0, int threads, int bf16)
{
    if (!sizes_ok(B, T, H)) return -1;
    const GruKernels *k = gru_select(forced_level);
    bf16 = bf16 && k->matmul_bf16;
    int Hp = round_up(H, PANEL);
    float *P = malloc(sizeof(float) * ((size_t)3 * H + 1) * Hp);
    if (!P) return -1;
    if (bf16)
        gru_pack_panels_bf16(U, 1, (size_t)3 * H, 3 * H, H, (uint32_t *)P);   /* U^T as pairs */
    else
        gru_pack_panels(U, 1, (size_t)3 * H, 3 * H, H, P);       /* U^T: (3H, H) */
    job proto = {0};
    proto.forward = 0;
    proto.B = B; proto.T = T; proto.H = H;
    proto.k = k;
    proto.P = P;
    proto.P16 = bf16 ? (const uint32_t *)P : NULL;
    proto.dh_out = dh_out; proto.h_out_c = h_out; proto.h0 = h0; proto.cache_c = cache;
    proto.dxp = dxp; proto.dhn = dhn; proto.dh0 = dh0;
    int status = run_threads(&proto, threads);
    free(P);
    return status;
}
