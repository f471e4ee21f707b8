/* Fused GRU recurrence for training: forward and backward over a whole batch.
 *
 * See include/lpcnet_gru.h for the maths and layouts. Each step is one small
 * matrix product (rows of the batch times a packed weight matrix) plus the gate
 * nonlinearities; the AVX-512 path keeps up to 16 rows in registers per 16-column
 * panel of the weights, the portable path is plain C. Chosen at run time.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "lpcnet_gru.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86 1
#include <immintrin.h>
#endif

#define PANEL 16

typedef void (*matmul_fn)(int nb, int K, int Np, const float *X, size_t ldx, const float *P,
                          const float *bias, float *Y, size_t ldy);
typedef void (*fwd_gates_fn)(int H, const float *xp, const float *hr, const float *hprev,
                             float *hnew, float *cache);
typedef void (*bwd_gates_fn)(int H, const float *dh, const float *hprev, const float *cache,
                             float *dxp, float *dhn, float *dhr, float *dhz);

/* Y (nb x Np) = bias + Xp . P with bfloat16 pairs (Kp = K/2 rounded up), float32 sums. */
typedef void (*matmul_bf16_fn)(int nb, int Kp, int Np, const uint32_t *Xp, const uint32_t *P,
                               const float *bias, float *Y, size_t ldy);

typedef struct {
    matmul_fn matmul;
    fwd_gates_fn fwd_gates;
    bwd_gates_fn bwd_gates;
    matmul_bf16_fn matmul_bf16; /* NULL where the CPU has no AVX512-BF16 */
    int max_rows;               /* rows per matmul call */
} kernels;

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* Rows per register-blocked matmul call: the largest of 16, 8, 4, 2, 1 not above nb; *k is
 * its index in the kernel tables (0 for 1 row ... 4 for 16 rows). */
static inline int row_block(int nb, int *k)
{
    int n = 16;
    for (*k = 4; n > nb; n >>= 1) --*k;
    return n;
}

/* P[jp][k][c] = M(k, jp*16 + c) with M(k, j) = base[k*sk + j*sj], zero past N. */
static void pack_panels(const float *base, size_t sk, size_t sj, int K, int N, float *P)
{
    int Np = round_up(N, PANEL);
    for (int jp = 0; jp < Np / PANEL; jp++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < PANEL; c++) {
                int j = jp * PANEL + c;
                P[((size_t)jp * K + k) * PANEL + c] = j < N ? base[k * sk + j * sj] : 0.0f;
            }
}

/* float -> bfloat16, round to nearest even (as TensorFlow's cast), NaN kept quiet. */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* bfloat16 pairs along k: P[jp][kk][c] = (M(2kk, j) low half, M(2kk+1, j) high half),
 * j = jp*16 + c, zero past N and past K; the operand layout of vdpbf16ps. */
static void pack_panels_bf16(const float *base, size_t sk, size_t sj, int K, int N, uint32_t *P)
{
    int Np = round_up(N, PANEL), Kp = (K + 1) / 2;
    for (int jp = 0; jp < Np / PANEL; jp++)
        for (int kk = 0; kk < Kp; kk++)
            for (int c = 0; c < PANEL; c++) {
                int j = jp * PANEL + c, k0 = 2 * kk, k1 = 2 * kk + 1;
                uint32_t lo = (j < N) ? to_bf16(base[k0 * sk + j * sj]) : 0;
                uint32_t hi = (j < N && k1 < K) ? to_bf16(base[k1 * sk + j * sj]) : 0;
                P[((size_t)jp * Kp + kk) * PANEL + c] = lo | (hi << 16);
            }
}

/* Rows of X (nb x K, row stride ldx) -> bfloat16 pairs (nb x Kp). */
static void rows_to_bf16(int nb, int K, const float *X, size_t ldx, uint32_t *Xp)
{
    int Kp = (K + 1) / 2;
    for (int b = 0; b < nb; b++)
        for (int kk = 0; kk < Kp; kk++) {
            uint32_t lo = to_bf16(X[b * ldx + 2 * kk]);
            uint32_t hi = 2 * kk + 1 < K ? to_bf16(X[b * ldx + 2 * kk + 1]) : 0;
            Xp[(size_t)b * Kp + kk] = lo | (hi << 16);
        }
}

