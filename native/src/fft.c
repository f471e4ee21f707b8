/* Mixed-radix decimation-in-time FFT for N = 320, written for this kit.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include "fft.h"

#include <math.h>

/* (radix, remaining length) pairs; the product of the radices is 320. */
static const int factors[8] = {4, 80, 4, 20, 4, 5, 5, 1};

void fft_init(fft_cpx *twiddles) {
  int k;
  for (k = 0; k < FFT_SIZE; k++) {
    double phase = -2.0 * M_PI * k / FFT_SIZE;
    twiddles[k].r = (float)cos(phase);
    twiddles[k].i = (float)sin(phase);
  }
}

static fft_cpx cmul(fft_cpx a, fft_cpx b) {
  fft_cpx c;
  c.r = a.r * b.r - a.i * b.i;
  c.i = a.r * b.i + a.i * b.r;
  return c;
}

static void bfly4(fft_cpx *f, const fft_cpx *twiddles, int fstride, int m) {
  int u;
  for (u = 0; u < m; u++) {
    fft_cpx a0 = f[u];
    fft_cpx a1 = cmul(f[u + m], twiddles[u * fstride]);
    fft_cpx a2 = cmul(f[u + 2 * m], twiddles[2 * u * fstride]);
    fft_cpx a3 = cmul(f[u + 3 * m], twiddles[3 * u * fstride]);
    fft_cpx b0 = {a0.r + a2.r, a0.i + a2.i};
    fft_cpx b1 = {a0.r - a2.r, a0.i - a2.i};
    fft_cpx b2 = {a1.r + a3.r, a1.i + a3.i};
    fft_cpx b3 = {a1.r - a3.r, a1.i - a3.i};
    f[u].r = b0.r + b2.r;
    f[u].i = b0.i + b2.i;
    f[u + 2 * m].r = b0.r - b2.r;
    f[u + 2 * m].i = b0.i - b2.i;
    /* -j * b3 and +j * b3 */
    f[u + m].r = b1.r + b3.i;
    f[u + m].i = b1.i - b3.r;
    f[u + 3 * m].r = b1.r - b3.i;
    f[u + 3 * m].i = b1.i + b3.r;
  }
}

static void bfly5(fft_cpx *f, const fft_cpx *twiddles, int fstride, int m) {
  int u;
  /* cos/sin of 2 pi/5 and 4 pi/5 */
  const float c1 = (float)cos(2.0 * M_PI / 5), s1 = (float)sin(2.0 * M_PI / 5);
  const float c2 = (float)cos(4.0 * M_PI / 5), s2 = (float)sin(4.0 * M_PI / 5);
  for (u = 0; u < m; u++) {
    fft_cpx a0 = f[u];
    fft_cpx a1 = cmul(f[u + m], twiddles[u * fstride]);
    fft_cpx a2 = cmul(f[u + 2 * m], twiddles[2 * u * fstride]);
    fft_cpx a3 = cmul(f[u + 3 * m], twiddles[3 * u * fstride]);
    fft_cpx a4 = cmul(f[u + 4 * m], twiddles[4 * u * fstride]);
    fft_cpx s14 = {a1.r + a4.r, a1.i + a4.i}, d14 = {a1.r - a4.r, a1.i - a4.i};
    fft_cpx s23 = {a2.r + a3.r, a2.i + a3.i}, d23 = {a2.r - a3.r, a2.i - a3.i};
    /* X1 = a0 + c1 s14 + c2 s23 - j (s1 d14 + s2 d23); X4 its mirror (+j) */
    fft_cpx p1 = {a0.r + c1 * s14.r + c2 * s23.r, a0.i + c1 * s14.i + c2 * s23.i};
    fft_cpx q1 = {s1 * d14.r + s2 * d23.r, s1 * d14.i + s2 * d23.i};
    /* X2 = a0 + c2 s14 + c1 s23 - j (s2 d14 - s1 d23); X3 its mirror */
    fft_cpx p2 = {a0.r + c2 * s14.r + c1 * s23.r, a0.i + c2 * s14.i + c1 * s23.i};
    fft_cpx q2 = {s2 * d14.r - s1 * d23.r, s2 * d14.i - s1 * d23.i};
    f[u].r = a0.r + s14.r + s23.r;
    f[u].i = a0.i + s14.i + s23.i;
    f[u + m].r = p1.r + q1.i;
    f[u + m].i = p1.i - q1.r;
    f[u + 4 * m].r = p1.r - q1.i;
    f[u + 4 * m].i = p1.i + q1.r;
    f[u + 2 * m].r = p2.r + q2.i;
    f[u + 2 * m].i = p2.i - q2.r;
    f[u + 3 * m].r = p2.r - q2.i;
    f[u + 3 * m].i = p2.i + q2.r;
  }
}

static void work(fft_cpx *out, const fft_cpx *in, const fft_cpx *tw, int fstride, const int *fac) {
  const int p = fac[0], m = fac[1];
  int q;
  if (m == 1) {
    for (q = 0; q < p; q++) out[q] = in[q * fstride];
  } else {
    for (q = 0; q < p; q++) work(out + q * m, in + q * fstride, tw, fstride * p, fac + 2);
  }
  if (p == 4)
    bfly4(out, tw, fstride, m);
  else
    bfly5(out, tw, fstride, m);
}

void fft320_forward(const fft_cpx *twiddles, const fft_cpx *in, fft_cpx *out) {
  int k;
  const float scale = 1.f / FFT_SIZE;
  work(out, in, twiddles, 1, factors);
  for (k = 0; k < FFT_SIZE; k++) {
    out[k].r *= scale;
    out[k].i *= scale;
  }
}
