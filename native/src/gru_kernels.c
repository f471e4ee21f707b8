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

static void sum_rows_c(int n, int nsrc, const float *const *src, float *dst)
{
    for (int i = 0; i < n; i++) {
        float acc = src[0][i];
        for (int s = 1; s < nsrc; s++) acc += src[s][i];
        dst[i] = acc;
    }
}

static void add_to_rows_c(int n, const float *src, int ndst, float *const *dst)
{
    for (int d = 0; d < ndst; d++)
        for (int i = 0; i < n; i++) dst[d][i] += src[i];
}

static void to_bf16_c(int nb, int K, const float *X, size_t ldx, uint32_t *Xp)
{
    int Kp = (K + 1) / 2;
    for (int b = 0; b < nb; b++)
        for (int kk = 0; kk < Kp; kk++) {
            uint32_t lo = gru_to_bf16(X[b * ldx + 2 * kk]);
            uint32_t hi = 2 * kk + 1 < K ? gru_to_bf16(X[b * ldx + 2 * kk + 1]) : 0;
            Xp[(size_t)b * Kp + kk] = lo | (hi << 16);
        }
}

/* Box-Muller pair from 64 random bits: u1 = (bits 40..63 + 1/2) / 2^24 in (0, 1) (so
 * |r| <= 5.9 stddev), u2 = bits 16..39 / 2^24 in [0, 1), r = stddev sqrt(-2 ln u1),
 * theta = 2 pi u2. */
static void normal_fill_c(float *out, size_t n, uint64_t state, float stddev)
{
    for (size_t base = 0; base < n; base += 32) {
        float blk[32];
        for (int j = 0; j < 16; j++) {
            uint64_t x = gru_pair_bits(state, base / 2 + (uint64_t)j);
            float u1 = ((float)(x >> 40) + 0.5f) * 0x1p-24f;
            float u2 = (float)((x >> 16) & 0xFFFFFFu) * 0x1p-24f;
            float r = stddev * sqrtf(-2.0f * logf(u1));
            float th = 6.28318530717958648f * u2;
            blk[j] = r * cosf(th);
            blk[16 + j] = r * sinf(th);
        }
        size_t left = n - base < 32 ? n - base : 32;
        memcpy(out + base, blk, sizeof(float) * left);
    }
}

static void head_fwd_c(int D, int U, int C, const float *v, const float *Kp, const float *bias_t,
                       const float *factor_t, float *t, float *q)
{
    for (int c = 0; c < C; c++)
        for (int u = 0; u < U; u++) {
            float acc = 0.0f;
            for (int d = 0; d < D; d++) acc += v[d] * Kp[((size_t)c * D + d) * U + u];
            t[c * U + u] = tanhf(acc + bias_t[c * U + u]);
        }
    for (int u = 0; u < U; u++) {
        float s = 0.0f;
        for (int c = 0; c < C; c++) s += factor_t[c * U + u] * t[c * U + u];
        q[u] = sigmoid_c(s);
    }
}

static void head_bwd_c(int nb, int D, int U, int C, const float *v, const float *Kp,
                       const float *factor_t, const float *t, const float *q, const float *dq,
                       float *dv, float *dKp, float *dbias_t, float *dfactor_t, float *da)
{
    (void)da;
    for (int i = 0; i < nb; i++, v += D, t += (size_t)C * U, q += U, dq += U, dv += D) {
        for (int d = 0; d < D; d++) dv[d] = 0.0f;
        for (int u = 0; u < U; u++) {
            float ds = dq[u] * q[u] * (1.0f - q[u]);
            for (int c = 0; c < C; c++) {
                float tt = t[c * U + u], g = ds * factor_t[c * U + u] * (1.0f - tt * tt);
                dfactor_t[c * U + u] += ds * tt;
                dbias_t[c * U + u] += g;
                for (int d = 0; d < D; d++) {
                    dKp[((size_t)c * D + d) * U + u] += g * v[d];
                    dv[d] += g * Kp[((size_t)c * D + d) * U + u];
                }
            }
        }
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

/* The scalar float32 slots, shared by the reference table and the engine's scalar table. */
#define GRU_SCALAR_F32_SLOTS                                                                    \
  .level = LPCNET_SIMD_SCALAR, .matmul = matmul_c, .fwd_gates = fwd_gates_c,                    \
  .bwd_gates = bwd_gates_c, .sum_rows = sum_rows_c, .add_to_rows = add_to_rows_c,               \
  .normal_fill = normal_fill_c, .head_fwd = head_fwd_c, .head_bwd = head_bwd_c,                 \
  .max_rows = 1 << 30

const GruKernels gru_kernels_ref = {
    GRU_SCALAR_F32_SLOTS,
    .matmul_bf16 = matmul_bf16_c,
    .to_bf16 = to_bf16_c,
};

/* The engine's scalar table: float32 products only (bf16 ignored, include/lpcnet_gru.h). */
static const GruKernels gru_kernels_c = {GRU_SCALAR_F32_SLOTS};

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

static void sum_rows_512(int n, int nsrc, const float *const *src, float *dst)
{
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 acc = _mm512_maskz_loadu_ps(m, src[0] + i);
        for (int s = 1; s < nsrc; s++) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, src[s] + i));
        _mm512_mask_storeu_ps(dst + i, m, acc);
    }
}

