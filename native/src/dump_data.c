/* Standalone dump_data: the original command line, used for the sanitizer build.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause.
 *
 *   dump_data [-seed N] [-max-frames N] [-end2end] -train in.s16 features.f32 data.u8
 *   dump_data [-seed N] -test in.s16 features.f32
 * Streams the input in 160-sample blocks (constant memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/lpcnet.h"

static int usage(void) {
  fprintf(stderr,
          "usage: dump_data [-seed N] [-max-frames N] [-end2end] -train <speech> <features out> <pcm out>\n"
          "  or   dump_data [-seed N] -test <speech> <features out>\n");
  return 1;
}

int main(int argc, char **argv) {
  int16_t block[LPCNET_FRAME_SIZE];
  float feat[LPCNET_NB_TOTAL_FEATURES];
  uint8_t data[LPCNET_FRAME_SIZE * LPCNET_DATA_CHANNELS];
  unsigned long long seed = 0;
  long max_frames = -1, count = 0;
  int mode, argi = 1, end2end = 0;
  FILE *fin, *ffeat, *fpcm = NULL;
  LPCNetFeatState *st;
  /* options before the mode; -end2end: byte 3 of data.u8 = the clean signal (docs/features.md) */
  while (argi < argc - 1 && (!strcmp(argv[argi], "-seed") || !strcmp(argv[argi], "-max-frames") ||
                             !strcmp(argv[argi], "-end2end"))) {
    if (!strcmp(argv[argi], "-end2end")) {
      end2end = 1;
      argi++;
      continue;
    }
    if (!strcmp(argv[argi], "-seed"))
      seed = strtoull(argv[argi + 1], NULL, 10);
    else
      max_frames = strtol(argv[argi + 1], NULL, 10);
    argi += 2;
  }
  if (argi >= argc) return usage();
  if (!strcmp(argv[argi], "-train") && argc - argi == 4)
    mode = end2end ? LPCNET_MODE_TRAIN_END2END : LPCNET_MODE_TRAIN;
  else if (!strcmp(argv[argi], "-test") && argc - argi == 3 && !end2end && max_frames < 0)
    mode = LPCNET_MODE_TEST;
  else
    return usage();
  fin = fopen(argv[argi + 1], "rb");
  if (!fin) {
    fprintf(stderr, "dump_data: cannot open %s\n", argv[argi + 1]);
    return 1;
  }
  ffeat = fopen(argv[argi + 2], "wb");
  if (!ffeat) {
    fprintf(stderr, "dump_data: cannot write %s\n", argv[argi + 2]);
    return 1;
  }
  if (mode != LPCNET_MODE_TEST) {
    fpcm = fopen(argv[argi + 3], "wb");
    if (!fpcm) {
      fprintf(stderr, "dump_data: cannot write %s\n", argv[argi + 3]);
      return 1;
    }
  }
  st = lpcnet_feat_create(mode, seed);
  if (!st) return 1;
  for (;;) {
    size_t got = fread(block, sizeof(int16_t), LPCNET_FRAME_SIZE, fin);
    if (got != LPCNET_FRAME_SIZE) {
      /* End of the input: -test stops; -train wraps around until max_frames. */
      if (mode == LPCNET_MODE_TEST || max_frames < 0 || count >= max_frames || count == 0) break;
      rewind(fin);
      continue;
    }
    if (max_frames >= 0 && count >= max_frames) break;
    lpcnet_feat_process(st, block, 1, feat, fpcm ? data : NULL);
    fwrite(feat, sizeof(float), LPCNET_NB_TOTAL_FEATURES, ffeat);
    if (fpcm) fwrite(data, 1, sizeof(data), fpcm);
    count++;
  }
  fprintf(stderr, "dump_data: %ld frames (simd level %d)\n", count, lpcnet_simd_level());
  lpcnet_feat_destroy(st);
  fclose(fin);
  if (fclose(ffeat) || (fpcm && fclose(fpcm))) {
    fprintf(stderr, "dump_data: write error\n");
    return 1;
  }
  return 0;
}
