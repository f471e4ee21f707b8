/* Kernels of the fused training GRU: portable C (the references) and AVX-512 (+ BF16).
 * The AVX-512 matmul keeps up to 16 rows in registers per 16-column panel of the weights.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gru_kernels.h"

#ifdef SIMD_X86
#include <immintrin.h>
#endif

/* --- weight panels --------------------------------------------------------------- */
/* P[jp][k][c] = M(k, jp*16 + c) with M(k, j) = base[k*sk + j*sj], zero past N. */
void gru_pack_panels(const float *base, size_t sk, size_t sj, int K, int N, float *P)
{
    int Np = (N + PANEL - 1) / PANEL * PANEL;
    for (int jp = 0; jp < Np / PANEL; jp++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < PANEL; c++) {
                int j = jp * PANEL + c;
                P[((size_t)jp * K + k) * PANEL + c] = j < N ? base[k * sk + j * sj] : 0.0f;
            }
}

/* bfloat16 pairs along k: P[jp][kk][c] = (M(2kk, j) low half, M(2kk+1, j) high half),
 * j = jp*16 + c, zero past N and past K; the operand layout of vdpbf16ps. */
void gru_pack_panels_bf16(const float *base, size_t sk, size_t sj, int K, int N, uint32_t *P)
{
    int Np = (N + PANEL - 1) / PANEL * PANEL, Kp = (K + 1) / 2;
    for (int jp = 0; jp < Np / PANEL; jp++)
        for (int kk = 0; kk < Kp; kk++)
            for (int c = 0; c < PANEL; c++) {
                int j = jp * PANEL + c, k0 = 2 * kk, k1 = 2 * kk + 1;
                uint32_t lo = (j < N) ? gru_to_bf16(base[k0 * sk + j * sj]) : 0;
                uint32_t hi = (j < N && k1 < K) ? gru_to_bf16(base[k1 * sk + j * sj]) : 0;
                P[((size_t)jp * Kp + kk) * PANEL + c] = lo | (hi << 16);
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

/* Pairs summed high (odd k) then low, as vdpbf16ps does; the products of two bfloat16
 * values are exact in float32. */
static void matmul_bf16_c(int nb, int Kp, int Np, const uint32_t *Xp, const uint32_t *P,
                          const float *bias, float *Y, size_t ldy)
{
    for (int b = 0; b < nb; b++)
        for (int jp = 0; jp < Np / PANEL; jp++) {
            float acc[PANEL];
            for (int c = 0; c < PANEL; c++) acc[c] = bias ? bias[jp * PANEL + c] : 0.0f;
            const uint32_t *pp = P + (size_t)jp * Kp * PANEL;
            for (int kk = 0; kk < Kp; kk++) {
                uint32_t x = Xp[(size_t)b * Kp + kk];
                for (int c = 0; c < PANEL; c++) {
                    uint32_t w = pp[kk * PANEL + c];
                    acc[c] += gru_from_bf16(x >> 16) * gru_from_bf16(w >> 16);
                    acc[c] += gru_from_bf16(x) * gru_from_bf16(w);
                }
            }
            memcpy(Y + b * ldy + jp * PANEL, acc, sizeof acc);
        }
}

const GruKernels gru_kernels_ref = {
    .level = LPCNET_SIMD_SCALAR,
    .matmul = matmul_c,
    .fwd_gates = fwd_gates_c,
    .bwd_gates = bwd_gates_c,
    .matmul_bf16 = matmul_bf16_c,
    .max_rows = 1 << 30,
};

/* The engine's scalar table: float32 products only (bf16 ignored, include/lpcnet_gru.h). */
static const GruKernels gru_kernels_c = {
    .level = LPCNET_SIMD_SCALAR,
    .matmul = matmul_c,
    .fwd_gates = fwd_gates_c,
    .bwd_gates = bwd_gates_c,
    .max_rows = 1 << 30,
};

/* Rows per register-blocked matmul call: the largest of 16, 8, 4, 2, 1 not above nb; *k is
 * its index in the kernel tables (0 for 1 row ... 4 for 16 rows). */
static inline int row_block(int nb, int *k)
{
    int n = 16;
    for (*k = 4; n > nb; n >>= 1) --*k;
    return n;
}

/* --- AVX-512 ----------------------------------------------------------------------- */
#ifdef SIMD_X86
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

static const GruKernels gru_kernels_avx512 = {
    .level = LPCNET_SIMD_AVX512,
    .matmul = matmul_512,
    .fwd_gates = fwd_gates_512,
    .bwd_gates = bwd_gates_512,
    .max_rows = 16,
};

static const GruKernels gru_kernels_avx512_bf16 = {
    .level = LPCNET_SIMD_AVX512_BF16,
    .matmul = matmul_512,
    .fwd_gates = fwd_gates_512,
    .bwd_gates = bwd_gates_512,
    .matmul_bf16 = matmul_bf16_512,
    .max_rows = 16,
};
#endif

const GruKernels *gru_select(int level)
{
    level = simd_resolve(level);
#ifdef SIMD_X86
    if (level >= LPCNET_SIMD_AVX512_BF16) return &gru_kernels_avx512_bf16;
    if (level >= LPCNET_SIMD_AVX512) return &gru_kernels_avx512;
#endif
    return &gru_kernels_c;
}