/* 16 units per vector, up to 16 vectors (256 units) of independent sums per pass over d. */
static void head_fwd_512(int D, int U, int C, const float *v, const float *Kp, const float *bias_t,
                         const float *factor_t, float *t, float *q)
{
    for (int u0 = 0; u0 < U; u0 += 256) {
        const int nv = (U - u0) / 16 < 16 ? (U - u0) / 16 : 16;
        for (int c = 0; c < C; c++) {
            __m512 acc[16];
            for (int i = 0; i < nv; i++) acc[i] = _mm512_setzero_ps();
            for (int d = 0; d < D; d++) {
                __m512 x = _mm512_set1_ps(v[d]);
                const float *k = Kp + ((size_t)c * D + d) * U + u0;
                for (int i = 0; i < nv; i++) acc[i] = _mm512_fmadd_ps(x, _mm512_loadu_ps(k + 16 * i), acc[i]);
            }
            for (int i = 0; i < nv; i++) {
                size_t o = (size_t)c * U + u0 + 16 * i;
                _mm512_storeu_ps(t + o, tanh512(_mm512_add_ps(acc[i], _mm512_loadu_ps(bias_t + o))));
            }
        }
    }
    for (int u = 0; u < U; u += 16) {
        __m512 s = _mm512_setzero_ps();
        for (int c = 0; c < C; c++)
            s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_loadu_ps(factor_t + (size_t)c * U + u),
                                               _mm512_loadu_ps(t + (size_t)c * U + u)));
        _mm512_storeu_ps(q + u, sigmoid512(s));
    }
}

/* Blocked over the nb samples: dKp is read and written once per block (it and Kp do not
 * both fit in L1); dv per sample from da. */
static void head_bwd_512(int nb, int D, int U, int C, const float *v, const float *Kp,
                         const float *factor_t, const float *t, const float *q, const float *dq,
                         float *dv, float *dKp, float *dbias_t, float *dfactor_t, float *da)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const size_t cu = (size_t)C * U;
    for (int u = 0; u < U; u += 16)
        for (int c = 0; c < C; c++) {
            size_t o = (size_t)c * U + u;
            __m512 f = _mm512_loadu_ps(factor_t + o);
            __m512 dfa = _mm512_loadu_ps(dfactor_t + o), dba = _mm512_loadu_ps(dbias_t + o);
            for (int i = 0; i < nb; i++) {
                __m512 qq = _mm512_loadu_ps(q + (size_t)i * U + u);
                __m512 ds = _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(dq + (size_t)i * U + u), qq),
                                          _mm512_sub_ps(one, qq));
                __m512 tt = _mm512_loadu_ps(t + i * cu + o);
                __m512 g = _mm512_mul_ps(_mm512_mul_ps(ds, f), _mm512_fnmadd_ps(tt, tt, one));
                dfa = _mm512_add_ps(dfa, _mm512_mul_ps(ds, tt));
                dba = _mm512_add_ps(dba, g);
                _mm512_storeu_ps(da + i * cu + o, g);
            }
            _mm512_storeu_ps(dfactor_t + o, dfa);
            _mm512_storeu_ps(dbias_t + o, dba);
            for (int d = 0; d < D; d++) {
                float *k = dKp + ((size_t)c * D + d) * U + u;
                __m512 acc = _mm512_loadu_ps(k);
                for (int i = 0; i < nb; i++)
                    acc = _mm512_fmadd_ps(_mm512_loadu_ps(da + i * cu + o), _mm512_set1_ps(v[(size_t)i * D + d]), acc);
                _mm512_storeu_ps(k, acc);
            }
        }
    for (int i = 0; i < nb; i++) {
        const float *g = da + i * cu;
        for (int d = 0; d < D; d++) {
            __m512 acc = _mm512_setzero_ps();
            for (int c = 0; c < C; c++) {
                const float *k = Kp + ((size_t)c * D + d) * U, *gc = g + (size_t)c * U;
                for (int u = 0; u < U; u += 16)
                    acc = _mm512_fmadd_ps(_mm512_loadu_ps(gc + u), _mm512_loadu_ps(k + u), acc);
            }
            dv[(size_t)i * D + d] = _mm512_reduce_add_ps(acc);
        }
    }
}

