/* Fused GRU recurrence for training: forward and backward over a whole batch.
 *
 * See include/lpcnet_gru.h for the maths and layouts. Each step is one small
 * matrix product (rows of the batch times a packed weight matrix) plus the gate
 * nonlinearities, by the kernels of gru_kernels.c chosen at run time (simd.h).
 * The input projections come whole (xp) or in parts (embedding tables gathered by
 * code, frame projections, docs/training.md): a part row is summed when a step needs it,
 * and in the backward pass the step's dL/dxp row is added into the part rows it came from.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gru_kernels.h"
#include "lpcnet_gru.h"
#include "row_threads.h"

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* --- dispatch -------------------------------------------------------------------------- */
static int forced_level = LPCNET_SIMD_AUTO;

int lpcnet_gru_set_simd_level(int level)
{
    forced_level = level;
    return lpcnet_gru_simd_level();
}

int lpcnet_gru_simd_level(void) { return gru_select(forced_level)->level; }

/* --- drivers ------------------------------------------------------------------------------ */
/* Where the input projection of step (b, t) comes from (lpcnet_gru.h: LpcnetGruInput). */
typedef struct {
    const float *xp;            /* (B, T, 3H) or NULL */
    int ncodes, levels;
    const int32_t *codes;       /* (B, T, ncodes) */
    const float *tables;        /* (ncodes, levels, 3H) */
    int frame_size, nframes;
    const float *frames;        /* (B, nframes, 3H) or NULL */
} parts;

typedef struct {
    int forward, B, T, H, row0, row1, status;
    const GruKernels *k;
    const float *P, *bias;      /* packed U (forward) or U^T (backward); padded b_rec */
    const uint32_t *P16;        /* the same as bfloat16 pairs, or NULL: float32 products */
    parts in;
    const float *h0, *dh_out, *h_out_c, *cache_c;
    float *h_out, *cache;
    /* backward outputs: dxp (or NULL), dhr, dh0; dtables / db_rec: this job's sums
     * (its own buffers, added up after the join), dframes (rows of this job's sequences) */
    float *dxp, *dhr_out, *dh0, *dtables, *dframes, *db_rec;
    /* bfloat16 copies (NULL: none): the forward's h_prev rows, the backward's dhr rows */
    uint16_t *hprev16, *dhr16;
} job;

/* Rows -> bfloat16 pairs by the level's kernel, or the reference where it has none. */
static void rows_to_bf16(const job *j, int nb, int K, const float *X, size_t ldx, uint32_t *Xp)
{
    (j->k->to_bf16 ? j->k->to_bf16 : gru_kernels_ref.to_bf16)(nb, K, X, ldx, Xp);
}

/* nb rows of Kp pairs from Xp into out (row pitch Kp pairs), rows r0.. of step t. */
static void store_pairs(const job *j, int r0, int nb, int t, int Kp, const uint32_t *Xp, uint16_t *out)
{
    for (int b = 0; b < nb; b++)
        memcpy(out + ((size_t)(r0 + b) * j->T + t) * 2 * Kp, Xp + (size_t)b * Kp, sizeof(uint32_t) * Kp);
}

/* The input projection row (3H) of step t of sequence b: xp itself, or the sum of its parts in buf. */
static const float *input_row(const job *j, int b, int t, float *buf)
{
    const parts *p = &j->in;
    const size_t bt = (size_t)b * j->T + t, h3 = (size_t)3 * j->H;
    const float *src[LPCNET_GRU_MAX_CODES + 2];
    int n = 0;
    if (p->xp) src[n++] = p->xp + bt * h3;
    for (int c = 0; c < p->ncodes; c++)
        src[n++] = p->tables + ((size_t)c * p->levels + p->codes[bt * p->ncodes + c]) * h3;
    if (p->frames) src[n++] = p->frames + ((size_t)b * p->nframes + t / p->frame_size) * h3;
    if (n == 1) return src[0];
    j->k->sum_rows((int)h3, n, src, buf);
    return buf;
}

