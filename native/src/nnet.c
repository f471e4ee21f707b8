/* Scalar reference kernels, run-time selection of the SIMD tables, weight layouts.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "nnet.h"

static void sgemv_accum_c(float *out, const float *w, int rows, int cols, const float *x) {
  int i, j;
  for (i = 0; i < rows; i++) {
    const float xi = x[i];
    const float *wr = w + (long)i * cols;
    for (j = 0; j < cols; j++) out[j] += xi * wr[j];
  }
}

static void sgemm_accum_c(float *out, int ldo, const float *w, int rows, int cols, const float *x,
                          int ldx, int n) {
  int v;
  for (v = 0; v < n; v++) sgemv_accum_c(out + (long)v * ldo, w, rows, cols, x + (long)v * ldx);
}

static void sparse_sgemv_accum_c(float *out, const float *bias, const float *w, const int32_t *idx,
                                 int ngroups, const float *x) {
  int g, b, r, c;
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    float *y = out + NNET_BLOCK_COLS * g;
    if (bias)
      for (c = 0; c < NNET_BLOCK_COLS; c++) y[c] = bias[NNET_BLOCK_COLS * g + c];
    for (b = 0; b < count; b++) {
      const float *xr = x + *idx++;
      for (r = 0; r < NNET_BLOCK_ROWS; r++)
        for (c = 0; c < NNET_BLOCK_COLS; c++) y[c] += xr[r] * w[r * NNET_BLOCK_COLS + c];
      w += NNET_BLOCK_ROWS * NNET_BLOCK_COLS;
    }
  }
}

static void sparse_i8_accum_c(float *out, const float *bias, const int8_t *w, const int32_t *idx,
                              int ngroups, const uint8_t *x, float scale) {
  int g, b, r, c;
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    int32_t acc[NNET_BLOCK_COLS] = {0};
    for (b = 0; b < count; b++) {
      const uint8_t *xr = x + *idx++;
      for (c = 0; c < NNET_BLOCK_COLS; c++)
        for (r = 0; r < NNET_BLOCK_ROWS; r++) acc[c] += (int32_t)w[c * NNET_BLOCK_ROWS + r] * xr[r];
      w += NNET_BLOCK_ROWS * NNET_BLOCK_COLS;
    }
    for (c = 0; c < NNET_BLOCK_COLS; c++)
      out[NNET_BLOCK_COLS * g + c] = (bias ? bias : out)[NNET_BLOCK_COLS * g + c] + scale * (float)acc[c];
  }
}

/* Stream s's dword r (4 state bytes) is the first of its NNET_XE_BYTES in xe. */
static void sparse_i8_accum_multi_c(float *out, int ldo, const float *bias, int ldb, const int8_t *w,
                                    const int32_t *idx, int ngroups, const uint8_t *xe, int k,
                                    float scale) {
  const int kp = nnet_xe_streams(k);
  int g, b, r, c, s;
  for (g = 0; g < ngroups; g++) {
    const int count = *idx++;
    for (s = 0; s < k; s++) {
      int32_t acc[NNET_BLOCK_COLS] = {0};
      const float *init = bias ? bias + (long)s * ldb : out + (long)s * ldo;
      for (b = 0; b < count; b++) {
        const uint8_t *xr = xe + NNET_XE_BYTES * ((long)(idx[b] / NNET_BLOCK_ROWS) * kp + s);
        const int8_t *wb = w + (long)b * NNET_BLOCK_SIZE;
        for (c = 0; c < NNET_BLOCK_COLS; c++)
          for (r = 0; r < NNET_BLOCK_ROWS; r++) acc[c] += (int32_t)wb[c * NNET_BLOCK_ROWS + r] * xr[r];
      }
      for (c = 0; c < NNET_BLOCK_COLS; c++) /* as sparse_i8_accum_c */
        out[(long)s * ldo + NNET_BLOCK_COLS * g + c] = init[NNET_BLOCK_COLS * g + c] + scale * (float)acc[c];
    }
    idx += count;
    w += (long)count * NNET_BLOCK_SIZE;
  }
}

static void vec_sigmoid_c(float *y, const float *x, int n) {
  int i;
  for (i = 0; i < n; i++) y[i] = nnet_sigmoid(x[i]);
}

static void vec_tanh_c(float *y, const float *x, int n) {
  int i;
  for (i = 0; i < n; i++) y[i] = nnet_tanh(x[i]);
}

