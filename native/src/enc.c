/* Frame-by-frame LPCNet feature extraction and training data (docs/features.md).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../include/lpcnet.h"
#include "freq.h"
#include "rng.h"
#include "xcorr.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define FRAME_SIZE LPCNET_FRAME_SIZE
#define HALF_FRAME (FRAME_SIZE / 2)
#define TRAINING_OFFSET 80
#define PITCH_MIN_PERIOD LPCNET_PITCH_MIN_PERIOD
#define PITCH_MAX_PERIOD LPCNET_PITCH_MAX_PERIOD
#define NB_CANDIDATES (PITCH_MAX_PERIOD - PITCH_MIN_PERIOD) /* 224: lags 256..33 */
#define EXC_BUF_SIZE (PITCH_MAX_PERIOD + FRAME_SIZE)
#define PREEMPHASIS ((float)LPCNET_PREEMPHASIS)
/* mu-law look-up bins: 64 per octave of |x| in [2, 65536) */
#define ULAW_BIN_OCTAVES 15
#define ULAW_BINS (ULAW_BIN_OCTAVES * 64)

struct LPCNetFeatState {
  int mode;
  int train;   /* LPCNET_MODE_TRAIN or LPCNET_MODE_TRAIN_END2END */
  int end2end; /* byte 3 of data.u8 = lin2ulaw(s[n]) (LPCNET_MODE_TRAIN_END2END) */
  Pcg32 rng;
  xcorr_fn xcorr;
  FreqTables tables;
  int16_t lagged[FRAME_SIZE];
  /* analysis */
  float analysis_mem[OVERLAP_SIZE];
  float lpc[LPC_ORDER];
  float pitch_mem[LPC_ORDER];
  float pitch_filt;
  float exc_buf[EXC_BUF_SIZE];
  float xc[2][PITCH_MAX_PERIOD];
  float frame_weight[2];
  /* pitch tracker */
  float path[NB_CANDIDATES];
  float path_max;
  int best_i;
  /* signal chain */
  float mem_hp[2], mem_resp[2], mem_preemph;
  float a_resp[2], b_resp[2];
  float speech_gain, old_speech_gain, noise_std;
  int gain_change_count;
  /* data.u8 */
  int16_t pcm[FRAME_SIZE];
  int noise[FRAME_SIZE];
  float sig_mem[LPC_ORDER];
  int exc_mem;
  float ulaw_table[256];
  /* ulaw_thresh[m-1]: smallest float x >= 0 whose exact mu-law magnitude rounds to >= m */
  float ulaw_thresh[128];
  uint8_t ulaw_base[ULAW_BINS]; /* thresholds below each bin's lower edge */
  int ulaw_bins_ok;
};

/* --- mu-law (exact, docs/formats.md) --------------------------------------- */
static const double ULAW_SCALE = 255.0 / LPCNET_ULAW_FULL_SCALE;

int lpcnet_lin2ulaw(double x) {
  double u = 128.0 * log1p(ULAW_SCALE * fabs(x)) / log(256.0);
  double r;
  if (x < 0) u = -u;
  r = 128.0 + nearbyint(u); /* round half to even, as numpy.round */
  if (r < 0) r = 0;
  if (r > 255) r = 255;
  return (int)r;
}

/* Unclipped nearbyint(128 ln(1 + x 255/32768) / ln 256) of the exact formula, x >= 0. */
static int ulaw_magnitude(float x) {
  return (int)nearbyint(128.0 * log1p(ULAW_SCALE * fabs((double)x)) / log(256.0));
}

/* Thresholds by bisection over the float bit patterns (ordered like the values
 * for x >= 0): thresh[m-1] is the smallest float whose magnitude is >= m, so the
 * lookup below equals the exact formula for every float input (it is monotone). */
static void ulaw_init_thresholds(float *thresh) {
  int m;
  for (m = 1; m <= 128; m++) {
    uint32_t lo = 0, hi = 0x7f7fffffu; /* magnitude(lo) < m <= magnitude(hi) */
    while (hi - lo > 1) {
      uint32_t mid = lo + (hi - lo) / 2;
      float f;
      memcpy(&f, &mid, sizeof(f));
      if (ulaw_magnitude(f) >= m)
        hi = mid;
      else
        lo = mid;
    }
    memcpy(&thresh[m - 1], &hi, sizeof(float));
  }
}