/* dL/dxp row of step t of sequence b into the part rows it came from. */
static void scatter_row(const job *j, int b, int t, const float *g)
{
    const parts *p = &j->in;
    const size_t bt = (size_t)b * j->T + t, h3 = (size_t)3 * j->H;
    float *dst[LPCNET_GRU_MAX_CODES + 1];
    int n = 0;
    if (j->dtables)
        for (int c = 0; c < p->ncodes; c++)
            dst[n++] = j->dtables + ((size_t)c * p->levels + p->codes[bt * p->ncodes + c]) * h3;
    if (j->dframes) dst[n++] = j->dframes + ((size_t)b * p->nframes + t / p->frame_size) * h3;
    if (n) j->k->add_to_rows((int)h3, g, n, dst);
}

static void forward_rows(job *j, int r0, int nb, float *hr, int Np, uint32_t *xbf, float *xrow)
{
    const int T = j->T, H = j->H;
    for (int t = 0; t < T; t++) {
        const float *X = t ? j->h_out + ((size_t)r0 * T + t - 1) * H : j->h0 + (size_t)r0 * H;
        size_t ldx = t ? (size_t)T * H : (size_t)H;
        if (j->P16) {
            j->k->to_bf16(nb, H, X, ldx, xbf);
            if (j->hprev16) store_pairs(j, r0, nb, t, (H + 1) / 2, xbf, j->hprev16);
            j->k->matmul_bf16(nb, (H + 1) / 2, Np, xbf, j->P16, j->bias, hr, (size_t)Np);
        } else {
            if (j->hprev16) {                           /* bfloat16 copies, float32 products */
                rows_to_bf16(j, nb, H, X, ldx, xbf);
                store_pairs(j, r0, nb, t, (H + 1) / 2, xbf, j->hprev16);
            }
            /* Rows T*H floats apart share their L1 sets (4 KiB aliasing): copy them together. */
            float *xc = (float *)xbf;
            for (int b = 0; b < nb; b++) memcpy(xc + (size_t)b * H, X + b * ldx, sizeof(float) * H);
            j->k->matmul(nb, H, Np, xc, (size_t)H, j->P, j->bias, hr, (size_t)Np);
        }
        for (int b = 0; b < nb; b++) {
            size_t bt = (size_t)(r0 + b) * T + t;
            j->k->fwd_gates(H, input_row(j, r0 + b, t, xrow), hr + (size_t)b * Np, X + b * ldx,
                            j->h_out + bt * H, j->cache + bt * 4 * H);
        }
    }
}