static void gru_update_c(float *h, const float *in, const float *in2, const float *in3,
                         const float *in4, const float *rec, const float *diag, int n) {
  int i;
  for (i = 0; i < n; i++) nnet_gru_unit(h, in, in2, in3, in4, rec, diag, n, i);
}

static void quantize_u8_c(uint8_t *out, const float *x, int n) {
  int i;
  for (i = 0; i < n; i++) {
    float v = 127.f * x[i];
    v = v > 127.f ? 127.f : (v < -127.f ? -127.f : (v == v ? v : 0.f));
    out[i] = (uint8_t)(127 + (int)nearbyintf(v));
  }
}

static void mdense_units_c(const float *w, const float *b, const float *f, const float *v, int n,
                           const int *units, int count, float *out) {
  int j, i;
  for (j = 0; j < count; j++) {
    const int u = units[j];
    const float *w0 = w + (size_t)u * 2 * n, *w1 = w0 + n;
    float s0 = b[2 * u], s1 = b[2 * u + 1];
    for (i = 0; i < n; i++) {
      s0 += v[i] * w0[i];
      s1 += v[i] * w1[i];
    }
    out[j] = f[2 * u] * nnet_tanh(s0) + f[2 * u + 1] * nnet_tanh(s1);
  }
}

/* The spline of nnet_sig_spline at coordinate u (clamped to [0, 32)). */
static float sig_spline(float u) {
  int k;
  float f;
  u = u > 31.999998f ? 31.999998f : (u > 0.f ? u : 0.f); /* NaN -> 0 */
  k = (int)u;
  f = u - (float)k;
  return ((nnet_sig_spline[3][k] * f + nnet_sig_spline[2][k]) * f + nnet_sig_spline[1][k]) * f +
         nnet_sig_spline[0][k];
}

static void gru_update_fast_c(float *h, const float *in, const float *in2, const float *in3,
                              const float *in4, const float *rec, const float *diag, int n,
                              uint8_t *q) {
  int i;
  for (i = 0; i < n; i++) {
    const NNetGruPre p = nnet_gru_pre(h, in, in2, in3, in4, rec, diag, n, i);
    const float z = sig_spline(p.z * (4.f / 3.f) + 16.f), r = sig_spline(p.r * (4.f / 3.f) + 16.f);
    const float hh = 2.f * sig_spline((p.xh + r * p.rh) * (8.f / 3.f) + 16.f) - 1.f;
    h[i] = z * (h[i] - hh) + hh;
  }
  if (q) quantize_u8_c(q, h, n);
}

static void dense_i8_accum_c(float *out, const int8_t *w, int rows4, int ngroups, int gstride,
                             const uint8_t *x, float scale) {
  int g, r, c, k;
  for (g = 0; g < ngroups; g++) {
    int32_t acc[NNET_BLOCK_COLS] = {0};
    for (r = 0; r < rows4; r++) {
      const int8_t *wb = w + ((size_t)r * gstride + g) * NNET_BLOCK_SIZE;
      for (c = 0; c < NNET_BLOCK_COLS; c++)
        for (k = 0; k < NNET_BLOCK_ROWS; k++)
          acc[c] += (int32_t)wb[c * NNET_BLOCK_ROWS + k] * x[NNET_BLOCK_ROWS * r + k];
    }
    for (c = 0; c < NNET_BLOCK_COLS; c++) out[NNET_BLOCK_COLS * g + c] += scale * (float)acc[c];
  }
}

static void dense_i8_accum_multi_c(float *const *out, const int8_t *w, int rows4, int ngroups,
                                   int gstride, const uint8_t *const *x, int k, float scale) {
  int s;
  for (s = 0; s < k; s++) dense_i8_accum_c(out[s], w, rows4, ngroups, gstride, x[s], scale);
}

/* The four nodes on the path only: the same sums in the same order as mdense_units_c. */
static int tree4_c(const float *t, const float *v, float gain, const float *thr4) {
  int h = 1, level, i, c;
  for (level = 0; level < 4; level++) {
    float x = 0.f;
    for (c = 0; c < 2; c++) {
      const int lane = 16 * c + h - 1;
      float s = t[32 * 16 + lane];
      for (i = 0; i < 16; i++) s += v[i] * t[32 * i + lane];
      x += t[32 * 17 + lane] * nnet_tanh(s);
    }
    h = 2 * h + (gain * x > thr4[level]);
  }
  return h - 16;
}

