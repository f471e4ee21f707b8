/* Scalar reference kernels and run-time selection of the SIMD kernels.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>

#include "nnet.h"

static void sgemv_accum_c(float *out, const float *w, int rows, int cols, const float *x) {
  int i, j;
  for (i = 0; i < rows; i++) {
    const float xi = x[i];
    const float *wr = w + (long)i * cols;
    for (j = 0; j < cols; j++) out[j] += xi * wr[j];
  }
}

static void sparse_sgemv_accum_c(float *out, const float *w, const int32_t *idx, int ngroups,
                                 const float *x) {
  int g, b, r, c;
  for (g = 0; g < ngroups; g++) {
    int count = *idx++;
    float *y = out + NNET_BLOCK_COLS * g;
    for (b = 0; b < count; b++) {
      const float *xr = x + *idx++;
      for (r = 0; r < NNET_BLOCK_ROWS; r++)
        for (c = 0; c < NNET_BLOCK_COLS; c++) y[c] += xr[r] * w[r * NNET_BLOCK_COLS + c];
      w += NNET_BLOCK_ROWS * NNET_BLOCK_COLS;
    }
  }
}

static void sparse_i8_accum_c(float *out, const int8_t *w, const int32_t *idx, int ngroups,
                              const uint8_t *x, float scale) {
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
    for (c = 0; c < NNET_BLOCK_COLS; c++) out[NNET_BLOCK_COLS * g + c] += scale * (float)acc[c];
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

static void gru_update_c(float *h, const float *in, const float *rec, const float *diag, int n) {
  int i;
  for (i = 0; i < n; i++) {
    float rz = rec[i], rr = rec[n + i], rh = rec[2 * n + i];
    float z, r, hh;
    if (diag) {
      rz += diag[i] * h[i];
      rr += diag[n + i] * h[i];
      rh += diag[2 * n + i] * h[i];
    }
    z = nnet_sigmoid(in[i] + rz);
    r = nnet_sigmoid(in[n + i] + rr);
    hh = nnet_tanh(in[2 * n + i] + r * rh);
    h[i] = z * h[i] + (1.f - z) * hh;
  }
}

static void vec_sum4_c(float *out, const float *a, const float *b, const float *c, const float *d,
                       int n) {
  int i;
  for (i = 0; i < n; i++) out[i] = a[i] + b[i] + c[i] + d[i];
}

static void quantize_u8_c(uint8_t *out, const float *x, int n) {
  int i;
  for (i = 0; i < n; i++) {
    float v = 127.f * x[i];
    v = v > 127.f ? 127.f : (v < -127.f ? -127.f : v);
    out[i] = (uint8_t)(127 + (int)nearbyintf(v));
  }
}

static float mdense_unit_c(const float *w, const float *b, const float *f, const float *v, int n) {
  float s0 = b[0], s1 = b[1];
  int i;
  for (i = 0; i < n; i++) {
    s0 += v[i] * w[i];
    s1 += v[i] * w[n + i];
  }
  return f[0] * nnet_tanh(s0) + f[1] * nnet_tanh(s1);
}

const NNetKernels nnet_kernels_c = {0, sgemv_accum_c, sparse_sgemv_accum_c, sparse_i8_accum_c,
                                    vec_sigmoid_c, vec_tanh_c, gru_update_c, vec_sum4_c,
                                    quantize_u8_c, mdense_unit_c};

static int cpu_level(void) {
#if defined(NNET_HAVE_X86) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni"))
    return 3;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
#endif
  return 0;
}

const NNetKernels *nnet_select(int level) {
  int best = cpu_level();
  if (level < 0 || level > best) level = best;
#ifdef NNET_HAVE_X86
  if (level >= 3) return &nnet_kernels_avx512;
  if (level >= 2) return &nnet_kernels_avx2;
#endif
  return &nnet_kernels_c;
}
