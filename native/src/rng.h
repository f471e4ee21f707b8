/* PCG32 (XSH-RR) generator: small, fast, reproducible on every platform.
 * The same sequence is reimplemented in lpcnet/features_reference.py. */
#ifndef LPCNET_RNG_H
#define LPCNET_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t state, inc;
} Pcg32;

static inline uint32_t pcg32_next(Pcg32 *g) {
  uint64_t old = g->state;
  uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = (uint32_t)(old >> 59u);
  g->state = old * 6364136223846793005ULL + g->inc;
  return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

static inline void pcg32_seed(Pcg32 *g, uint64_t seed) {
  g->state = 0;
  g->inc = (0x4c504e6574ULL << 1u) | 1u; /* fixed stream id ("LPNet") */
  pcg32_next(g);
  g->state += seed;
  pcg32_next(g);
}

/** Uniform on [0, 1 - 2^-24] with 24-bit resolution. */
static inline float pcg32_uniform(Pcg32 *g) {
  return (float)(pcg32_next(g) >> 8) * (1.0f / 16777216.0f);
}

/** Uniform on (0, 1]: safe for log(). */
static inline double pcg32_uniform_pos(Pcg32 *g) {
  return ((pcg32_next(g) >> 8) + 1.0) * (1.0 / 16777216.0);
}

/** Uniform integer in 0..n-1 (n small; modulo bias below 2^-24). */
static inline int pcg32_below(Pcg32 *g, int n) {
  return (int)(pcg32_next(g) % (uint32_t)n);
}

#endif