const NNetKernels nnet_kernels_ref = {
    .level = LPCNET_SIMD_SCALAR,
    .sgemv_accum = sgemv_accum_c,
    .sgemm_accum = sgemm_accum_c,
    .sparse_sgemv_accum = sparse_sgemv_accum_c,
    .sparse_i8_accum = sparse_i8_accum_c,
    .sparse_i8_accum_even = sparse_i8_accum_c, /* the padded lists are valid general lists */
    .sparse_i8_accum_multi = sparse_i8_accum_multi_c,
    .dense_i8_accum = dense_i8_accum_c,
    .dense_i8_accum_multi = dense_i8_accum_multi_c,
    .vec_sigmoid = vec_sigmoid_c,
    .vec_tanh = vec_tanh_c,
    .gru_update = gru_update_c,
    .gru_update_fast = gru_update_fast_c,
    .quantize_u8 = quantize_u8_c,
    .mdense_units = mdense_units_c,
    .tree4 = tree4_c,
};

const NNetKernels nnet_kernels_c = {
    .level = LPCNET_SIMD_SCALAR,
    .sgemv_accum = sgemv_accum_c,
    .sgemm_accum = sgemm_accum_c,
    .sparse_sgemv_accum = sparse_sgemv_accum_c,
    .sparse_i8_accum = sparse_i8_accum_c,
    .vec_sigmoid = vec_sigmoid_c,
    .vec_tanh = vec_tanh_c,
    .gru_update = gru_update_c,
    .quantize_u8 = quantize_u8_c,
    .mdense_units = mdense_units_c,
};

const NNetKernels *nnet_select(int level) {
  level = simd_resolve(level);
#ifdef SIMD_X86
  if (level >= LPCNET_SIMD_AVX512) return &nnet_kernels_avx512;
  if (level >= LPCNET_SIMD_AVX2) return &nnet_kernels_avx2;
#endif
  return &nnet_kernels_c;
}

/* --- weight and state layouts ---------------------------------------------------------- */
void nnet_expand_u8(uint8_t *xe, const uint8_t *q, int rows, int s, int k) {
  const int kp = nnet_xe_streams(k);
  int r, j;
  for (r = 0; r < rows / NNET_BLOCK_ROWS; r++) {
    uint32_t v, d[NNET_XE_BYTES / 4];
    memcpy(&v, q + NNET_BLOCK_ROWS * r, 4);
    for (j = 0; j < NNET_XE_BYTES / 4; j++) d[j] = v;
    memcpy(xe + NNET_XE_BYTES * ((long)r * kp + s), d, sizeof(d));
  }
}

long nnet_padded_blocks(const int32_t *idx, int ngroups) {
  long n = 0;
  int g;
  for (g = 0; g < ngroups; g++) {
    n += nnet_even_blocks(*idx);
    idx += 1 + *idx;
  }
  return n;
}

void nnet_pad_even_i8(const int32_t *idx, const int8_t *wq, int ngroups, int32_t *pidx,
                      int8_t *pwq) {
  int g, j;
  for (g = 0; g < ngroups; g++) {
    const int cnt = *idx++, pc = nnet_even_blocks(cnt);
    *pidx++ = pc;
    for (j = 0; j < pc; j++) *pidx++ = j < cnt ? idx[j] : 0;
    memcpy(pwq, wq, (size_t)NNET_BLOCK_SIZE * cnt);
    memset(pwq + NNET_BLOCK_SIZE * cnt, 0, (size_t)NNET_BLOCK_SIZE * (pc - cnt));
    idx += cnt, wq += NNET_BLOCK_SIZE * cnt, pwq += NNET_BLOCK_SIZE * pc;
  }
}

int nnet_blocks_are_dense(const int32_t *idx, int rows, int ngroups) {
  const int rq = rows / NNET_BLOCK_ROWS;
  int g, r;
  for (g = 0; g < ngroups; g++) {
    if (*idx++ != rq) return 0;
    for (r = 0; r < rq; r++)
      if (*idx++ != NNET_BLOCK_ROWS * r) return 0;
  }
  return 1;
}

void nnet_dense_i8_from_blocks(const int8_t *wq, int rows4, int ngroups, int panel, int8_t *dense) {
  int g, r;
  for (g = 0; g < ngroups; g++) {
    const int p = g / panel, pg = ngroups - p * panel < panel ? ngroups - p * panel : panel;
    int8_t *base = dense + (size_t)p * rows4 * panel * NNET_BLOCK_SIZE;
    for (r = 0; r < rows4; r++)
      memcpy(base + ((size_t)r * pg + g % panel) * NNET_BLOCK_SIZE,
             wq + ((size_t)g * rows4 + r) * NNET_BLOCK_SIZE, NNET_BLOCK_SIZE);
  }
}

