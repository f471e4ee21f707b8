/* Sanitizer test of the fused training GRU (src/gru_train.c): every SIMD level, float32 and
 * bfloat16 products, 1 and 3 threads, odd sizes (tails of the 16-wide panels and of the
 * bfloat16 pairs), inputs whole and in parts (embedding tables, frames), against a plain
 * double-precision reference of the same maths; the output head (dual FC, tree, cross-entropy)
 * against a double reference and its gradients by central differences.
 * Build and run: make -C native asan-gru   (prints "ok" and exits 0 on success). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "lpcnet_gru.h"

static double urand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0 - 1.0;
}

static double sig(double x) { return 1.0 / (1.0 + exp(-x)); }

static float bf16_value(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Reference forward + backward in double; returns h_out and dxp, dh0 (float copies). */
static void reference(int B, int T, int H, const float *xp, const float *U, const float *br,
                      const float *h0, const float *dh_out, float *h_ref, float *dxp_ref,
                      float *dh0_ref, float *dhr_ref)
{
    double *z = malloc(sizeof(double) * B * T * H), *r = malloc(sizeof(double) * B * T * H);
    double *n = malloc(sizeof(double) * B * T * H), *hn = malloc(sizeof(double) * B * T * H);
    double *h = malloc(sizeof(double) * B * (T + 1) * H), *hr = malloc(sizeof(double) * 3 * H);
    double *carry = malloc(sizeof(double) * H), *dhr = malloc(sizeof(double) * 3 * H);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < H; i++) h[(b * (T + 1)) * H + i] = h0[b * H + i];
        for (int t = 0; t < T; t++) {
            const double *hp = h + (b * (T + 1) + t) * H;
            const float *x = xp + ((size_t)b * T + t) * 3 * H;
            for (int j = 0; j < 3 * H; j++) {
                double acc = br[j];
                for (int k = 0; k < H; k++) acc += hp[k] * U[k * 3 * H + j];
                hr[j] = acc;
            }
            for (int i = 0; i < H; i++) {
                size_t q = ((size_t)b * T + t) * H + i;
                z[q] = sig(x[i] + hr[i]);
                r[q] = sig(x[H + i] + hr[H + i]);
                hn[q] = hr[2 * H + i];
                n[q] = tanh(x[2 * H + i] + r[q] * hn[q]);
                h[(b * (T + 1) + t + 1) * H + i] = z[q] * hp[i] + (1 - z[q]) * n[q];
                h_ref[q] = (float)h[(b * (T + 1) + t + 1) * H + i];
            }
        }
        for (int i = 0; i < H; i++) carry[i] = 0;
        for (int t = T - 1; t >= 0; t--) {
            const double *hp = h + (b * (T + 1) + t) * H;
            float *dx = dxp_ref + ((size_t)b * T + t) * 3 * H;
            for (int i = 0; i < H; i++) {
                size_t q = ((size_t)b * T + t) * H + i;
                double g = dh_out[q] + carry[i];
                double dnp = g * (1 - z[q]) * (1 - n[q] * n[q]);
                double dzp = g * (hp[i] - n[q]) * z[q] * (1 - z[q]);
                double drp = dnp * hn[q] * r[q] * (1 - r[q]);
                dx[i] = (float)dzp, dx[H + i] = (float)drp, dx[2 * H + i] = (float)dnp;
                dhr[i] = dzp, dhr[H + i] = drp, dhr[2 * H + i] = dnp * r[q];
                carry[i] = g * z[q];
            }
            if (dhr_ref)
                for (int j = 0; j < 3 * H; j++) dhr_ref[((size_t)b * T + t) * 3 * H + j] = (float)dhr[j];
            for (int k = 0; k < H; k++) {
                double acc = 0;
                for (int j = 0; j < 3 * H; j++) acc += dhr[j] * U[k * 3 * H + j];
                carry[k] += acc;
            }
        }
        for (int i = 0; i < H; i++) dh0_ref[b * H + i] = (float)carry[i];
    }
    free(z), free(r), free(n), free(hn), free(h), free(hr), free(carry), free(dhr);
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double err = 0, scale = 1e-3;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)a[i] - b[i]));
    return err / scale;
}

