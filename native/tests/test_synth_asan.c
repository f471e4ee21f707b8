/* Driver of the native synthesiser for sanitizer builds and profiling.
 * usage: test_synth_asan BLOB FEATURES.f32 [repeat [flags]]
 * (with repeat > 1: profiling mode, synthesises repeat times with the given flags)
 * Synthesises the features with every option combination on every SIMD level,
 * checks the streaming API against the whole-utterance call, and feeds
 * truncated / corrupted copies of the blob to the loader (must fail cleanly).
 * Exit status 0 on success.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Every option combination on every SIMD level: the whole-utterance call (with the bit
 * probabilities once) and the streaming calls give the same samples; returns failures. */
static int check_options(const LPCNetSynthModel *m, int has_int8, const float *feat, long nframes,
                         int16_t *out, int16_t *out2) {
  int l, flags, fails = 0;
  long i, done;
  LPCNetSynthState *st;
  for (l = 0; l < 3; l++) {
    lpcnet_synth_set_simd_level(levels[l]);
    for (flags = 0; flags < 16; flags++) {
      float *probs = NULL;
      if ((flags & LPCNET_SYNTH_INT8) && !has_int8) continue;
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
    }
  }
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

/* Profiling mode: synthesise `repeat` times with the given flags (e.g. under perf). */
static int profile(const LPCNetSynthModel *m, int flags, int repeat, const float *feat,
                   long nframes, int16_t *out) {
  int i;
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
  int sizes[4], fails = 0, repeat = argc > 3 ? atoi(argv[3]) : 1;
  char err[256];
  LPCNetSynthModel *m;

  if (argc < 3) {
    fprintf(stderr, "usage: %s BLOB FEATURES.f32 [repeat [flags]]\n", argv[0]);
    return 2;
  }
  blob = read_all(argv[1], &blen);
  feat = (float *)read_all(argv[2], &flen);
  if (!blob || !feat) {
    fprintf(stderr, "cannot read inputs\n");
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
    fails = profile(m, argc > 4 ? atoi(argv[4]) : 0, repeat, feat, nframes, out);
  } else {
    fails = check_options(m, sizes[3], feat, nframes, out, out2);
    fails += check_nonfinite(m, sizes[3], feat, nframes, out);
    fails += check_bad_blobs(blob, blen);
    printf("%s: %ld frames, GRU A %d, int8 %d, SIMD up to %d\n", fails ? "FAIL" : "ok", nframes,
           sizes[0], sizes[3], lpcnet_synth_set_simd_level(LPCNET_SIMD_AUTO));
  }
  lpcnet_synth_model_free(m);
  free(blob), free(feat), free(out), free(out2);
  return fails ? 1 : 0;
}