static void add_to_rows_512(int n, const float *src, int ndst, float *const *dst)
{
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, src + i);
        for (int d = 0; d < ndst; d++)
            _mm512_mask_storeu_ps(dst[d] + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst[d] + i), v));
    }
}

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,fma")
static inline __m512i mix64_512(__m512i z)
{
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* ln(x) for x in (0, 1]: exponent and mantissa in [sqrt(1/2), sqrt(2)), Cephes logf polynomial. */
static inline __m512 log512(__m512 x)
{
    __m512 e = _mm512_getexp_ps(x);
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
    e = _mm512_mask_add_ps(e, big, e, _mm512_set1_ps(1.0f));
    __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f)), z = _mm512_mul_ps(f, f);
    __m512 p = _mm512_set1_ps(7.0376836292e-2f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-1.1514610310e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.1676998740e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-1.2420140846e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.4249322787e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-1.6668057665e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.0000714765e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-2.4999993993e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(3.3333331174e-1f));
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(p, f), z);
    y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), y);
    y = _mm512_fnmadd_ps(z, _mm512_set1_ps(0.5f), y);
    return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), _mm512_add_ps(f, y));
}

/* cos and sin of 2 pi u, u in [0, 1): quadrant q = floor(4u), phi = (4u - q) pi / 2 in
 * [0, pi / 2), Taylor polynomials (error < 1e-7), then the quarter turns of q. */
static inline void sincos2pi512(__m512 u, __m512 *c, __m512 *s)
{
    __m512 a = _mm512_mul_ps(u, _mm512_set1_ps(4.0f));
    __m512 qf = _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 phi = _mm512_mul_ps(_mm512_sub_ps(a, qf), _mm512_set1_ps(1.57079632679489662f));
    __m512 p2 = _mm512_mul_ps(phi, phi);
    __m512 sp = _mm512_set1_ps(-1.0f / 39916800.0f);
    sp = _mm512_fmadd_ps(sp, p2, _mm512_set1_ps(1.0f / 362880.0f));
    sp = _mm512_fmadd_ps(sp, p2, _mm512_set1_ps(-1.0f / 5040.0f));
    sp = _mm512_fmadd_ps(sp, p2, _mm512_set1_ps(1.0f / 120.0f));
    sp = _mm512_fmadd_ps(sp, p2, _mm512_set1_ps(-1.0f / 6.0f));
    __m512 sn = _mm512_fmadd_ps(_mm512_mul_ps(sp, p2), phi, phi);
    __m512 cp = _mm512_set1_ps(1.0f / 479001600.0f);
    cp = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(-1.0f / 3628800.0f));
    cp = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(1.0f / 40320.0f));
    cp = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(-1.0f / 720.0f));
    cp = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(1.0f / 24.0f));
    cp = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(-0.5f));
    __m512 cs = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(1.0f));
    __m512i q = _mm512_cvttps_epi32(qf);
    __mmask16 swap = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
    __mmask16 negc = _mm512_test_epi32_mask(_mm512_add_epi32(q, _mm512_set1_epi32(1)), _mm512_set1_epi32(2));
    __mmask16 negs = _mm512_test_epi32_mask(q, _mm512_set1_epi32(2));
    __m512 x = _mm512_mask_blend_ps(swap, cs, sn), y = _mm512_mask_blend_ps(swap, sn, cs);
    __m512 zero = _mm512_setzero_ps();
    *c = _mm512_mask_sub_ps(x, negc, zero, x);
    *s = _mm512_mask_sub_ps(y, negs, zero, y);
}