static int run_case(int B, int T, int H, int level, int bf16, int threads)
{
    unsigned s = (unsigned)(B * 131 + T * 17 + H);
    size_t nx = (size_t)B * T * 3 * H, nh = (size_t)B * T * H;
    float *xp = malloc(sizeof(float) * nx), *U = malloc(sizeof(float) * 3 * H * H);
    float *br = malloc(sizeof(float) * 3 * H), *h0 = malloc(sizeof(float) * B * H);
    float *dh = malloc(sizeof(float) * nh), *h = malloc(sizeof(float) * nh);
    float *cache = malloc(sizeof(float) * 4 * nh), *dxp = malloc(sizeof(float) * nx);
    float *dhn = malloc(sizeof(float) * nh), *dh0 = malloc(sizeof(float) * B * H);
    float *h_ref = malloc(sizeof(float) * nh), *dxp_ref = malloc(sizeof(float) * nx);
    float *dh0_ref = malloc(sizeof(float) * B * H);
    for (size_t i = 0; i < nx; i++) xp[i] = (float)urand(&s);
    for (int i = 0; i < 3 * H * H; i++) U[i] = (float)(urand(&s) * 0.6 / sqrt(H));
    for (int i = 0; i < 3 * H; i++) br[i] = (float)(0.1 * urand(&s));
    for (int i = 0; i < B * H; i++) h0[i] = (float)(0.5 * urand(&s));
    for (size_t i = 0; i < nh; i++) dh[i] = (float)urand(&s);
    int got = lpcnet_gru_set_simd_level(level);
    int bad = lpcnet_gru_forward(B, T, H, xp, U, br, h0, h, cache, threads, bf16) ||
              lpcnet_gru_backward(B, T, H, dh, h, h0, cache, U, dxp, dhn, dh0, threads, bf16);
    reference(B, T, H, xp, U, br, h0, dh, h_ref, dxp_ref, dh0_ref, NULL);
    double tol = (bf16 && got == LPCNET_SIMD_AVX512_BF16) ? 3e-2 : 2e-4;
    double e1 = max_rel(h, h_ref, nh), e2 = max_rel(dxp, dxp_ref, nx), e3 = max_rel(dh0, dh0_ref, B * H);
    if (bad || e1 > tol || e2 > tol || e3 > tol) {
        printf("FAIL B=%d T=%d H=%d level=%d(%d) bf16=%d threads=%d: status %d, errors %g %g %g\n",
               B, T, H, level, got, bf16, threads, bad, e1, e2, e3);
        bad = 1;
    }
    free(xp), free(U), free(br), free(h0), free(dh), free(h), free(cache), free(dxp), free(dhn);
    free(dh0), free(h_ref), free(dxp_ref), free(dh0_ref);
    return bad;
}

/* Inputs in parts (codes gathered from tables, frames, an xp part) against the reference run on
 * the summed projection: h_out, dxp, dhr, dh0, and the part gradients (sums of the reference's
 * dxp over each code's steps and each frame's steps, db_rec the sum of dhr). */
