/* SIMD vs scalar cross-correlation kernels: must be bit-identical (no FMA, same order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/xcorr.h"

int main(void) {
  float x[80], y[416], c0[256], e0[256], c1[256], e1[256];
  int i, level, failures = 0;
  srand(1);
  for (i = 0; i < 416; i++) y[i] = (float)rand() / RAND_MAX * 2000.f - 1000.f;
  for (i = 0; i < 80; i++) x[i] = y[256 + i];
  xcorr_energy_c(x, y, c0, e0, 80, 256);
  for (level = XCORR_AVX2; level <= xcorr_cpu_level(); level++) {
    xcorr_select(level)(x, y, c1, e1, 80, 256);
    if (memcmp(c0, c1, sizeof(c0)) || memcmp(e0, e1, sizeof(e0))) {
      printf("FAIL: xcorr level %d differs from scalar\n", level);
      failures++;
    } else {
      printf("ok: xcorr level %d bit-identical to scalar\n", level);
    }
  }
  printf("%s (cpu level %d)\n", failures ? "FAIL" : "PASS", xcorr_cpu_level());
  return failures != 0;
}