/* 16 pairs per block: two vectors of 8 counters, bits 40..63 and 16..39 of each as floats. */
static void normal_fill_512(float *out, size_t n, uint64_t state, float stddev)
{
    const __m512i golden = _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ull);
    const __m512i lanes = _mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1);
    for (size_t base = 0; base < n; base += 32) {
        __m512i i0 = _mm512_add_epi64(_mm512_set1_epi64((long long)(base / 2)), lanes);
        __m512i i1 = _mm512_add_epi64(i0, _mm512_set1_epi64(8));
        __m512i x0 = mix64_512(_mm512_add_epi64(_mm512_set1_epi64((long long)state),
                                                _mm512_mullo_epi64(i0, golden)));
        __m512i x1 = mix64_512(_mm512_add_epi64(_mm512_set1_epi64((long long)state),
                                                _mm512_mullo_epi64(i1, golden)));
        __m512i hi = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_srli_epi64(x0, 40))),
                                        _mm512_cvtepi64_epi32(_mm512_srli_epi64(x1, 40)), 1);
        __m512i mask24 = _mm512_set1_epi64(0xFFFFFF);
        __m512i mid = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_and_si512(_mm512_srli_epi64(x0, 16), mask24))),
            _mm512_cvtepi64_epi32(_mm512_and_si512(_mm512_srli_epi64(x1, 16), mask24)), 1);
        __m512 u1 = _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps(hi), _mm512_set1_ps(0.5f)),
                                  _mm512_set1_ps(0x1p-24f));
        __m512 u2 = _mm512_mul_ps(_mm512_cvtepi32_ps(mid), _mm512_set1_ps(0x1p-24f));
        __m512 r = _mm512_mul_ps(_mm512_set1_ps(stddev),
                                 _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), log512(u1))));
        __m512 c, s;
        sincos2pi512(u2, &c, &s);
        c = _mm512_mul_ps(r, c);
        s = _mm512_mul_ps(r, s);
        size_t left = n - base;
        if (left >= 32) {
            _mm512_storeu_ps(out + base, c);
            _mm512_storeu_ps(out + base + 16, s);
        } else {
            _mm512_mask_storeu_ps(out + base, tail_mask((int)left), c);
            if (left > 16) _mm512_mask_storeu_ps(out + base + 16, tail_mask((int)left - 16), s);
        }
    }
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,fma")
/* 16 floats per vcvtneps2bf16; the bfloat16 values of a row in order are its pairs. */
static void to_bf16_512(int nb, int K, const float *X, size_t ldx, uint32_t *Xp)
{
    int Kp = (K + 1) / 2;
    for (int b = 0; b < nb; b++) {
        uint16_t *out = (uint16_t *)(Xp + (size_t)b * Kp);
        for (int k = 0; k < 2 * Kp; k += 16) {
            __mmask16 m = tail_mask(K - k), ms = tail_mask(2 * Kp - k);
            __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, X + b * ldx + k));
            _mm256_mask_storeu_epi16(out + k, ms, (__m256i)v);
        }
    }
}

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
    .sum_rows = sum_rows_512,
    .add_to_rows = add_to_rows_512,
    .normal_fill = normal_fill_512,
    .head_fwd = head_fwd_512,
    .head_bwd = head_bwd_512,
    .max_rows = 16,
};

static const GruKernels gru_kernels_avx512_bf16 = {
    .level = LPCNET_SIMD_AVX512_BF16,
    .matmul = matmul_512,
    .fwd_gates = fwd_gates_512,
    .bwd_gates = bwd_gates_512,
    .sum_rows = sum_rows_512,
    .add_to_rows = add_to_rows_512,
    .matmul_bf16 = matmul_bf16_512,
    .to_bf16 = to_bf16_512,
    .normal_fill = normal_fill_512,
    .head_fwd = head_fwd_512,
    .head_bwd = head_bwd_512,
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