static int run_parts_case(int B, int T, int H, int ncodes, int frame_size, int with_xp, int level,
                          int bf16, int threads)
{
    unsigned s = (unsigned)(B * 7 + T * 5 + H * 3 + ncodes + frame_size);
    const int levels = 5, h3 = 3 * H, nframes = (T + frame_size - 1) / frame_size;
    size_t nx = (size_t)B * T * h3, nh = (size_t)B * T * H, ntab = (size_t)ncodes * levels * h3;
    size_t nfr = (size_t)B * nframes * h3;
    float *xpart = malloc(sizeof(float) * nx), *xp = malloc(sizeof(float) * nx);
    float *tables = malloc(sizeof(float) * (ntab + 1)), *frames = malloc(sizeof(float) * nfr);
    int32_t *codes = malloc(sizeof(int32_t) * ((size_t)B * T * ncodes + 1));
    float *U = malloc(sizeof(float) * h3 * H), *br = malloc(sizeof(float) * h3);
    float *h0 = malloc(sizeof(float) * B * H), *dh = malloc(sizeof(float) * nh);
    float *h = malloc(sizeof(float) * nh), *cache = malloc(sizeof(float) * 4 * nh);
    float *dxp = malloc(sizeof(float) * nx), *dhr = malloc(sizeof(float) * nx);
    float *dtab = malloc(sizeof(float) * (ntab + 1)), *dfr = malloc(sizeof(float) * nfr);
    float *dbr = malloc(sizeof(float) * h3), *dh0 = malloc(sizeof(float) * B * H);
    float *h_ref = malloc(sizeof(float) * nh), *dxp_ref = malloc(sizeof(float) * nx);
    float *dhr_ref = malloc(sizeof(float) * nx), *dh0_ref = malloc(sizeof(float) * B * H);
    float *dtab_ref = calloc(ntab + 1, sizeof(float)), *dfr_ref = calloc(nfr, sizeof(float));
    float *dbr_ref = calloc(h3, sizeof(float));
    for (size_t i = 0; i < nx; i++) xpart[i] = with_xp ? (float)(0.5 * urand(&s)) : 0.0f;
    for (size_t i = 0; i < ntab; i++) tables[i] = (float)(0.5 * urand(&s));
    for (size_t i = 0; i < nfr; i++) frames[i] = (float)(0.5 * urand(&s));
    for (size_t i = 0; i < (size_t)B * T * ncodes; i++) codes[i] = (int32_t)((urand(&s) + 1) * 0.5 * levels) % levels;
    for (int i = 0; i < h3 * H; i++) U[i] = (float)(urand(&s) * 0.6 / sqrt(H));
    for (int i = 0; i < h3; i++) br[i] = (float)(0.1 * urand(&s));
    for (int i = 0; i < B * H; i++) h0[i] = (float)(0.5 * urand(&s));
    for (size_t i = 0; i < nh; i++) dh[i] = (float)urand(&s);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < h3; j++) {
                size_t q = ((size_t)b * T + t) * h3 + j;
                float v = xpart[q];
                for (int c = 0; c < ncodes; c++)
                    v += tables[((size_t)c * levels + codes[((size_t)b * T + t) * ncodes + c]) * h3 + j];
                xp[q] = v + frames[((size_t)b * nframes + t / frame_size) * h3 + j];
            }
    LpcnetGruInput in = {with_xp ? xpart : NULL, ncodes, levels, codes, tables, frame_size, nframes, frames};
    int got = lpcnet_gru_set_simd_level(level);
    const int kh = (H + 1) / 2, k3 = (3 * H + 1) / 2;
    uint16_t *hp16 = malloc(sizeof(uint16_t) * 2 * kh * B * T), *dhr16 = malloc(sizeof(uint16_t) * 2 * k3 * B * T);
    int bad = lpcnet_gru_forward_parts(B, T, H, &in, U, br, h0, h, cache, hp16, threads, bf16) ||
              lpcnet_gru_backward_parts(B, T, H, &in, dh, h, h0, cache, U, with_xp ? dxp : NULL,
                                        dtab, dfr, dhr, dhr16, dbr, dh0, threads, bf16);
    /* the bfloat16 copies: h_prev and dhr rounded (to nearest even), rows padded with 0 */
    for (int b = 0; b < B && !bad; b++)
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            for (int i = 0; i < 2 * kh; i++) {
                float want = i < H ? (t ? h[(bt - 1) * H + i] : h0[b * H + i]) : 0.0f;
                float got = bf16_value(hp16[bt * 2 * kh + i]);
                bad |= fabsf(got - want) > 4e-3f * fabsf(want) || (i >= H && got != 0.0f);
            }
            for (int i = 0; i < 2 * k3; i++) {
                float want = i < 3 * H ? dhr[bt * h3 + i] : 0.0f;
                float got = bf16_value(dhr16[bt * 2 * k3 + i]);
                bad |= fabsf(got - want) > 4e-3f * fabsf(want) || (i >= 3 * H && got != 0.0f);
            }
        }
    free(hp16), free(dhr16);
    reference(B, T, H, xp, U, br, h0, dh, h_ref, dxp_ref, dh0_ref, dhr_ref);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < h3; j++) {
                size_t q = ((size_t)b * T + t) * h3 + j;
                for (int c = 0; c < ncodes; c++)
                    dtab_ref[((size_t)c * levels + codes[((size_t)b * T + t) * ncodes + c]) * h3 + j] += dxp_ref[q];
                dfr_ref[((size_t)b * nframes + t / frame_size) * h3 + j] += dxp_ref[q];
                dbr_ref[j] += dhr_ref[q];
            }
    double tol = (bf16 && got == LPCNET_SIMD_AVX512_BF16) ? 3e-2 : 2e-4;
    double e[7] = {max_rel(h, h_ref, nh), with_xp ? max_rel(dxp, dxp_ref, nx) : 0,
                   max_rel(dhr, dhr_ref, nx), max_rel(dh0, dh0_ref, B * H),
                   ncodes ? max_rel(dtab, dtab_ref, ntab) : 0, max_rel(dfr, dfr_ref, nfr),
                   max_rel(dbr, dbr_ref, h3)};
    for (int i = 0; i < 7; i++) bad |= e[i] > tol;
    if (bad)
        printf("FAIL parts B=%d T=%d H=%d codes=%d frame=%d xp=%d level=%d(%d) bf16=%d threads=%d: "
               "errors %g %g %g %g %g %g %g\n", B, T, H, ncodes, frame_size, with_xp, level, got, bf16,
               threads, e[0], e[1], e[2], e[3], e[4], e[5], e[6]);
    /* a code out of range is refused before anything is computed */
    if (ncodes) {
        codes[0] = levels;
        bad |= lpcnet_gru_forward_parts(B, T, H, &in, U, br, h0, h, cache, NULL, threads, bf16) != -1;
    }
    free(xpart), free(xp), free(tables), free(frames), free(codes), free(U), free(br), free(h0);
    free(dh), free(h), free(cache), free(dxp), free(dhr), free(dtab), free(dfr), free(dbr), free(dh0);
    free(h_ref), free(dxp_ref), free(dhr_ref), free(dh0_ref), free(dtab_ref), free(dfr_ref), free(dbr_ref);
    return bad != 0;
}