/* --- portable C ------------------------------------------------------------------ */
static void matmul_c(int nb, int K, int Np, const float *X, size_t ldx, const float *P,
                     const float *bias, float *Y, size_t ldy)
{
    for (int b = 0; b < nb; b++)
        for (int jp = 0; jp < Np / PANEL; jp++) {
            float acc[PANEL];
            for (int c = 0; c < PANEL; c++) acc[c] = bias ? bias[jp * PANEL + c] : 0.0f;
            const float *pp = P + (size_t)jp * K * PANEL;
            for (int k = 0; k < K; k++) {
                float x = X[b * ldx + k];
                for (int c = 0; c < PANEL; c++) acc[c] += x * pp[k * PANEL + c];
            }
            memcpy(Y + b * ldy + jp * PANEL, acc, sizeof acc);
        }
}

static float sigmoid_c(float x) { return 1.0f / (1.0f + expf(-x)); }

static void fwd_gates_c(int H, const float *xp, const float *hr, const float *hprev,
                        float *hnew, float *cache)
{
    for (int i = 0; i < H; i++) {
        float z = sigmoid_c(xp[i] + hr[i]);
        float r = sigmoid_c(xp[H + i] + hr[H + i]);
        float hn = hr[2 * H + i];
        float n = tanhf(xp[2 * H + i] + r * hn);
        cache[i] = z;
        cache[H + i] = r;
        cache[2 * H + i] = n;
        cache[3 * H + i] = hn;
        hnew[i] = z * hprev[i] + (1.0f - z) * n;
    }
}

static void bwd_gates_c(int H, const float *dh, const float *hprev, const float *cache,
                        float *dxp, float *dhn, float *dhr, float *dhz)
{
    for (int i = 0; i < H; i++) {
        float z = cache[i], r = cache[H + i], n = cache[2 * H + i], hn = cache[3 * H + i];
        float dnp = dh[i] * (1.0f - z) * (1.0f - n * n);
        float dzp = dh[i] * (hprev[i] - n) * z * (1.0f - z);
        float drp = dnp * hn * r * (1.0f - r);
        dxp[i] = dhr[i] = dzp;
        dxp[H + i] = dhr[H + i] = drp;
        dxp[2 * H + i] = dnp;
        dhn[i] = dhr[2 * H + i] = dnp * r;
        dhz[i] = dh[i] * z;
    }
}

static const kernels kernels_c = { matmul_c, fwd_gates_c, bwd_gates_c, NULL, 1 << 30 };

/* --- AVX-512 ----------------------------------------------------------------------- */
#ifdef HAVE_X86
#pragma GCC push_options
#pragma GCC target("avx512f,fma")

/* exp(x) for float32 lanes, ~1 ulp (Cephes expf polynomial, exponent via vscalefps). */
static inline __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 sigmoid512(__m512 x)
{
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* tanh(x) = 1 - 2 / (exp(2x) + 1): absolute error ~1e-7 near 0, exact limits at +-inf. */
static inline __m512 tanh512(__m512 x)
{
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = exp512(_mm512_add_ps(x, x));
    return _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
}

#define DEFINE_MM512(NB)                                                                     \
    static void mm512_##NB(int K, int Np, const float *X, size_t ldx, const float *P,         \
                           const float *bias, float *Y, size_t ldy)                           \
    {                                                                                         \
        for (int jp = 0; jp < Np / PANEL; jp++) {                                             \
            const float *pp = P + (size_t)jp * K * PANEL;                                     \
            __m512 acc[NB];                                                                   \
            __m512 b0 = bias ? _mm512_loadu_ps(bias + jp * PANEL) : _mm512_setzero_ps();      \
            for (int b = 0; b < NB; b++) acc[b] = b0;                                         \
            for (int k = 0; k < K; k++) {                                                     \
                __m512 m = _mm512_loadu_ps(pp + (size_t)k * PANEL);                           \
                for (int b = 0; b < NB; b++)                                                  \
                    acc[b] = _mm512_fmadd_ps(_mm512_set1_ps(X[b * ldx + k]), m, acc[b]);      \
            }                                                                                 \
            for (int b = 0; b < NB; b++) _mm512_storeu_ps(Y + b * ldy + jp * PANEL, acc[b]);  \
        }                                                                                     \
    }
DEFINE_MM512(1)
DEFINE_MM512(2)
DEFINE_MM512(4)
DEFINE_MM512(8)
DEFINE_MM512(16)

