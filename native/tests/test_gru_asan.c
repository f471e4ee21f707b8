/* Sanitizer test of the fused training GRU (src/gru_train.c): every SIMD level, float32 and
 * bfloat16 products, 1 and 3 threads, odd sizes (tails of the 16-wide panels and of the
 * bfloat16 pairs), against a plain double-precision reference of the same maths.
 * Build and run: make -C native asan-gru   (prints "ok" and exits 0 on success). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lpcnet_gru.h"

static double urand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0 - 1.0;
}

static double sig(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Reference forward + backward in double; returns h_out and dxp, dh0 (float copies). */
static void reference(int B, int T, int H, const float *xp, const float *U, const float *br,
                      const float *h0, const float *dh_out, float *h_ref, float *dxp_ref,
                      float *dh0_ref)
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
    reference(B, T, H, xp, U, br, h0, dh, h_ref, dxp_ref, dh0_ref);
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