/* Output head: loss of one sample in double (MDense, tree, clipped cross-entropy), the reference
 * of lpcnet_tree_head_forward and, by central differences, of its gradients. */
static double head_loss_ref(int D, int U, int C, const float *v, const double *K, const double *bias,
                            const double *factor, int y, double eps)
{
    double pdf[256], S = 0;
    for (int x = 0; x < U; x++) pdf[x] = 1.0;
    for (int u = 1; u < U; u++) {
        double s = 0;
        for (int c = 0; c < C; c++) {
            double a = bias[u * C + c];
            for (int d = 0; d < D; d++) a += v[d] * K[(u * D + d) * C + c];
            s += factor[u * C + c] * tanh(a);
        }
        double q = sig(s);
        int depth = 0, b;
        while ((1 << (depth + 1)) <= u) depth++;          /* node u is at depth floor(log2 u) */
        int levels = 0;
        while ((1 << levels) < U) levels++;
        for (int x = 0; x < U; x++) {                      /* codes whose prefix passes node u */
            if ((1 << depth) + (x >> (levels - depth)) != u) continue;
            b = (x >> (levels - 1 - depth)) & 1;
            pdf[x] *= b ? q : 1 - q;
        }
    }
    for (int x = 0; x < U; x++) S += fmin(fmax(pdf[x], eps), 1 - eps);
    return log(S) - log(fmin(fmax(pdf[y], eps), 1 - eps));
}

/* d/dp of sum_n dloss[n] * loss_n by central differences of step h, p one of the double
 * weights K / bias / factor that head_loss_ref reads (restored afterwards). */
static double head_param_fd(double *p, double h, int N, int D, int U, int C, const float *v,
                            const double *K, const double *bias, const double *factor,
                            const int32_t *y, const float *dloss, double eps)
{
    double keep = *p, lp = 0, lm = 0;
    *p = keep + h;
    for (int n = 0; n < N; n++) lp += dloss[n] * head_loss_ref(D, U, C, v + n * D, K, bias, factor, y[n], eps);
    *p = keep - h;
    for (int n = 0; n < N; n++) lm += dloss[n] * head_loss_ref(D, U, C, v + n * D, K, bias, factor, y[n], eps);
    *p = keep;
    return (lp - lm) / (2 * h);
}