static void matmul_512(int nb, int K, int Np, const float *X, size_t ldx, const float *P,
                       const float *bias, float *Y, size_t ldy)
{
    static void (*const mm[5])(int, int, const float *, size_t, const float *, const float *,
                               float *, size_t) = { mm512_1, mm512_2, mm512_4, mm512_8, mm512_16 };
    while (nb > 0) {
        int k, n = row_block(nb, &k);
        mm[k](K, Np, X, ldx, P, bias, Y, ldy);
        X += n * ldx;
        Y += n * ldy;
        nb -= n;
    }
}

static inline __mmask16 tail_mask(int left) { return left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1); }

static void fwd_gates_512(int H, const float *xp, const float *hr, const float *hprev,
                          float *hnew, float *cache)
{
    for (int i = 0; i < H; i += 16) {
        __mmask16 m = tail_mask(H - i);
        __m512 z = sigmoid512(_mm512_add_ps(_mm512_maskz_loadu_ps(m, xp + i), _mm512_maskz_loadu_ps(m, hr + i)));
        __m512 r = sigmoid512(_mm512_add_ps(_mm512_maskz_loadu_ps(m, xp + H + i),
                                            _mm512_maskz_loadu_ps(m, hr + H + i)));
        __m512 hn = _mm512_maskz_loadu_ps(m, hr + 2 * H + i);
        __m512 n = tanh512(_mm512_fmadd_ps(r, hn, _mm512_maskz_loadu_ps(m, xp + 2 * H + i)));
        __m512 hp = _mm512_maskz_loadu_ps(m, hprev + i);
        _mm512_mask_storeu_ps(cache + i, m, z);
        _mm512_mask_storeu_ps(cache + H + i, m, r);
        _mm512_mask_storeu_ps(cache + 2 * H + i, m, n);
        _mm512_mask_storeu_ps(cache + 3 * H + i, m, hn);
        /* z * h + (1 - z) * n */
        __m512 h = _mm512_add_ps(_mm512_mul_ps(z, hp),
                                 _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), z), n));
        _mm512_mask_storeu_ps(hnew + i, m, h);
    }
}

static void bwd_gates_512(int H, const float *dh, const float *hprev, const float *cache,
                          float *dxp, float *dhn, float *dhr, float *dhz)
{
    __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < H; i += 16) {
        __mmask16 m = tail_mask(H - i);
        __m512 g = _mm512_maskz_loadu_ps(m, dh + i);
        __m512 z = _mm512_maskz_loadu_ps(m, cache + i);
        __m512 r = _mm512_maskz_loadu_ps(m, cache + H + i);
        __m512 n = _mm512_maskz_loadu_ps(m, cache + 2 * H + i);
        __m512 hn = _mm512_maskz_loadu_ps(m, cache + 3 * H + i);
        __m512 hp = _mm512_maskz_loadu_ps(m, hprev + i);
        __m512 dnp = _mm512_mul_ps(_mm512_mul_ps(g, _mm512_sub_ps(one, z)),
                                   _mm512_fnmadd_ps(n, n, one));
        __m512 dzp = _mm512_mul_ps(_mm512_mul_ps(g, _mm512_sub_ps(hp, n)),
                                   _mm512_mul_ps(z, _mm512_sub_ps(one, z)));
        __m512 drp = _mm512_mul_ps(_mm512_mul_ps(dnp, hn), _mm512_mul_ps(r, _mm512_sub_ps(one, r)));
        __m512 dnr = _mm512_mul_ps(dnp, r);
        _mm512_mask_storeu_ps(dxp + i, m, dzp);
        _mm512_mask_storeu_ps(dxp + H + i, m, drp);
        _mm512_mask_storeu_ps(dxp + 2 * H + i, m, dnp);
        _mm512_mask_storeu_ps(dhr + i, m, dzp);
        _mm512_mask_storeu_ps(dhr + H + i, m, drp);
        _mm512_mask_storeu_ps(dhr + 2 * H + i, m, dnr);
        _mm512_mask_storeu_ps(dhn + i, m, dnr);
        _mm512_mask_storeu_ps(dhz + i, m, _mm512_mul_ps(g, z));
    }
}

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bf16,fma")
#define DEFINE_MMBF16(NB)                                                                    \
    static void mmbf16_##NB(int Kp, int Np, const uint32_t *Xp, const uint32_t *P,            \
                            const float *bias, float *Y, size_t ldy)                          \
    {                                                                                         \
        for (int jp = 0; jp < Np / PANEL; jp++) {                                             \
            const uint32_t *pp = P + (size_t)jp * Kp * PANEL;                                 \
            __m512 acc[NB];                                                                   \
            __m512 b0 = bias ? _mm512_loadu_ps(bias + jp * PANEL) : _mm512_setzero_ps();      \
            for (int b = 0; b < NB; b++) acc[b] = b0;                                         \
            for (int kk = 0; kk < Kp; kk++) {                                                 \
                __m512bh m = (__m512bh)_mm512_loadu_si512(pp + (size_t)kk * PANEL);           \
                for (int b = 0; b < NB; b++)                                                  \
                    acc[b] = _mm512_dpbf16_ps(                                                \
                        acc[b], (__m512bh)_mm512_set1_epi32((int)Xp[(size_t)b * Kp + kk]), m); \
            }                                                                                 \
            for (int b = 0; b < NB; b++) _mm512_storeu_ps(Y + b * ldy + jp * PANEL, acc[b]);  \
        }                                                                                     \
    }
