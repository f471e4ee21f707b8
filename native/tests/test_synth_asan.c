/* Driver of the native synthesiser for sanitizer builds and profiling.
 * usage: test_synth_asan BLOB FEATURES.f32 [repeat [flags [streams]]]
 * (with repeat > 1: profiling mode, synthesises repeat times with the given flags, with
 * `streams` streams at once if given, and prints the process CPU time per sample;
 * `make -C native profile-synth` builds it without sanitizers, docs/benchmarks.md#synth)
 * Synthesises the features with every option combination on every SIMD level,
 * checks the streaming API (frame by frame, and in blocks) and the multi-stream API
 * against the whole-utterance call, and feeds truncated / corrupted copies of the blob to
 * the loader (must fail cleanly). An end-to-end blob also: LPC_CEPSTRUM refused, each frame's
 * LPC the step-up recursion of its conditioning (lpcnet_synth_trace), features 20..35 unread.
 * Exit status 0 on success.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lpcnet_synth.h"

static unsigned char *read_all(const char *path, long *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *len = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(*len > 0 ? (size_t)*len : 1);
  if (buf && fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

static const int levels[3] = {LPCNET_SIMD_SCALAR, LPCNET_SIMD_AVX2, LPCNET_SIMD_AVX512};

static int check_multi(const LPCNetSynthModel *m, int flags, int k, const float *feat, long nframes);

/* Every option combination on every SIMD level: the whole-utterance call (with the bit
 * probabilities once) and the streaming calls give the same samples; returns failures.
 * An end-to-end model refuses LPC_CEPSTRUM (single and multi-stream). */
static int check_options(const LPCNetSynthModel *m, int has_int8, int end2end, const float *feat,
                         long nframes, int16_t *out, int16_t *out2) {
  const int all = end2end ? 15 & ~LPCNET_SYNTH_LPC_CEPSTRUM : 15;
  int l, flags, fails = 0;
  long i, done, b;
  LPCNetSynthState *st;
  for (l = 0; l < 3; l++) {
    lpcnet_synth_set_simd_level(levels[l]);
    for (flags = 0; flags < 16; flags++) {
      float *probs = NULL;
      if ((flags & LPCNET_SYNTH_INT8) && !has_int8) continue;
      if ((flags & LPCNET_SYNTH_LPC_CEPSTRUM) && end2end) {
        if (lpcnet_synth_create(m, flags, 7) || lpcnet_synth_multi_create(m, flags, 2)) {
          fprintf(stderr, "end-to-end model accepted LPC_CEPSTRUM (flags %d)\n", flags);
          fails++;
        }
        continue;
      }
      st = lpcnet_synth_create(m, flags, 7);
      if (flags == 0) probs = malloc(sizeof(float) * 256 * (size_t)nframes * 160);
      if (lpcnet_synth_run(st, feat, nframes, out, probs, NULL) != nframes * 160) fails++;
      lpcnet_synth_destroy(st);
      free(probs);
      st = lpcnet_synth_create(m, flags, 7);
      for (i = 0, done = 0; i < nframes; i++)
        done += lpcnet_synth_frame(st, feat + i * LPCNET_SYNTH_NB_TOTAL_FEATURES, out2 + done);
      done += lpcnet_synth_flush(st, out2 + done);
      lpcnet_synth_destroy(st);
      if (done != nframes * 160 || memcmp(out, out2, sizeof(int16_t) * (size_t)done)) {
        fprintf(stderr, "streaming != whole-utterance (level %d flags %d)\n", levels[l], flags);
        fails++;
      }
      /* blocks of 1, 2, 3, ... frames (lpcnet_synth_frames) */
      st = lpcnet_synth_create(m, flags, 7);
      for (i = 0, done = 0, b = 1; i < nframes; i += b, b++)
        done += lpcnet_synth_frames(st, feat + i * LPCNET_SYNTH_NB_TOTAL_FEATURES,
                                    nframes - i < b ? nframes - i : b, out2 + done);
      done += lpcnet_synth_flush(st, out2 + done);
      lpcnet_synth_destroy(st);
      if (done != nframes * 160 || memcmp(out, out2, sizeof(int16_t) * (size_t)done)) {
        fprintf(stderr, "blocks != whole-utterance (level %d flags %d)\n", levels[l], flags);
        fails++;
      }
      if (flags == 0 || flags == 1 || flags == all) /* multi-stream, 1, 2 and 5 streams */
        fails += check_multi(m, flags, 1, feat, nframes) + check_multi(m, flags, 2, feat, nframes) +
                 check_multi(m, flags, 5, feat, nframes);
    }
  }
  return fails;
}

