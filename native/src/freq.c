/* Spectral analysis, cepstrum and LPC-from-cepstrum (docs/features.md).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause.
 * Arithmetic mirrors the reference tool: float data, double where its
 * expressions promote (log10, pow, double constants). */
#include "freq.h"

#include <math.h>
#include <string.h>

/* Band edges in units of 4 FFT bins (200 Hz). */
static const int eband5ms[NB_BANDS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 34, 40};
static const float compensation[NB_BANDS] = {0.8f, 1, 1, 1, 1, 1, 1, 1, 0.666667f, 0.5f, 0.5f, 0.5f,
                                             0.333333f, 0.25f, 0.25f, 0.2f, 0.166667f, 0.173913f};

void freq_init(FreqTables *t) {
  int i, j;
  fft_init(t->twiddles);
  for (i = 0; i < OVERLAP_SIZE; i++) {
    double s = sin(.5 * M_PI * (i + .5) / OVERLAP_SIZE);
    t->half_window[i] = (float)sin(.5 * M_PI * s * s);
  }
  for (i = 0; i < NB_BANDS; i++) {
    for (j = 0; j < NB_BANDS; j++) {
      double v = cos((i + .5) * j * M_PI / NB_BANDS);
      if (j == 0) v *= sqrt(.5);
      t->dct_table[i * NB_BANDS + j] = (float)v;
    }
  }
  for (i = 0; i <= LPC_ORDER; i++)
    for (j = 0; j < FREQ_SIZE - 1; j++)
      t->acorr_cos[i * (FREQ_SIZE - 1) + j] = (float)cos(2.0 * M_PI * (double)j * i / WINDOW_SIZE);
  for (i = 0; i < 225; i++) t->pitch_penalty[i] = .02f * i * i;
  for (i = -224; i <= 224; i++) t->pitch_penalty_sym[224 + i] = t->pitch_penalty[i < 0 ? -i : i];
}

void band_energy_windowed(const FreqTables *t, const float *x320, float *bandE) {
  fft_cpx in[WINDOW_SIZE], X[WINDOW_SIZE];
  float sum[NB_BANDS] = {0};
  int i, j;
  for (i = 0; i < WINDOW_SIZE; i++) {
    in[i].r = x320[i];
    in[i].i = 0;
  }
  for (i = 0; i < OVERLAP_SIZE; i++) {
    in[i].r *= t->half_window[i];
    in[WINDOW_SIZE - 1 - i].r *= t->half_window[i];
  }
  fft320_forward(t->twiddles, in, X);
  /* Triangular bands; bin 160 (Nyquist) is not used. */
  for (i = 0; i < NB_BANDS - 1; i++) {
    int band_size = (eband5ms[i + 1] - eband5ms[i]) * 4;
    for (j = 0; j < band_size; j++) {
      const fft_cpx *b = &X[eband5ms[i] * 4 + j];
      float frac = (float)j / band_size;
      float p = b->r * b->r;
      p += b->i * b->i;
      sum[i] += (1 - frac) * p;
      sum[i + 1] += frac * p;
    }
  }
  sum[0] *= 2;
  sum[NB_BANDS - 1] *= 2;
  memcpy(bandE, sum, sizeof(sum));
}

/* out[i] = sqrt(2/18) sum_j in[j] table[i*si + j*sj]: the orthonormal DCT (si = 1, sj = 18)
 * and its inverse (si = 18, sj = 1) of the table's cosines. */
static void dct18_strided(const float *table, int si, int sj, float *out, const float *in) {
  int i, j;
  for (i = 0; i < NB_BANDS; i++) {
    float sum = 0;
    for (j = 0; j < NB_BANDS; j++) sum += in[j] * table[i * si + j * sj];
    out[i] = (float)(sum * sqrt(2. / NB_BANDS));
  }
}

void cepstrum_from_bands(const FreqTables *t, const float *bandE, float *ceps) {
  float Ly[NB_BANDS];
  float logMax = -2, follow = -2;
  int i;
  for (i = 0; i < NB_BANDS; i++) {
    float v = (float)log10(1e-2 + bandE[i]);
    float a = logMax - 8;
    float b = (float)(follow - 2.5);
    v = v > b ? v : b;
    v = a > v ? a : v;
    Ly[i] = v;
    logMax = logMax > v ? logMax : v;
    b = (float)(follow - 2.5);
    follow = b > v ? b : v;
  }
  dct18_strided(t->dct_table, 1, NB_BANDS, ceps, Ly);
  ceps[0] -= 4;
}

float levinson(float *lpc, const float *ac, int p) {
  int i, j;
  float error = ac[0];
  for (i = 0; i < p; i++) lpc[i] = 0;
  if (ac[0] == 0) return error;
  for (i = 0; i < p; i++) {
    float rr = 0, r;
    for (j = 0; j < i; j++) rr += lpc[j] * ac[i - j];
    rr += ac[i + 1];
    r = -rr / error;
    lpc[i] = r;
    /* symmetric in-place update from the old values */
    for (j = 0; j < (i + 1) >> 1; j++) {
      float tmp1 = lpc[j], tmp2 = lpc[i - 1 - j];
      lpc[j] = tmp1 + r * tmp2;
      lpc[i - 1 - j] = tmp2 + r * tmp1;
    }
    error = error - r * r * error;
    /* stop once the prediction gain reaches 30 dB */
    if (error < .001f * ac[0]) break;
  }
  return error;
}

void lpc_from_reflection(const float *rc, float *lpc) {
  float prev[LPC_ORDER];
  int i, j;
  for (i = 0; i < LPC_ORDER; i++) {
    memcpy(prev, lpc, sizeof(float) * (size_t)i);
    for (j = 0; j < i; j++) lpc[j] = prev[j] + rc[i] * prev[i - 1 - j];
    lpc[i] = rc[i];
  }
}

float lpc_from_cepstrum(const FreqTables *t, const float *ceps, float *lpc) {
  float tmp[NB_BANDS], Ex[NB_BANDS], P[FREQ_SIZE - 1];
  float ac[LPC_ORDER + 1];
  int i, j;
  memcpy(tmp, ceps, sizeof(tmp));
  tmp[0] += 4;
  dct18_strided(t->dct_table, NB_BANDS, 1, Ex, tmp);
  for (i = 0; i < NB_BANDS; i++) Ex[i] = (float)pow(10.f, Ex[i]) * compensation[i];
  /* Linear interpolation between band centres (same walk as the band energies). */
  for (i = 0; i < NB_BANDS - 1; i++) {
    int band_size = (eband5ms[i + 1] - eband5ms[i]) * 4;
    for (j = 0; j < band_size; j++) {
      float frac = (float)j / band_size;
      P[eband5ms[i] * 4 + j] = (1 - frac) * Ex[i] + frac * Ex[i + 1];
    }
  }
  /* Unnormalised inverse real DFT of the symmetric power spectrum (P[160] = 0). */
  for (i = 0; i <= LPC_ORDER; i++) {
    const float *c = &t->acorr_cos[i * (FREQ_SIZE - 1)];
    double s = 0;
    for (j = 1; j < FREQ_SIZE - 1; j++) s += (double)P[j] * c[j];
    ac[i] = (float)(P[0] + 2 * s);
  }
  /* -40 dB noise floor; 320/12 is an integer division in the reference (26/38). */
  ac[0] = (float)(ac[0] + (ac[0] * 1e-4 + 26 / 38.));
  for (i = 1; i <= LPC_ORDER; i++) ac[i] = (float)(ac[i] * (1 - 6e-5 * i * i));
  return levinson(lpc, ac, LPC_ORDER);
}