static int run_head_case(int N, int D, int U, int C, int level, int threads)
{
    unsigned s = (unsigned)(N * 3 + D * 5 + U + C);
    const double eps = 1e-7, h = 1e-3;
    int nw = U * D * C, bad = 0;
    float *v = malloc(sizeof(float) * N * D), *K = malloc(sizeof(float) * nw);
    float *bias = malloc(sizeof(float) * U * C), *factor = malloc(sizeof(float) * U * C);
    float *pdf = malloc(sizeof(float) * N * U), *loss = malloc(sizeof(float) * N);
    float *dloss = malloc(sizeof(float) * N), *dv = malloc(sizeof(float) * N * D);
    float *dK = malloc(sizeof(float) * nw), *db = malloc(sizeof(float) * U * C), *df = malloc(sizeof(float) * U * C);
    double *Kd = malloc(sizeof(double) * nw), *bd = malloc(sizeof(double) * U * C), *fd = malloc(sizeof(double) * U * C);
    int32_t *y = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N * D; i++) v[i] = (float)urand(&s);
    for (int i = 0; i < nw; i++) K[i] = (float)(2.0 * urand(&s)), Kd[i] = K[i];
    for (int i = 0; i < U * C; i++) bias[i] = (float)urand(&s), bd[i] = bias[i];
    for (int i = 0; i < U * C; i++) factor[i] = (float)(2.0 * urand(&s)), fd[i] = factor[i];
    for (int n = 0; n < N; n++) y[n] = (int32_t)((urand(&s) + 1) * 0.5 * U) % U, dloss[n] = (float)(1.0 + urand(&s));
    lpcnet_gru_set_simd_level(level);
    bad |= lpcnet_tree_head_forward(N, D, U, C, v, K, bias, factor, y, (float)eps, pdf, loss, NULL, NULL,
                                    NULL, NULL, threads) != 0;
    {   /* the one-pass gradients of the forward == the backward's with dloss = 1 */
        float *ones = malloc(sizeof(float) * N), *g1 = malloc(sizeof(float) * (N * D + nw + 2 * U * C));
        float *g2 = malloc(sizeof(float) * (N * D + nw + 2 * U * C));
        for (int n = 0; n < N; n++) ones[n] = 1.0f;
        bad |= lpcnet_tree_head_forward(N, D, U, C, v, K, bias, factor, y, (float)eps, NULL, NULL, g1,
                                        g1 + N * D, g1 + N * D + nw, g1 + N * D + nw + U * C, threads) != 0;
        bad |= lpcnet_tree_head_backward(N, D, U, C, v, K, bias, factor, y, (float)eps, ones, NULL, g2,
                                         g2 + N * D, g2 + N * D + nw, g2 + N * D + nw + U * C, threads) != 0;
        bad |= memcmp(g1, g2, sizeof(float) * (N * D + nw + 2 * U * C)) != 0;
        free(ones), free(g1), free(g2);
    }
    bad |= lpcnet_tree_head_backward(N, D, U, C, v, K, bias, factor, y, (float)eps, dloss, NULL, dv, dK, db,
                                     df, threads) != 0;
    double err = 0;
    for (int n = 0; n < N && !bad; n++) {
        double l = head_loss_ref(D, U, C, v + n * D, Kd, bd, fd, y[n], eps), tot = 0;
        err = fmax(err, fabs(l - loss[n]) / (1 + fabs(l)));
        for (int x = 0; x < U; x++) tot += pdf[n * U + x];
        err = fmax(err, fabs(tot - 1));
        for (int d = 0; d < D; d++) {                      /* dL/dv by central differences */
            float keep = v[n * D + d];
            v[n * D + d] = keep + (float)h;
            double lp = head_loss_ref(D, U, C, v + n * D, Kd, bd, fd, y[n], eps);
            v[n * D + d] = keep - (float)h;
            double lm = head_loss_ref(D, U, C, v + n * D, Kd, bd, fd, y[n], eps);
            v[n * D + d] = keep;
            double want = dloss[n] * (lp - lm) / ((double)(keep + (float)h) - (double)(keep - (float)h));
            err = fmax(err, fabs(want - dv[n * D + d]) / (1 + fabs(want)));
        }
    }
    for (int i = 0; i < nw && !bad; i += 7) {              /* dL/dK summed over the samples */
        double want = head_param_fd(&Kd[i], h, N, D, U, C, v, Kd, bd, fd, y, dloss, eps);
        err = fmax(err, fabs(want - dK[i]) / (1 + fabs(want)));
    }
    for (int i = 0; i < U * C && !bad; i += 3) {           /* bias and factor */
        err = fmax(err, fabs(head_param_fd(&bd[i], h, N, D, U, C, v, Kd, bd, fd, y, dloss, eps) - db[i]) /
                        (1 + fabs(db[i])));
        err = fmax(err, fabs(head_param_fd(&fd[i], h, N, D, U, C, v, Kd, bd, fd, y, dloss, eps) - df[i]) /
                        (1 + fabs(df[i])));
    }
    /* float32 sums and differences of step 1e-3: 1e-3 relative catches any wrong term */
    if (bad || err > 1e-3) {
        printf("FAIL head N=%d D=%d U=%d C=%d level=%d threads=%d: status %d, error %g\n", N, D, U, C,
               level, threads, bad, err);
        bad = 1;
    }
    y[0] = U;                                              /* a target out of range is refused */
    bad |= lpcnet_tree_head_forward(N, D, U, C, v, K, bias, factor, y, (float)eps, pdf, loss, NULL, NULL,
                                    NULL, NULL, threads) != -1;
    free(v), free(K), free(bias), free(factor), free(pdf), free(loss), free(dloss), free(dv), free(dK);
    free(db), free(df), free(Kd), free(bd), free(fd), free(y);
    return bad;
}

