/* Pitch cross-correlation kernel family (spec B.7): scalar, AVX2 and AVX-512.
 *
 * For lags i = 0..max_lag-1: xcorr[i] = sum_t x[t] y[i+t] and
 * yy[i] = sum_t y[i+t]^2, t = 0..len-1, summed in increasing t with separate
 * multiply and add (no FMA), so every path gives bit-identical results. */
#ifndef LPCNET_XCORR_H
#define LPCNET_XCORR_H

#define XCORR_SCALAR 0
#define XCORR_AVX2 2
#define XCORR_AVX512 3

typedef void (*xcorr_fn)(const float *x, const float *y, float *xcorr, float *yy, int len,
                         int max_lag);

/** Always compiled reference path. */
void xcorr_energy_c(const float *x, const float *y, float *xcorr, float *yy, int len, int max_lag);

/** Best kernel for this CPU (or for the forced level), chosen at run time. */
xcorr_fn xcorr_select(int level);

/** Highest level the CPU supports. */
int xcorr_cpu_level(void);

#endif