void nnet_tree4_tables(const float *md_w, const float *md_b, const float *md_f, float *t) {
  const int nb = 16;
  int s, h, i, c;
  memset(t, 0, sizeof(float) * NNET_TREE_TABLES * NNET_TREE_STRIDE);
  for (s = 0; s < NNET_TREE_TABLES; s++, t += NNET_TREE_STRIDE) {
    const int root = s == 0 ? 1 : 16 + (s - 1);
    for (h = 1; h < 16; h++) {
      const int l = h >= 8 ? 3 : (h >= 4 ? 2 : (h >= 2 ? 1 : 0));
      const int u = (root << l) + (h - (1 << l));
      for (c = 0; c < 2; c++) {
        const int lane = 16 * c + h - 1;
        for (i = 0; i < nb; i++) t[32 * i + lane] = md_w[((size_t)u * 2 + c) * nb + i];
        t[32 * 16 + lane] = md_b[2 * u + c];
        t[32 * 17 + lane] = md_f[2 * u + c];
      }
    }
  }
}

/* Least-squares fits of each piece (see nnet.h). */
const float nnet_sig_spline[4][32] __attribute__((aligned(64))) = {
    {6.14259534e-06f, 1.30037861e-05f, 2.75286184e-05f, 5.82763023e-05f, 0.000123362945f,
     0.000261123554f, 0.000552638259f, 0.00116921728f, 0.00247202138f, 0.00521893241f,
     0.0109847551f, 0.0229740664f, 0.0474233478f, 0.095354788f, 0.182445675f, 0.320837677f,
     0.499986291f, 0.679157376f, 0.817567647f, 0.904652655f, 0.952577531f, 0.977024972f,
     0.989014328f, 0.99478054f, 0.997527719f, 0.998830616f, 0.999447286f, 0.999738872f,
     0.999876618f, 0.999941707f, 0.999972463f, 0.999987006f},
    {4.63974811e-06f, 9.82220263e-06f, 2.0792957e-05f, 4.40157928e-05f, 9.31684554e-05f,
     0.000197179499f, 0.000417168689f, 0.000881981512f, 0.00186195446f, 0.00391863007f,
     0.00819374993f, 0.0169041529f, 0.0339358486f, 0.0645917505f, 0.111454852f, 0.163074315f,
     0.187764734f, 0.163862228f, 0.112007305f, 0.06465251f, 0.0338131376f, 0.0167889465f,
     0.00812297035f, 0.00388109242f, 0.00184325501f, 0.000872926787f, 0.000412841473f,
     0.000195124216f, 9.21950996e-05f, 4.35554466e-05f, 2.05753786e-05f, 9.71939789e-06f},
    {1.58956493e-06f, 3.36505218e-06f, 7.12356086e-06f, 1.50794367e-05f, 3.19180508e-05f,
     6.75475821e-05f, 0.000142895384f, 0.000302048051f, 0.000637362304f, 0.00133995689f,
     0.00279444642f, 0.00572384382f, 0.0112477662f, 0.0200417899f, 0.0284188911f,
     0.0236147735f, -0.00107564742f, -0.0239884853f, -0.0273737647f, -0.0194688924f,
     -0.0111851403f, -0.00580075057f, -0.00286438386f, -0.00138177571f, -0.000659225509f,
     -0.000312862743f, -0.000148114385f, -7.00377059e-05f, -3.30998664e-05f, -1.56389306e-05f,
     -7.38812469e-06f, -3.49008519e-06f},
    {6.33506772e-07f, 1.34102424e-06f, 2.83845679e-06f, 6.00681051e-06f, 1.27065523e-05f,
     2.68555996e-05f, 5.66557828e-05f, 0.00011905915f, 0.000248137803f, 0.000508142344f,
     0.00100210146f, 0.00182043226f, 0.00274037546f, 0.00244399114f, -0.00147680147f,
     -0.00751304207f, -0.00751304207f, -0.00147680147f, 0.00244399114f, 0.00274037546f,
     0.00182043226f, 0.00100210146f, 0.000508142344f, 0.000248137803f, 0.00011905915f,
     5.66557828e-05f, 2.68555996e-05f, 1.27065523e-05f, 6.00681051e-06f, 2.83845679e-06f,
     1.34102424e-06f, 6.33506772e-07f}
};
