/* Spectral analysis, cepstrum, LPC-from-cepstrum (docs/features.md) and LPC from reflection
 * coefficients (the end-to-end model, docs/synthesis.md). */
#ifndef LPCNET_FREQ_H
#define LPCNET_FREQ_H

#include "../include/lpcnet.h"
#include "fft.h"

#define NB_BANDS LPCNET_NB_BANDS
#define LPC_ORDER LPCNET_LPC_ORDER
#define WINDOW_SIZE 320
#define OVERLAP_SIZE 160
#define FREQ_SIZE 161

/** Constant tables shared by the spectral functions (owned by each state). */
typedef struct {
  fft_cpx twiddles[FFT_SIZE];
  float half_window[OVERLAP_SIZE];
  float dct_table[NB_BANDS * NB_BANDS];
  /* cos(2 pi k m / 320) for m = 0..16, k = 0..159 (autocorrelation of the LPC from the cepstrum) */
  float acorr_cos[(LPC_ORDER + 1) * (FREQ_SIZE - 1)];
  /* pitch-tracker transition penalty .02f*j*j as the reference evaluates it, j = 0..224 */
  float pitch_penalty[225];
  /* the same indexed by signed j: pitch_penalty_sym[224 + j] = pitch_penalty[|j|] */
  float pitch_penalty_sym[449];
} FreqTables;

void freq_init(FreqTables *t);

/** Window 320 samples and return the energies E[18] of the triangular bands. */
void band_energy_windowed(const FreqTables *t, const float *x320, float *bandE);

/** Band energies -> 18 cepstral coefficients with floor and c0 -= 4 (docs/formats.md). */
void cepstrum_from_bands(const FreqTables *t, const float *bandE, float *ceps);

/** Cepstrum (c0 already minus 4) -> 16 LPCs a_1..a_16; returns the error energy. */
float lpc_from_cepstrum(const FreqTables *t, const float *ceps, float *lpc);

/** Step-up recursion: 16 reflection coefficients k_1..k_16 -> LPCs a_1..a_16 (A(z) = 1 +
 * sum a_j z^-j). a^(1) = [k_1]; for i = 2..16: a_j = a_j + k_i a_(i-j) (j < i, from the
 * previous order's values), a_i = k_i. float arithmetic in this order (the end-to-end
 * model's rc2lpc layer computes the same). */
void lpc_from_reflection(const float *rc, float *lpc);

/** Levinson-Durbin on ac[0..p]; returns the final error. */
float levinson(float *lpc, const float *ac, int p);

#endif
