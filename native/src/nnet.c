/* Scalar reference kernels and run-time selection of the SIMD kernels.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stddef.h>

#include "nnet.h"

static void sgemv_accum_c(float *out, const float *w, int rows, int cols, const float *x) {
  int i, j;
  for (i = 0; i < rows; i++) {
    const float xi = x[i];
    const float *wr = w + (long)i * cols;
    for (j = 0; j < cols; j++) out[j] += xi * wr[j];
  }
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
  for (i = 0; i < n; i++) {
    float rz = rec[i], rr = rec[n + i], rh = rec[2 * n + i];
    float xz = in[i], xr = in[n + i], xh = in[2 * n + i];
    float z, r, hh;
    if (in2) {
      xz += in2[i] + in3[i] + in4[i];
      xr += in2[n + i] + in3[n + i] + in4[n + i];
      xh += in2[2 * n + i] + in3[2 * n + i] + in4[2 * n + i];
    }
    if (diag) {
      rz += diag[i] * h[i];
      rr += diag[n + i] * h[i];
      rh += diag[2 * n + i] * h[i];
    }
    z = nnet_sigmoid(xz + rz);
    r = nnet_sigmoid(xr + rr);
    hh = nnet_tanh(xh + r * rh);
    h[i] = z * h[i] + (1.f - z) * hh;
  }
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

const NNetKernels nnet_kernels_c = {0, sgemv_accum_c, sparse_sgemv_accum_c, sparse_i8_accum_c,
                                    NULL,
                                    vec_sigmoid_c, vec_tanh_c, gru_update_c,
                                    quantize_u8_c, NULL, mdense_units_c, NULL, NULL};

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