/* Utterance u of the multi-stream tests (u = 0..k; u = k is slot 1's second one): frames
 * [first, first + len) of the features, seed 11 + u. */
static long utt_first(int u, int k) { return u % k; }
static long utt_len(long nframes, int u, int k) { return nframes - u % k > 1 ? nframes - u % k : 1; }

/* k streams of different lengths and seeds synthesised together (started in turn, so that
 * some run while others wait or have ended, and slot 1 restarted with a new utterance)
 * give, stream by stream, the samples of a single state; returns failures. */
static int check_multi(const LPCNetSynthModel *m, int flags, int k, const float *feat, long nframes) {
  const int NB = LPCNET_SYNTH_NB_TOTAL_FEATURES, F = LPCNET_SYNTH_FRAME_SIZE;
  const int nutt = k + 1; /* utterance k is a second one for slot 1 */
  LPCNetSynthMulti *ms = lpcnet_synth_multi_create(m, flags, k);
  long *pos = calloc((size_t)nutt, sizeof(long)), *fed = calloc((size_t)nutt, sizeof(long));
  int16_t **got = calloc((size_t)nutt, sizeof(int16_t *)), *want = malloc(sizeof(int16_t) * (size_t)(nframes + 2) * F);
  float *f = calloc((size_t)k * NB, sizeof(float));
  int8_t *cmd = calloc((size_t)k, 1);
  int16_t *out = calloc((size_t)k * F, sizeof(int16_t)), *nout = calloc((size_t)k, sizeof(int16_t));
  int *utt = calloc((size_t)k, sizeof(int)), s, u, fails = 0, step;
  if (!ms) return 1;
  for (u = 0; u < nutt; u++) got[u] = calloc((size_t)(nframes + 2) * F, sizeof(int16_t));
  for (s = 0; s < k; s++) utt[s] = -1;
  for (step = 0;; step++) {
    int busy = 0;
    for (s = 0; s < k; s++) {
      if (utt[s] < 0 && step >= 2 * s) { /* stream s starts at step 2 s */
        utt[s] = s;
        lpcnet_synth_multi_start(ms, s, 11 + (uint64_t)s);
      }
      u = utt[s];
      cmd[s] = LPCNET_SYNTH_IDLE;
      if (u < 0) continue;
      if (fed[u] < utt_len(nframes, u, k)) {
        cmd[s] = LPCNET_SYNTH_FEED;
        memcpy(f + (size_t)s * NB, feat + (size_t)(utt_first(u, k) + fed[u]) * NB, sizeof(float) * NB);
      } else if (fed[u] < utt_len(nframes, u, k) + LPCNET_SYNTH_DELAY_FRAMES) {
        cmd[s] = LPCNET_SYNTH_END;
      }
      if (cmd[s] != LPCNET_SYNTH_IDLE) fed[u]++, busy = 1;
    }
    if (!busy) break;
    if (lpcnet_synth_multi_step(ms, 1, f, cmd, out, nout) < 0) fails++;
    for (s = 0; s < k; s++) {
      u = utt[s];
      if (u < 0) continue;
      memcpy(got[u] + pos[u], out + (size_t)s * F, sizeof(int16_t) * nout[s]);
      pos[u] += nout[s];
      /* slot 1 takes utterance k once its first one has ended */
      if (s == 1 && u == 1 && fed[u] == utt_len(nframes, u, k) + LPCNET_SYNTH_DELAY_FRAMES) {
        utt[s] = k;
        lpcnet_synth_multi_start(ms, s, 11 + (uint64_t)k);
      }
    }
  }
  for (u = 0; u < nutt; u++) {
    LPCNetSynthState *st;
    long done;
    if (u == k && k < 2) continue; /* no slot 1, no second utterance */
    st = lpcnet_synth_create(m, flags, 11 + (uint64_t)u);
    done = lpcnet_synth_run(st, feat + (size_t)utt_first(u, k) * NB, utt_len(nframes, u, k), want, NULL, NULL);
    lpcnet_synth_destroy(st);
    if (pos[u] != done || memcmp(got[u], want, sizeof(int16_t) * (size_t)done)) {
      fprintf(stderr, "multi-stream (%d streams, flags %d): stream %d differs from a single state\n", k, flags, u);
      fails++;
    }
  }
  cmd[0] = 7; /* a bad command is refused */
  if (lpcnet_synth_multi_step(ms, 1, f, cmd, out, nout) != -1) fails++;
  if (lpcnet_synth_multi_start(ms, k, 1) != -1 || lpcnet_synth_multi_create(m, flags, 0)) fails++;
  lpcnet_synth_multi_destroy(ms);
  for (u = 0; u < nutt; u++) free(got[u]);
  free(got), free(pos), free(fed), free(want), free(f), free(cmd), free(out), free(nout), free(utt);
  return fails;
}