static void backward_rows(job *j, int r0, int nb, float *carry, float *dh, float *dhr, float *tmp,
                          int Hp, uint32_t *xbf, float *dxrow, float *dhn)
{
    const int T = j->T, H = j->H;
    const size_t h3 = (size_t)3 * H;
    memset(carry, 0, sizeof(float) * (size_t)nb * H);
    for (int t = T - 1; t >= 0; t--) {
        for (int b = 0; b < nb; b++) {
            size_t bt = (size_t)(r0 + b) * T + t;
            const float *g = j->dh_out + bt * H;
            float *c = carry + (size_t)b * H, *d = dhr + (size_t)b * h3;
            float *dx = j->dxp ? j->dxp + bt * h3 : dxrow;
            for (int i = 0; i < H; i++) dh[i] = g[i] + c[i];
            const float *hprev = t ? j->h_out_c + (bt - 1) * H : j->h0 + (size_t)(r0 + b) * H;
            j->k->bwd_gates(H, dh, hprev, j->cache_c + bt * 4 * H, dx, dhn, d, c);
            if (j->dhr_out) memcpy(j->dhr_out + bt * h3, d, sizeof(float) * h3);
            j->k->add_to_rows((int)h3, d, 1, &j->db_rec);
            scatter_row(j, r0 + b, t, dx);
        }
        if (j->P16) {
            j->k->to_bf16(nb, 3 * H, dhr, h3, xbf);
            if (j->dhr16) store_pairs(j, r0, nb, t, (3 * H + 1) / 2, xbf, j->dhr16);
            j->k->matmul_bf16(nb, (3 * H + 1) / 2, Hp, xbf, j->P16, NULL, tmp, (size_t)Hp);
        } else {
            j->k->matmul(nb, 3 * H, Hp, dhr, h3, j->P, NULL, tmp, (size_t)Hp);
            if (j->dhr16) {
                rows_to_bf16(j, nb, 3 * H, dhr, h3, xbf);
                store_pairs(j, r0, nb, t, (3 * H + 1) / 2, xbf, j->dhr16);
            }
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
    /* forward: hr (chunk x Np) + one input row; backward: carry, dh, dhr, tmp, dxp row, dhn */
    size_t need = j->forward ? (size_t)chunk * Np + 3 * H
                             : (size_t)chunk * H + H + (size_t)chunk * 3 * H + (size_t)chunk * Hp
                                   + 3 * H + H;
    /* bfloat16 pairs of one step's rows (or, float32 forward, the copy of the h rows) */
    size_t words = (size_t)chunk * ((3 * H + 1) / 2);
    buf = malloc(sizeof(float) * (need + words));
    if (!buf) {
        j->status = -1;
        return NULL;
    }
    uint32_t *xbf = (uint32_t *)(buf + need);
    for (int r0 = j->row0; r0 < j->row1; r0 += chunk) {
        int nb = j->row1 - r0 < chunk ? j->row1 - r0 : chunk;
        if (j->forward) {
            forward_rows(j, r0, nb, buf, Np, xbf, buf + (size_t)chunk * Np);
        } else {
            float *carry = buf, *dh = carry + (size_t)chunk * H, *dhr = dh + H;
            float *tmp = dhr + (size_t)chunk * 3 * H, *dxrow = tmp + (size_t)chunk * Hp;
            backward_rows(j, r0, nb, carry, dh, dhr, tmp, Hp, xbf, dxrow, dxrow + 3 * H);
        }
    }
    free(buf);
    j->status = 0;
    return NULL;
}

/* Split rows over threads, run, join. Backward: job i > 0 sums dtables and db_rec into its
 * own zeroed buffers (`extra` floats each), added into job 0's (the outputs) after the join. */
static int run_threads(job *proto, int threads, size_t extra)
{
    int B = proto->B, status = 0;
    threads = row_threads(threads, B);
    job jobs[ROW_THREADS_MAX];
    float *sums = NULL;
    if (threads > 1 && extra) {
        sums = calloc((size_t)(threads - 1) * extra, sizeof(float));
        if (!sums) return -1;
    }
    for (int i = 0; i < threads; i++) {
        jobs[i] = *proto;
        jobs[i].row0 = row_start(B, i, threads);
        jobs[i].row1 = row_start(B, i + 1, threads);
        jobs[i].status = -1;
        if (i && sums) {
            float *own = sums + (size_t)(i - 1) * extra;
            size_t ntab = proto->dtables ? extra - (size_t)3 * proto->H : 0;
            jobs[i].dtables = proto->dtables ? own : NULL;
            jobs[i].db_rec = own + ntab;
        }
    }
    row_threads_run(run_job, jobs, sizeof jobs[0], threads);
    for (int i = 0; i < threads; i++)
        if (jobs[i].status) status = -1;
    if (sums) {                            /* in job order, so a thread count gives one result */
        size_t ntab = proto->dtables ? extra - (size_t)3 * proto->H : 0;
        for (int i = 1; i < threads; i++) {
            const float *own = sums + (size_t)(i - 1) * extra;
            for (size_t q = 0; q < ntab; q++) proto->dtables[q] += own[q];
            for (int q = 0; q < 3 * proto->H; q++) proto->db_rec[q] += own[ntab + q];
        }
        free(sums);
    }
    return status;
}

static int sizes_ok(int B, int T, int H) { return B > 0 && T > 0 && H > 0 && H <= (1 << 16); }

/* Checks the parts: sizes, and every code in [0, levels). */
static int parts_ok(int B, int T, const LpcnetGruInput *in)
{
    if (!in->xp && !in->ncodes && !in->frames) return 0;
    if (in->ncodes < 0 || in->ncodes > LPCNET_GRU_MAX_CODES) return 0;
    if (in->ncodes && (!in->codes || !in->tables || in->levels <= 0)) return 0;
    if (in->frames && (in->frame_size <= 0 || (long)in->nframes * in->frame_size < T)) return 0;
    size_t n = (size_t)B * T * in->ncodes;
    for (size_t q = 0; q < n; q++)
        if (in->codes[q] < 0 || in->codes[q] >= in->levels) return 0;
    return 1;
}

static parts to_parts(const LpcnetGruInput *in)
{
    parts p = {in->xp, in->ncodes, in->levels, in->codes, in->tables, in->frame_size,
               in->nframes, in->frames};
    if (!p.frames) p.frame_size = 1;
    return p;
}

int lpcnet_gru_forward_parts(int B, int T, int H, const LpcnetGruInput *in, const float *U,
                             const float *b_rec, const float *h0, float *h_out, float *cache,
                             uint16_t *hprev_bf16, int threads, int bf16)
{
    if (!sizes_ok(B, T, H) || !in || !parts_ok(B, T, in)) return -1;
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
    proto.in = to_parts(in);
    proto.h0 = h0; proto.h_out = h_out; proto.cache = cache; proto.hprev16 = hprev_bf16;
    int status = run_threads(&proto, threads, 0);
    free(P);
    return status;
}

int lpcnet_gru_backward_parts(int B, int T, int H, const LpcnetGruInput *in, const float *dh_out,
                              const float *h_out, const float *h0, const float *cache,
                              const float *U, float *dxp, float *dtables, float *dframes,
                              float *dhr, uint16_t *dhr_bf16, float *db_rec, float *dh0, int threads,
                              int bf16)
{
    if (!sizes_ok(B, T, H) || !in || !parts_ok(B, T, in) || (!dhr && !dhr_bf16)) return -1;
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
    proto.in = to_parts(in);
    proto.dh_out = dh_out; proto.h_out_c = h_out; proto.h0 = h0; proto.cache_c = cache;
    proto.dxp = dxp; proto.dhr_out = dhr; proto.dhr16 = dhr_bf16; proto.dh0 = dh0; proto.db_rec = db_rec;
    proto.dtables = in->ncodes ? dtables : NULL;
    proto.dframes = in->frames ? dframes : NULL;
    size_t ntab = proto.dtables ? (size_t)in->ncodes * in->levels * 3 * H : 0;
    if (proto.dtables) memset(proto.dtables, 0, sizeof(float) * ntab);
    if (proto.dframes) memset(proto.dframes, 0, sizeof(float) * (size_t)B * in->nframes * 3 * H);
    memset(db_rec, 0, sizeof(float) * 3 * H);
    int status = run_threads(&proto, threads, ntab + (size_t)3 * H);
    free(P);
    return status;
}

int lpcnet_gru_forward(int B, int T, int H, const float *xp, const float *U, const float *b_rec,
                       const float *h0, float *h_out, float *cache, int threads, int bf16)
{
    LpcnetGruInput in = {0};
    in.xp = xp;
    if (!xp) return -1;
    return lpcnet_gru_forward_parts(B, T, H, &in, U, b_rec, h0, h_out, cache, NULL, threads, bf16);
}

int lpcnet_gru_backward(int B, int T, int H, const float *dh_out, const float *h_out,
                        const float *h0, const float *cache, const float *U, float *dxp,
                        float *dhn, float *dh0, int threads, int bf16)
{
    if (!sizes_ok(B, T, H) || !dxp) return -1;
    LpcnetGruInput in = {0};
    in.xp = dxp;                           /* only its presence is read: the input came whole */
    size_t n = (size_t)B * T;
    float *dhr = malloc(sizeof(float) * (n * 3 * H + 3 * (size_t)H));
    if (!dhr) return -1;
    int status = lpcnet_gru_backward_parts(B, T, H, &in, dh_out, h_out, h0, cache, U, dxp, NULL,
                                           NULL, dhr, NULL, dhr + n * 3 * H, dh0, threads, bf16);
    for (size_t q = 0; q < n && !status; q++)
        memcpy(dhn + q * H, dhr + q * 3 * H + 2 * H, sizeof(float) * H);
    free(dhr);
    return status;
}

void lpcnet_normal_noise(float *out, size_t n, uint64_t seed, float stddev)
{
    gru_select(forced_level)->normal_fill(out, n, gru_mix64(seed), stddev);
}
