/* Forward complex FFT of size 320 (= 4*4*4*5), scaled by 1/320 (docs/features.md, Numerics). */
#ifndef LPCNET_FFT_H
#define LPCNET_FFT_H

#define FFT_SIZE 320

typedef struct {
  float r, i;
} fft_cpx;

/** Fill a 320-entry twiddle table (owned by the caller's state: no globals). */
void fft_init(fft_cpx *twiddles);

/** out[k] = (1/320) sum_n in[n] e^{-j 2 pi k n / 320}, k = 0..319. */
void fft320_forward(const fft_cpx *twiddles, const fft_cpx *in, fft_cpx *out);

#endif