DEFINE_MMBF16(1)
DEFINE_MMBF16(2)
DEFINE_MMBF16(4)
DEFINE_MMBF16(8)
DEFINE_MMBF16(16)

static void matmul_bf16_512(int nb, int Kp, int Np, const uint32_t *Xp, const uint32_t *P,
                            const float *bias, float *Y, size_t ldy)
{
    static void (*const mm[5])(int, int, const uint32_t *, const uint32_t *, const float *,
                               float *, size_t) = { mmbf16_1, mmbf16_2, mmbf16_4, mmbf16_8, mmbf16_16 };
    while (nb > 0) {
        int k, n = row_block(nb, &k);
        mm[k](Kp, Np, Xp, P, bias, Y, ldy);
        Xp += (size_t)n * Kp;
        Y += n * ldy;
        nb -= n;
    }
}
#pragma GCC pop_options

static const kernels kernels_512 = { matmul_512, fwd_gates_512, bwd_gates_512, NULL, 16 };
static const kernels kernels_512_bf16 = { matmul_512, fwd_gates_512, bwd_gates_512,
                                          matmul_bf16_512, 16 };

static int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}

static int cpu_has_avx512_bf16(void)
{
    return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
}
#endif

/* --- dispatch -------------------------------------------------------------------------- */
static int simd_level = -1;

int lpcnet_gru_set_simd_level(int level)
{
#ifdef HAVE_X86
    simd_level = (level >= 3 && cpu_has_avx512_bf16()) ? 3 : (level >= 2 && cpu_has_avx512()) ? 2 : 0;
#else
    (void)level;
    simd_level = 0;
#endif
    return simd_level;
}

int lpcnet_gru_simd_level(void)
{
    if (simd_level < 0) lpcnet_gru_set_simd_level(3);
    return simd_level;
}

static const kernels *active_kernels(void)
{
#ifdef HAVE_X86
    if (lpcnet_gru_simd_level() == 3) return &kernels_512_bf16;
    if (lpcnet_gru_simd_level() == 2) return &kernels_512;
#endif
    return &kernels_c;
}

/* --- drivers ------------------------------------------------------------------------------ */
typedef struct {
    int forward, B, T, H, row0, row1, status;
    const kernels *k;
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
    const kernels *k = active_kernels();
    bf16 = bf16 && k->matmul_bf16;
    int Np = round_up(3 * H, PANEL);
    float *P = malloc(sizeof(float) * ((size_t)H * Np + Np));
    if (!P) return -1;
    float *bias = P + (size_t)H * Np;
    if (bf16)
        pack_panels_bf16(U, (size_t)3 * H, 1, H, 3 * H, (uint32_t *)P);   /* needs half of P */
    else
        pack_panels(U, (size_t)3 * H, 1, H, 3 * H, P);
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
    const kernels *k = active_kernels();
    bf16 = bf16 && k->matmul_bf16;
    int Hp = round_up(H, PANEL);
    float *P = malloc(sizeof(float) * ((size_t)3 * H + 1) * Hp);
    if (!P) return -1;
    if (bf16)
        pack_panels_bf16(U, 1, (size_t)3 * H, 3 * H, H, (uint32_t *)P);   /* U^T as pairs */
    else
        pack_panels(U, 1, (size_t)3 * H, 3 * H, H, P);       /* U^T: (3H, H) */
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
