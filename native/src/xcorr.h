/* Pitch cross-correlation kernels (docs/features.md): scalar, AVX2 and AVX-512.
 *
 * For lags i = 0..max_lag-1: xcorr[i] = sum_t x[t] y[i+t] and
 * yy[i] = sum_t y[i+t]^2, t = 0..len-1, summed in increasing t with separate
 * multiply and add (no FMA), so every level gives bit-identical results. */
#ifndef LPCNET_XCORR_H
#define LPCNET_XCORR_H

typedef void (*xcorr_fn)(const float *x, const float *y, float *xcorr, float *yy, int len,
                         int max_lag);

/** One kernel table per SIMD level (the only slot: the feature extractor's one kernel). */
typedef struct {
  int level; /* LPCNET_SIMD_* */
  xcorr_fn xcorr_energy;
} XcorrKernels;

/** Scalar reference, always compiled. */
extern const XcorrKernels xcorr_kernels_c;

/** The best table at or below `level` (LPCNET_SIMD_AUTO: the best for this CPU). */
const XcorrKernels *xcorr_select(int level);

#endif