int main(void)
{
    static const int shapes[][3] = {{1, 1, 1}, {5, 7, 16}, {17, 9, 37}, {3, 5, 48}, {2, 4, 3}};
    static const int levels[] = {LPCNET_SIMD_SCALAR, LPCNET_SIMD_AVX512, LPCNET_SIMD_AVX512_BF16};
    int fails = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t l = 0; l < 3; l++)
            for (int bf16 = 0; bf16 < 2; bf16++)
                for (int threads = 1; threads <= 3; threads += 2)
                    fails += run_case(shapes[i][0], shapes[i][1], shapes[i][2], levels[l], bf16, threads);
    static const int part_shapes[][5] = {{3, 20, 16, 3, 7}, {5, 9, 37, 2, 4}, {2, 6, 5, 0, 3}, {1, 4, 3, 1, 4}};
    for (size_t i = 0; i < sizeof part_shapes / sizeof part_shapes[0]; i++)
        for (size_t l = 0; l < 3; l++)
            for (int v = 0; v < 4; v++)   /* bf16 x with an xp part */
                fails += run_parts_case(part_shapes[i][0], part_shapes[i][1], part_shapes[i][2],
                                        part_shapes[i][3], part_shapes[i][4], v & 1, levels[l], v >> 1,
                                        1 + 2 * (int)(i % 2));
    static const int head_shapes[][4] = {{5, 16, 256, 2}, {3, 3, 16, 2}, {4, 2, 8, 3}};
    for (size_t i = 0; i < sizeof head_shapes / sizeof head_shapes[0]; i++)
        for (size_t l = 0; l < 3; l++)
            for (int threads = 1; threads <= 3; threads += 2)
                fails += run_head_case(head_shapes[i][0], head_shapes[i][1], head_shapes[i][2],
                                       head_shapes[i][3], levels[l], threads);
    /* Bad sizes are refused, not crashed on. */
    fails += lpcnet_gru_forward(0, 1, 1, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0) != -1;
    fails += lpcnet_gru_backward(1, -1, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0) != -1;
    if (fails) {
        printf("%d failures\n", fails);
        return 1;
    }
    printf("ok\n");
    return 0;
}