/* Number of thresholds <= ax (binary search). */
static int ulaw_count(const float *thresh, float ax) {
  int lo = 0, hi = 128;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (thresh[mid] <= ax)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Exact lin2ulaw for a float input: count the thresholds <= |x|. */
static int lin2ulaw_float(const float *thresh, float x) {
  int r = ulaw_count(thresh, fabsf(x));
  if (x < 0) return 128 - r;
  return 128 + r > 255 ? 255 : 128 + r;
}

/* Faster form of lin2ulaw_float: |x| in [2, 65536) is split into 64 bins per
 * octave (exponent + 6 mantissa bits); ulaw_init_bins checks that no bin holds
 * more than one threshold, so one comparison finishes the count. */
static int ulaw_init_bins(const float *thresh, uint8_t *base) {
  int b;
  for (b = 0; b < ULAW_BINS; b++) {
    uint32_t lo_bits = (uint32_t)(b / 64 + 1 + 127) << 23 | (uint32_t)(b % 64) << 17;
    uint32_t hi_bits = lo_bits + (1u << 17) - 1;
    float lo, hi;
    memcpy(&lo, &lo_bits, sizeof(lo));
    memcpy(&hi, &hi_bits, sizeof(hi));
    base[b] = (uint8_t)ulaw_count(thresh, lo);
    if (ulaw_count(thresh, hi) - base[b] > 1) return -1;
  }
  /* below 2 and from 65536 on the count is constant */
  return (ulaw_count(thresh, 1.9999999f) == 0 && ulaw_count(thresh, 65536.f) == 128) ? 0 : -1;
}

static int lin2ulaw_fast(const LPCNetFeatState *st, float x) {
  float ax = fabsf(x);
  uint32_t bits;
  int r, e;
  if (!st->ulaw_bins_ok) return lin2ulaw_float(st->ulaw_thresh, x);
  memcpy(&bits, &ax, sizeof(bits));
  e = (int)(bits >> 23) - 127;
  if (e < 1) {
    r = 0;
  } else if (e > ULAW_BIN_OCTAVES) {
    r = 128;
  } else {
    r = st->ulaw_base[(e - 1) * 64 + ((bits >> 17) & 63)];
    if (r < 128 && ax >= st->ulaw_thresh[r]) r++;
  }
  if (x < 0) return 128 - r;
  return 128 + r > 255 ? 255 : 128 + r;
}

long lpcnet_ulaw_selftest(const float *x, long n) {
  float thresh[128];
  long k, bad = 0;
  ulaw_init_thresholds(thresh);
  LPCNetFeatState *st = malloc(sizeof(*st));
  if (!st) return -1;
  memcpy(st->ulaw_thresh, thresh, sizeof(thresh));
  st->ulaw_bins_ok = ulaw_init_bins(thresh, st->ulaw_base) == 0;
  if (!st->ulaw_bins_ok) bad++; /* the fast path must be usable */
  for (k = 0; k < n; k++) {
    int exact = lpcnet_lin2ulaw(x[k]);
    bad += (lin2ulaw_float(thresh, x[k]) != exact) + (lin2ulaw_fast(st, x[k]) != exact);
  }
  free(st);
  return bad;
}

double lpcnet_ulaw2lin(int u) {
  double d = u - 128.0;
  double s = d < 0 ? -1.0 : (d > 0 ? 1.0 : 0.0);
  return s * (1.0 / ULAW_SCALE) * expm1(fabs(d) / 128.0 * log(256.0));
}

/* --- state --------------------------------------------------------------- */
static int simd_override = -1;

size_t lpcnet_feat_get_size(void) { return sizeof(LPCNetFeatState); }

int lpcnet_feat_init(LPCNetFeatState *st, int mode, uint64_t seed) {
  int i;
  if (mode != LPCNET_MODE_TEST && mode != LPCNET_MODE_TRAIN && mode != LPCNET_MODE_TRAIN_END2END)
    return -1;
  memset(st, 0, sizeof(*st));
  st->mode = mode;
  st->train = mode != LPCNET_MODE_TEST;
  st->end2end = mode == LPCNET_MODE_TRAIN_END2END;
  pcg32_seed(&st->rng, seed);
  st->xcorr = xcorr_select(simd_override)->xcorr_energy;
  freq_init(&st->tables);
  st->speech_gain = st->old_speech_gain = 1;
  st->exc_mem = 128;
  for (i = 0; i < LPCNET_ULAW_LEVELS; i++) st->ulaw_table[i] = (float)lpcnet_ulaw2lin(i);
  if (st->train) {
    ulaw_init_thresholds(st->ulaw_thresh);
    st->ulaw_bins_ok = ulaw_init_bins(st->ulaw_thresh, st->ulaw_base) == 0;
  }
  return 0;
}

LPCNetFeatState *lpcnet_feat_create(int mode, uint64_t seed) {
  LPCNetFeatState *st = malloc(sizeof(*st));
  if (st && lpcnet_feat_init(st, mode, seed)) {
    free(st);
    st = NULL;
  }
  return st;
}

void lpcnet_feat_destroy(LPCNetFeatState *st) { free(st); }

int lpcnet_simd_level(void) { return xcorr_select(simd_override)->level; }

int lpcnet_set_simd_level(int level) {
  simd_override = level;
  return lpcnet_simd_level();
}

/* --- signal chain helpers -------------------------------------------------- */
/* Transposed direct form II biquad, float state, double products (as the reference). */
static void biquad(float *x, float mem[2], const float b[2], const float a[2], int n) {
  int i;
  for (i = 0; i < n; i++) {
    float xi = x[i];
    float yi = xi + mem[0];
    mem[0] = (float)(mem[1] + (b[0] * (double)xi - a[0] * (double)yi));
    mem[1] = (float)(b[1] * (double)xi - a[1] * (double)yi);
    x[i] = yi;
  }
}

static int16_t float2short(float x) {
  double v = floor(.5 + x);
  if (v > 32767) v = 32767;
  if (v < -32767) v = -32767;
  return (int16_t)v;
}

/* --- analysis: cepstrum, LPC, normalised pitch correlation --------------------- */
static void compute_frame_features(LPCNetFeatState *st, const float *in, float *features) {
  float x320[WINDOW_SIZE], aligned_in[FRAME_SIZE], bandE[NB_BANDS];
  float xcorr[PITCH_MAX_PERIOD], yy[PITCH_MAX_PERIOD];
  int i, j, sub;
  memcpy(aligned_in, &st->analysis_mem[OVERLAP_SIZE - TRAINING_OFFSET], TRAINING_OFFSET * sizeof(float));
  memcpy(&aligned_in[TRAINING_OFFSET], in, (FRAME_SIZE - TRAINING_OFFSET) * sizeof(float));
  memcpy(x320, st->analysis_mem, OVERLAP_SIZE * sizeof(float));
  memcpy(&x320[OVERLAP_SIZE], in, FRAME_SIZE * sizeof(float));
  memcpy(st->analysis_mem, in, OVERLAP_SIZE * sizeof(float));
  band_energy_windowed(&st->tables, x320, bandE);
  cepstrum_from_bands(&st->tables, bandE, features);
  lpc_from_cepstrum(&st->tables, features, st->lpc);
  memcpy(&features[LPCNET_LPC_INDEX], st->lpc, LPC_ORDER * sizeof(float));

  /* LPC residual of the aligned input, then ex[n] = r[n] + 0.7 r[n-1]. */
  memmove(st->exc_buf, &st->exc_buf[FRAME_SIZE], PITCH_MAX_PERIOD * sizeof(float));
  {
    /* hist[LPC_ORDER - 1 - j] = aligned input j+1 samples back (pitch_mem order reversed). */
    float hist[LPC_ORDER + FRAME_SIZE];
    for (j = 0; j < LPC_ORDER; j++) hist[LPC_ORDER - 1 - j] = st->pitch_mem[j];
    memcpy(&hist[LPC_ORDER], aligned_in, sizeof(aligned_in));
    for (i = 0; i < FRAME_SIZE; i++) {
      float sum = aligned_in[i];
      for (j = 0; j < LPC_ORDER; j++) sum += st->lpc[j] * hist[LPC_ORDER - 1 + i - j];
      st->exc_buf[PITCH_MAX_PERIOD + i] = (float)(sum + .7 * st->pitch_filt);
      st->pitch_filt = sum;
    }
    for (j = 0; j < LPC_ORDER; j++) st->pitch_mem[j] = hist[LPC_ORDER + FRAME_SIZE - 1 - j];
  }
  /* Normalised cross-correlation per half-frame. */
  for (sub = 0; sub < 2; sub++) {
    const int off = sub * HALF_FRAME;
    const float *x = &st->exc_buf[PITCH_MAX_PERIOD + off];
    float ener0 = 0;
    st->xcorr(x, st->exc_buf + off, xcorr, yy, HALF_FRAME, PITCH_MAX_PERIOD);
    for (i = 0; i < HALF_FRAME; i++) ener0 += x[i] * x[i];
    st->frame_weight[sub] = ener0;
    for (i = 0; i < PITCH_MAX_PERIOD; i++) st->xc[sub][i] = 2 * xcorr[i] / (1 + ener0 + yy[i]);
  }
}

/* --- pitch tracking (docs/features.md, Numerics) -------------------------------- */
/* max_j (a[j] - b[j]), n >= 1. max is exact whatever the order; SSE2's maxps is
 * lane-wise (x > y ? x : y), the same comparison as the scalar code. */
static float max_diff(const float *a, const float *b, int n) {
  float m = a[0] - b[0];
  int j = 1;
#ifdef __SSE2__
  if (n >= 8) {
    __m128 vm = _mm_sub_ps(_mm_loadu_ps(a), _mm_loadu_ps(b));
    float lanes[4];
    int k;
    for (j = 4; j + 4 <= n; j += 4) vm = _mm_max_ps(_mm_sub_ps(_mm_loadu_ps(a + j), _mm_loadu_ps(b + j)), vm);
    _mm_storeu_ps(lanes, vm);
    m = lanes[0];
    for (k = 1; k < 4; k++) m = lanes[k] > m ? lanes[k] : m;
  }
#endif
  for (; j < n; j++) {
    float v = a[j] - b[j];
    m = v > m ? v : m;
  }
  return m;
}

/* First j with a[j] - b[j] == m (m is known to occur). */
static int first_equal(const float *a, const float *b, int n, float m) {
  int j = 0;
#ifdef __SSE2__
  const __m128 vm = _mm_set1_ps(m);
  for (; j + 4 <= n; j += 4) {
    int mask = _mm_movemask_ps(_mm_cmpeq_ps(_mm_sub_ps(_mm_loadu_ps(a + j), _mm_loadu_ps(b + j)), vm));
    if (mask) return j + __builtin_ctz((unsigned)mask);
  }
#endif
  for (; j < n && a[j] - b[j] != m; j++) {
  }
  return j;
}

/* Octave-error penalty: a lag whose half-lag neighbourhood correlates about as well (lags
 * above 64) is scaled by 0.8. */
static void penalise_octaves(float *xc) {
  int i;
  for (i = 0; i < PITCH_MAX_PERIOD - 2 * PITCH_MIN_PERIOD; i++) {
    float a = xc[(PITCH_MAX_PERIOD + i) / 2], b = xc[(PITCH_MAX_PERIOD + i + 2) / 2];
    float c = xc[(PITCH_MAX_PERIOD + i - 1) / 2];
    float m = a > b ? a : b;
    m = m > c ? m : c;
    if (xc[i] < m * 1.1) xc[i] = (float)(xc[i] * .8);
  }
}

/* A lower bound `lb` of a candidate's best predecessor score and `span`, the largest |j|
 * whose transition penalty .02 j^2 does not exceed -lb (kept from one candidate to the
 * next: lb rarely changes). */
typedef struct {
  float lb;
  int span;
} PruneBound;

/* Best predecessor of candidate i (transition range j = jmin..jmax, the asymmetric range of
 * the original tracker): returns its index and its score path[i + j] - penalty(j) in
 * *score (path_max - 6 and the previous best when none beats that).
 *
 * Exact pruning: path values are <= 0 after renormalisation, so a predecessor whose penalty
 * exceeds -lb can never win; the rest is scanned in the reference order, keeping its
 * tie-breaking. lb: the +-4 neighbourhood, the previous candidate's winner and the global
 * best. */
static inline int best_predecessor(const LPCNetFeatState *st, int i, int prev_origin,
                                   PruneBound *bound, float *score) {
  const float *pen = st->tables.pitch_penalty;
  const float *penj = st->tables.pitch_penalty_sym;
  const int jmin = i < 4 ? 0 : 4 - i;
  const int jmax = (4 < NB_CANDIDATES - 1 - i) ? 4 : NB_CANDIDATES - 1 - i;
  float max_prev = st->path_max - 6.f, lb = max_prev, m;
  int origin = st->best_i, j, k, jlo;
  for (j = (jmin > -4 ? jmin : -4); j <= jmax; j++) {
    float v = st->path[i + j] - pen[abs(j)];
    if (v > lb) lb = v;
  }
  for (k = 0; k < 2; k++) {
    int cand = k ? st->best_i : prev_origin;
    j = cand - i;
    if (cand >= 0 && j >= jmin && j <= jmax) {
      float v = st->path[cand] - pen[abs(j)];
      if (v > lb) lb = v;
    }
  }
  if (lb != bound->lb) {
    bound->lb = lb;
    bound->span = 4;
    if (-lb >= pen[5]) {
      int s = (int)sqrtf(-lb / .02f);
      if (s > NB_CANDIDATES - 1) s = NB_CANDIDATES - 1;
      while (s > 4 && pen[s] > -lb) s--;
      while (s < NB_CANDIDATES - 1 && pen[s + 1] <= -lb) s++;
      bound->span = s;
    }
  }
  jlo = jmin > -bound->span ? jmin : -bound->span;
  /* The reference's strict '>' scan from max_prev keeps the first index reaching the
   * overall maximum: find the maximum (vectorisable), then its first position. Exact:
   * every value is computed identically. */
  m = max_diff(&st->path[i] + jlo, &penj[NB_CANDIDATES] + jlo, jmax - jlo + 1);
  if (m > max_prev) {
    j = jlo + first_equal(&st->path[i] + jlo, &penj[NB_CANDIDATES] + jlo, jmax - jlo + 1, m);
    max_prev = st->path[i + j] - penj[NB_CANDIDATES + j];
    origin = i + j;
  }
  *score = max_prev;
  return origin;
}

/* Backtrack over the two half-frames: features 18 (pitch) and 19 (correlation). */
static void write_pitch_features(const LPCNetFeatState *st, int pitch_prev[2][NB_CANDIDATES],
                                 float *features) {
  int sub, best_i = st->best_i, period[2], total;
  float frame_corr = 0;
  for (sub = 1; sub >= 0; sub--) {
    period[sub] = PITCH_MAX_PERIOD - best_i;
    frame_corr += st->frame_weight[sub] * st->xc[sub][best_i];
    best_i = pitch_prev[sub][best_i];
  }
  frame_corr /= 2;
  total = period[0] + period[1];
  total = total < 66 ? 66 : (total > 510 ? 510 : total);
  features[LPCNET_PITCH_INDEX] = (float)(.01 * (total - 200));
  features[LPCNET_PITCH_CORR_INDEX] = (float)(frame_corr - .5);
}

/* Viterbi-style pitch tracking over the two half-frames of the frame (docs/features.md). */
static void track_pitch(LPCNetFeatState *st, float *features) {
  int pitch_prev[2][NB_CANDIDATES];
  int i, sub;
  float weight_sum = 1e-15f;
  for (sub = 0; sub < 2; sub++) weight_sum += st->frame_weight[sub];
  for (sub = 0; sub < 2; sub++) st->frame_weight[sub] *= (2.f / weight_sum);
  for (sub = 0; sub < 2; sub++) {
    float *xc = st->xc[sub];
    float new_path[NB_CANDIDATES];
    float max_path_all = -1e15f;
    int prev_origin = -1, best_i = 0;
    PruneBound bound = {1e30f, 4};
    penalise_octaves(xc);
    for (i = 0; i < NB_CANDIDATES; i++) {
      float score;
      prev_origin = best_predecessor(st, i, prev_origin, &bound, &score);
      pitch_prev[sub][i] = prev_origin;
      new_path[i] = score + st->frame_weight[sub] * xc[i];
      if (new_path[i] > max_path_all) {
        max_path_all = new_path[i];
        best_i = i;
      }
    }
    for (i = 0; i < NB_CANDIDATES; i++) st->path[i] = new_path[i] - max_path_all;
    st->path_max = max_path_all;
    st->best_i = best_i;
  }
  write_pitch_features(st, pitch_prev, features);
}

/* --- training targets, with the current frame's LPC (docs/features.md, deviation 1) --
 * Byte 3: the target excitation, or in end-to-end mode the clean signal s[n]; nothing else
 * depends on the mode. */
static void write_audio(LPCNetFeatState *st, const float *lpc, uint8_t *data) {
  int i, j;
  for (i = 0; i < FRAME_SIZE; i++) {
    float p = 0;
    int e;
    for (j = 0; j < LPC_ORDER; j++) p -= lpc[j] * st->sig_mem[j];
    e = lin2ulaw_fast(st, st->pcm[i] - p);
    data[4 * i] = (uint8_t)lin2ulaw_fast(st, st->sig_mem[0]);
    data[4 * i + 1] = (uint8_t)lin2ulaw_fast(st, p);
    data[4 * i + 2] = (uint8_t)st->exc_mem;
    data[4 * i + 3] = (uint8_t)(st->end2end ? lin2ulaw_fast(st, st->pcm[i]) : e);
    e += st->noise[i];
    e = e < 0 ? 0 : (e > 255 ? 255 : e);
    memmove(&st->sig_mem[1], &st->sig_mem[0], (LPC_ORDER - 1) * sizeof(float));
    st->sig_mem[0] = p + st->ulaw_table[e];
    st->exc_mem = e;
  }
}

static void draw_augmentation(LPCNetFeatState *st) {
  double u1, u2;
  st->speech_gain = (float)pow(10., (-20 + pcg32_below(&st->rng, 40)) / 20.);
  if (pcg32_below(&st->rng, 20) == 0) st->speech_gain *= .01f;
  if (pcg32_below(&st->rng, 100) == 0) st->speech_gain = 0;
  st->a_resp[0] = (float)(.75 * (pcg32_uniform(&st->rng) - .5));
  st->a_resp[1] = (float)(.75 * (pcg32_uniform(&st->rng) - .5));
  st->b_resp[0] = (float)(.75 * (pcg32_uniform(&st->rng) - .5));
  st->b_resp[1] = (float)(.75 * (pcg32_uniform(&st->rng) - .5));
  u1 = pcg32_uniform(&st->rng);
  u2 = pcg32_uniform(&st->rng);
  st->noise_std = (float)fabs(-1.5 * log(1e-4 + u1) - .5 * log(1e-4 + u2));
}

/* --- one frame -------------------------------------------------------------- */
void lpcnet_feat_frame(LPCNetFeatState *st, const int16_t *pcm, float *features, uint8_t *data) {
  static const float b_hp[2] = {-2.f, 1.f}, a_hp[2] = {-1.99599f, 0.99600f};
  const int train = st->train;
  float x[FRAME_SIZE];
  int i;
  if (train && ++st->gain_change_count > LPCNET_GAIN_CHANGE_FRAMES - 1) {
    draw_augmentation(st);
    st->gain_change_count = 0;
  }
  for (i = 0; i < FRAME_SIZE; i++) x[i] = pcm[i];
  biquad(x, st->mem_hp, b_hp, a_hp, FRAME_SIZE);
  if (train) biquad(x, st->mem_resp, st->b_resp, st->a_resp, FRAME_SIZE);
  for (i = 0; i < FRAME_SIZE; i++) {
    float yi = x[i] + st->mem_preemph;
    st->mem_preemph = -PREEMPHASIS * x[i];
    x[i] = yi;
  }
  /* Gain cross-fade; the reference runs it in every mode (gain 1 in -test). */
  for (i = 0; i < FRAME_SIZE; i++) {
    float f = (float)i / FRAME_SIZE;
    x[i] *= f * st->speech_gain + (1 - f) * st->old_speech_gain;
  }
  for (i = 0; i < FRAME_SIZE; i++) x[i] = (float)(x[i] + (pcg32_uniform(&st->rng) - .5));
  for (i = 0; i < FRAME_SIZE - TRAINING_OFFSET; i++) st->pcm[i + TRAINING_OFFSET] = float2short(x[i]);
  compute_frame_features(st, x, features);
  if (train) {
    for (i = 0; i < FRAME_SIZE; i++) {
      double l1 = log(pcg32_uniform_pos(&st->rng)), l2 = log(pcg32_uniform_pos(&st->rng));
      st->noise[i] = (int)floor(.5 + st->noise_std * .707 * (l1 - l2));
    }
  }
  track_pitch(st, features);
  if (train && data) write_audio(st, &features[LPCNET_LPC_INDEX], data);
  for (i = 0; i < TRAINING_OFFSET; i++) st->pcm[i] = float2short(x[i + FRAME_SIZE - TRAINING_OFFSET]);
  st->old_speech_gain = st->speech_gain;
}

void lpcnet_feat_process(LPCNetFeatState *st, const int16_t *pcm, long nb_frames, float *features,
                         uint8_t *data) {
  long k;
  const int train = st->train;
  for (k = 0; k < nb_frames; k++) {
    /* Record k describes the previous input frame (zeros for the very first). */
    lpcnet_feat_frame(st, st->lagged, features + k * LPCNET_NB_TOTAL_FEATURES,
                      train && data ? data + k * FRAME_SIZE * LPCNET_DATA_CHANNELS : NULL);
    memcpy(st->lagged, pcm + k * FRAME_SIZE, sizeof(st->lagged));
  }
}