/* Non-finite features must not reach undefined float -> int conversions. */
static int check_nonfinite(const LPCNetSynthModel *m, int has_int8, const float *feat, long nframes,
                           int16_t *out) {
  const size_t n = LPCNET_SYNTH_NB_TOTAL_FEATURES * (size_t)nframes;
  float *nanfeat = malloc(sizeof(float) * n);
  int l, flags, fails = 0;
  memcpy(nanfeat, feat, sizeof(float) * n);
  nanfeat[5] = nanfeat[18] = nanfeat[25] = 0.f / 0.f;
  if (nframes > 1) nanfeat[LPCNET_SYNTH_NB_TOTAL_FEATURES + 3] = 1.f / 0.f;
  for (l = 0; l < 3; l++) {
    lpcnet_synth_set_simd_level(levels[l]);
    for (flags = 0; flags < 2; flags++) {
      LPCNetSynthState *st;
      if ((flags & LPCNET_SYNTH_INT8) && !has_int8) continue;
      st = lpcnet_synth_create(m, flags, 3);
      if (lpcnet_synth_run(st, nanfeat, nframes, out, NULL, NULL) != nframes * 160) fails++;
      lpcnet_synth_destroy(st);
    }
  }
  free(nanfeat);
  return fails;
}

/* End-to-end model: each frame's LPC is the step-up recursion (here in double, written
 * independently of the engine's) of the first 16 values of the frame's conditioning vector,
 * and features 20..35 are not read (overwriting them changes no sample). */
static int check_end2end(const LPCNetSynthModel *m, int cond, const float *feat, long nframes,
                         int16_t *out, int16_t *out2) {
  const size_t nf = LPCNET_SYNTH_NB_TOTAL_FEATURES * (size_t)nframes;
  float *c = malloc(sizeof(float) * (size_t)cond * (size_t)nframes);
  float *lpc = malloc(sizeof(float) * 16 * (size_t)nframes), *junk = malloc(sizeof(float) * nf);
  int fails = 0, i, j;
  long f;
  LPCNetSynthState *st = lpcnet_synth_create(m, 0, 5);
  lpcnet_synth_trace(st, c, lpc);
  if (lpcnet_synth_run(st, feat, nframes, out, NULL, NULL) != nframes * 160) fails++;
  lpcnet_synth_destroy(st);
  for (f = 0; f < nframes; f++) {
    double a[16] = {0}, prev[16];
    const float *k = c + (size_t)f * cond;
    for (i = 0; i < 16; i++) {
      memcpy(prev, a, sizeof(prev));
      for (j = 0; j < i; j++) a[j] = prev[j] + k[i] * prev[i - 1 - j];
      a[i] = k[i];
    }
    double scale = 1; /* float rounding of the recursion: relative to the sum of |a| */
    for (i = 0; i < 16; i++) scale += fabs(a[i]);
    for (i = 0; i < 16; i++)
      if (fabs(a[i] - lpc[f * 16 + i]) > 1e-5 * scale) {
        fprintf(stderr, "end-to-end LPC of frame %ld differs from the step-up recursion\n", f);
        fails++;
        break;
      }
  }
  memcpy(junk, feat, sizeof(float) * nf);
  for (f = 0; f < nframes; f++)
    for (i = 0; i < 16; i++) junk[f * LPCNET_SYNTH_NB_TOTAL_FEATURES + 20 + i] = (float)(100 * i - 777);
  st = lpcnet_synth_create(m, 0, 5);
  if (lpcnet_synth_run(st, junk, nframes, out2, NULL, NULL) != nframes * 160 ||
      memcmp(out, out2, sizeof(int16_t) * 160 * (size_t)nframes)) {
    fprintf(stderr, "end-to-end model read features 20..35\n");
    fails++;
  }
  lpcnet_synth_destroy(st);
  free(c), free(lpc), free(junk);
  return fails;
}

/* Truncated and corrupted blobs must be rejected without crashing. */
static int check_bad_blobs(const unsigned char *blob, long blen) {
  unsigned char *bad = malloc((size_t)blen);
  char err[256];
  long n;
  int fails = 0;
  for (n = 0; n < blen; n += blen / 37 + 1) {
    if (lpcnet_synth_model_load(blob, (size_t)n, err, sizeof(err))) fails++;
    memcpy(bad, blob, (size_t)blen);
    bad[n] ^= 0x5A;
    if (lpcnet_synth_model_load(bad, (size_t)blen, err, sizeof(err))) fails++;
  }
  free(bad);
  return fails;
}

/* Profiling mode: synthesise `repeat` times with the given flags (e.g. under perf), with
 * `streams` streams at once (the same features) if streams > 0. */
static int profile(const LPCNetSynthModel *m, int flags, int repeat, int streams, const float *feat,
                   long nframes, int16_t *out) {
  int i;
  if (streams > 0) {
    LPCNetSynthMulti *ms = lpcnet_synth_multi_create(m, flags, streams);
    float *f = malloc(sizeof(float) * LPCNET_SYNTH_NB_TOTAL_FEATURES * (size_t)streams);
    int8_t *cmd = malloc((size_t)streams);
    int16_t *o = malloc(sizeof(int16_t) * 160 * (size_t)streams), *no = malloc(sizeof(int16_t) * (size_t)streams);
    long t;
    int s;
    if (!ms || !f || !cmd || !o || !no) return 1;
    for (i = 0; i < repeat; i++) {
      for (s = 0; s < streams; s++) lpcnet_synth_multi_start(ms, s, 1 + (uint64_t)s);
      for (t = 0; t < nframes + 2; t++) {
        for (s = 0; s < streams; s++) {
          cmd[s] = t < nframes ? LPCNET_SYNTH_FEED : LPCNET_SYNTH_END;
          if (t < nframes)
            memcpy(f + (size_t)s * LPCNET_SYNTH_NB_TOTAL_FEATURES, feat + t * LPCNET_SYNTH_NB_TOTAL_FEATURES,
                   sizeof(float) * LPCNET_SYNTH_NB_TOTAL_FEATURES);
        }
        lpcnet_synth_multi_step(ms, 1, f, cmd, o, no);
      }
    }
    lpcnet_synth_multi_destroy(ms);
    free(f), free(cmd), free(o), free(no);
    return 0;
  }
  for (i = 0; i < repeat; i++) {
    LPCNetSynthState *st = lpcnet_synth_create(m, flags, 1);
    if (!st) return 1;
    lpcnet_synth_run(st, feat, nframes, out, NULL, NULL);
    lpcnet_synth_destroy(st);
  }
  return 0;
}

int main(int argc, char **argv) {
  long blen, flen, nframes;
  unsigned char *blob;
  float *feat;
  int16_t *out, *out2;
  int sizes[5], fails = 0, repeat = argc > 3 ? atoi(argv[3]) : 1;
  char err[256];
  LPCNetSynthModel *m;

  if (argc < 3) {
    fprintf(stderr, "usage: %s BLOB FEATURES.f32 [repeat [flags [streams]]]\n", argv[0]);
    return 2;
  }
  blob = read_all(argv[1], &blen);
  feat = (float *)read_all(argv[2], &flen);
  if (!blob || !feat) {
    fprintf(stderr, "cannot read inputs\n");
    free(blob), free(feat);
    return 2;
  }
  nframes = flen / (4 * LPCNET_SYNTH_NB_TOTAL_FEATURES);
  m = lpcnet_synth_model_load(blob, (size_t)blen, err, sizeof(err));
  if (!m) {
    fprintf(stderr, "load failed: %s\n", err);
    return 1;
  }
  lpcnet_synth_model_sizes(m, sizes);
  out = calloc((size_t)nframes * 160, sizeof(int16_t));
  out2 = calloc((size_t)nframes * 160 + 320, sizeof(int16_t));
  if (repeat > 1) {
    int flags = argc > 4 ? atoi(argv[4]) : 0, streams = argc > 5 ? atoi(argv[5]) : 0;
    struct timespec t0, t1;
    double us;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    fails = profile(m, flags, repeat, streams, feat, nframes, out);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-3) /
         ((double)repeat * (double)nframes * 160.0 * (streams > 0 ? streams : 1));
    printf("profile: %ld frames x %d repeats, flags %d, %d stream(s): %.3f us CPU per %s\n", nframes,
           repeat, flags, streams > 0 ? streams : 1, us, streams > 0 ? "stream-sample" : "sample");
  } else {
    fails = check_options(m, sizes[3], sizes[4], feat, nframes, out, out2);
    fails += check_nonfinite(m, sizes[3], feat, nframes, out);
    if (sizes[4]) fails += check_end2end(m, sizes[2], feat, nframes, out, out2);
    fails += check_bad_blobs(blob, blen);
    printf("%s: %ld frames, GRU A %d, int8 %d, end-to-end %d, SIMD up to %d\n", fails ? "FAIL" : "ok",
           nframes, sizes[0], sizes[3], sizes[4], lpcnet_synth_set_simd_level(LPCNET_SIMD_AUTO));
  }
  lpcnet_synth_model_free(m);
  free(blob), free(feat), free(out), free(out2);
  return fails ? 1 : 0;
}
