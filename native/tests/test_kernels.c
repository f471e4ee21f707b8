/* Kernel test: every slot of every kernel table this CPU can run (synthesis nnet_*, feature
 * xcorr_*, training GRU gru_*), compared with the scalar reference of the same slot, on
 * random inputs and, when given, on real ones:
 *
 *   test_kernels [speech.s16 [weights.bin]]     (make -C native test REAL_SPEECH=... BLOB=...)
 *
 * speech.s16: 16 kHz int16 speech (lpcnet prepare), used as the pitch-correlation signal and
 * for the codes and states fed to the synthesis kernels; weights.bin: a blob written by
 * `lpcnet export --int8` (docs/weights-format.md) whose matrices are used as the weights.
 * Prints one line per table and "PASS" (exit 0), or each failure and "FAIL" (exit 1).
 *
 * Tolerances. Exact where the arithmetic is the same (xcorr: same order, no FMA; integer
 * dot products; quantisation). A sum of n float terms computed in any order and with or
 * without FMA differs from another such sum by at most about n u sum|terms|, u = 2^-24
 * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., section 3.1); the
 * tests allow (n + 1) FLT_EPSILON sum|terms| = 2 (n + 1) u sum|terms|: twice the bound,
 * and still orders of magnitude below what a wrong index, weight or tail would cost. The
 * activations are compared in absolute terms (their values are at most 1), see check_act. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/blob.h"
#include "../src/gru_kernels.h"
#include "../src/nnet.h"
#include "../src/xcorr.h"

static int failures, checks;
static unsigned long long rng_state = 0x2545F4914F6CDD1DULL;

/* xorshift64*: uniform on [lo, hi) */
static double urand(double lo, double hi) {
  rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
  return lo + (hi - lo) * (double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static int irand(int n) { return (int)urand(0, n); }

static void fill(float *x, long n, double lo, double hi) {
  long i;
  for (i = 0; i < n; i++) x[i] = (float)urand(lo, hi);
}

static void *xmalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* 64-byte aligned zeroed floats (the tree4 tables are read with aligned loads). */
static float *xmalloc_aligned(size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 64, sizeof(float) * (n ? n : 1))) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  memset(p, 0, sizeof(float) * n);
  return p;
}

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("  FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  failures++;
}

/* got vs ref elementwise within tol[i]; reports the first violation. */
static void check_tol(const char *what, int level, const float *got, const float *ref,
                      const double *tol, long n) {
  long i;
  checks++;
  for (i = 0; i < n; i++) {
    if (!(fabs((double)got[i] - ref[i]) <= tol[i])) {
      fail("%s (level %d): [%ld] = %.9g, reference %.9g, tolerance %.3g", what, level, i,
           got[i], ref[i], tol[i]);
      return;
    }
  }
}

/* Activations (sigmoid / tanh / GRU states, |value| <= 1): every level evaluates the same
 * exp polynomial (~1 ulp), but with FMA and a reciprocal estimate + Newton step (AVX2) or a
 * division, and tanh as 2 sigmoid(2x) - 1, which keeps the absolute error below ~4 ulps of
 * 1 (5e-7). 2e-6 leaves margin; a wrong unit or gate moves a value by ~0.1. */
#define ACT_TOL 2e-6
static void check_act(const char *what, int level, const float *got, const float *ref, long n,
                      double tol) {
  long i;
  double *t = xmalloc(sizeof(double) * (size_t)n);
  for (i = 0; i < n; i++) t[i] = tol;
  check_tol(what, level, got, ref, t, n);
  free(t);
}

static void check_exact(const char *what, int level, const void *got, const void *ref, size_t n) {
  checks++;
  if (memcmp(got, ref, n)) fail("%s (level %d): not bit-identical to the reference", what, level);
}

/* tol[j] = (terms + 1) FLT_EPSILON (|out0[j]| + sum[j]) for sums of `terms` products whose
 * absolute values add up to sum[j] (see the file comment). */
static void sum_tol(double *tol, const float *out0, const double *sum, long n, int terms) {
  long j;
  for (j = 0; j < n; j++) tol[j] = (terms + 1) * FLT_EPSILON * ((out0 ? fabs(out0[j]) : 0) + sum[j]);
}

/* --- block-sparse matrices ---------------------------------------------------------------- */
typedef struct {
  int rows, ngroups;
  long nblocks;
  int32_t *idx;
  float *w;
  int8_t *wq;
} Sparse;

/* Random block list (counts 0..rows/4, each row start at most once) or all blocks (dense). */
static Sparse random_sparse(int rows, int ngroups, int dense) {
  Sparse s;
  int g, r, pos = 0;
  s.rows = rows, s.ngroups = ngroups, s.nblocks = 0;
  s.idx = xmalloc(sizeof(int32_t) * (size_t)ngroups * (rows / 4 + 1));
  for (g = 0; g < ngroups; g++) {
    int cpos = pos++, count = 0;
    for (r = 0; r < rows; r += 4)
      if (dense || urand(0, 1) < (g % 3 == 0 ? 0.15 : 0.5)) s.idx[pos++] = r, count++;
    s.idx[cpos] = count;
    s.nblocks += count;
  }
  s.w = xmalloc(sizeof(float) * NNET_BLOCK_SIZE * (size_t)s.nblocks);
  s.wq = xmalloc((size_t)NNET_BLOCK_SIZE * s.nblocks);
  fill(s.w, NNET_BLOCK_SIZE * s.nblocks, -0.5, 0.5);
  for (r = 0; r < NNET_BLOCK_SIZE * s.nblocks; r++) s.wq[r] = (int8_t)(irand(256) - 128);
  return s;
}

static void free_sparse(Sparse *s) { free(s->idx), free(s->w), free(s->wq); }

/* sum_i |x_i w_ij| of a block-sparse float product per output, and the largest count. */
static int sparse_abs_sums(const Sparse *s, const float *x, double *sum) {
  const int32_t *idx = s->idx;
  const float *w = s->w;
  int g, b, r, c, most = 0;
  for (g = 0; g < s->ngroups; g++) {
    int count = *idx++;
    most = count > most ? count : most;
    for (c = 0; c < NNET_BLOCK_COLS; c++) sum[NNET_BLOCK_COLS * g + c] = 0;
    for (b = 0; b < count; b++, w += NNET_BLOCK_SIZE) {
      const float *xr = x + *idx++;
      for (r = 0; r < NNET_BLOCK_ROWS; r++)
        for (c = 0; c < NNET_BLOCK_COLS; c++)
          sum[NNET_BLOCK_COLS * g + c] += fabs((double)xr[r] * w[r * NNET_BLOCK_COLS + c]);
    }
  }
  return most;
}

/* --- synthesis kernels (nnet.h) ------------------------------------------------------------ */
static const NNetKernels *ref = &nnet_kernels_ref;

static void test_sgemv(const NNetKernels *k, const float *w, int rows, int cols, const float *x) {
  float *out = xmalloc(sizeof(float) * cols), *want = xmalloc(sizeof(float) * cols);
  float *out0 = xmalloc(sizeof(float) * cols);
  double *sum = xmalloc(sizeof(double) * cols), *tol = xmalloc(sizeof(double) * cols);
  int i, j;
  fill(out0, cols, -1, 1);
  for (j = 0; j < cols; j++)
    for (sum[j] = 0, i = 0; i < rows; i++) sum[j] += fabs((double)x[i] * w[(long)i * cols + j]);
  memcpy(out, out0, sizeof(float) * cols);
  memcpy(want, out0, sizeof(float) * cols);
  k->sgemv_accum(out, w, rows, cols, x);
  ref->sgemv_accum(want, w, rows, cols, x);
  sum_tol(tol, out0, sum, cols, rows);
  check_tol("sgemv_accum", k->level, out, want, tol, cols);
  free(out), free(want), free(out0), free(sum), free(tol);
}

static void test_sparse_float(const NNetKernels *k, const Sparse *s, const float *bias, const float *x) {
  const int n = NNET_BLOCK_COLS * s->ngroups;
  float *out = xmalloc(sizeof(float) * n), *want = xmalloc(sizeof(float) * n);
  float *out0 = xmalloc(sizeof(float) * n);
  double *sum = xmalloc(sizeof(double) * n), *tol = xmalloc(sizeof(double) * n);
  int most = sparse_abs_sums(s, x, sum);
  fill(out0, n, -1, 1);
  memcpy(out, out0, sizeof(float) * n);
  memcpy(want, out0, sizeof(float) * n);
  k->sparse_sgemv_accum(out, bias, s->w, s->idx, s->ngroups, x);
  ref->sparse_sgemv_accum(want, bias, s->w, s->idx, s->ngroups, x);
  sum_tol(tol, bias ? bias : out0, sum, n, NNET_BLOCK_ROWS * most);
  check_tol("sparse_sgemv_accum", k->level, out, want, tol, n);
  free(out), free(want), free(out0), free(sum), free(tol);
}

/* int8 products are exact integers; the results differ only by the rounding of
 * init + scale * acc (one FMA vs a multiply and an add): FLT_EPSILON (|init| + |result|). */
static void int8_tol(double *tol, const float *init, const float *want, long n) {
  long j;
  for (j = 0; j < n; j++) tol[j] = FLT_EPSILON * (fabs(init[j]) + fabs(want[j] - init[j]) + fabs(want[j]));
}

static void test_sparse_int8(const NNetKernels *k, const Sparse *s, const float *bias, const uint8_t *xq) {
  const int n = NNET_BLOCK_COLS * s->ngroups;
  const long padded = nnet_padded_blocks(s->idx, s->ngroups);
  float *out = xmalloc(sizeof(float) * n), *want = xmalloc(sizeof(float) * n);
  float *out0 = xmalloc(sizeof(float) * n);
  double *tol = xmalloc(sizeof(double) * n);
  int32_t *pidx = xmalloc(sizeof(int32_t) * (size_t)(padded + s->ngroups));
  int8_t *pwq = xmalloc((size_t)NNET_BLOCK_SIZE * padded);
  fill(out0, n, -1, 1);
  memcpy(want, out0, sizeof(float) * n);
  ref->sparse_i8_accum(want, bias, s->wq, s->idx, s->ngroups, xq, NNET_I8_SCALE);
  int8_tol(tol, bias ? bias : out0, want, n);
  memcpy(out, out0, sizeof(float) * n);
  k->sparse_i8_accum(out, bias, s->wq, s->idx, s->ngroups, xq, NNET_I8_SCALE);
  check_tol("sparse_i8_accum", k->level, out, want, tol, n);
  /* the padded copy (zero blocks) gives the same sums through the even-count slot */
  nnet_pad_even_i8(s->idx, s->wq, s->ngroups, pidx, pwq);
  if (k->sparse_i8_accum_even) {
    float *general = xmalloc(sizeof(float) * n);
    memcpy(general, out, sizeof(float) * n);
    memcpy(out, out0, sizeof(float) * n);
    k->sparse_i8_accum_even(out, bias, pwq, pidx, s->ngroups, xq, NNET_I8_SCALE);
    check_tol("sparse_i8_accum_even", k->level, out, want, tol, n);
    /* the same arithmetic as the general kernel (multi-stream synthesis relies on it) */
    check_exact("sparse_i8_accum_even vs sparse_i8_accum", k->level, out, general, sizeof(float) * n);
    free(general);
  }
  free(out), free(want), free(out0), free(tol), free(pidx), free(pwq);
}

/* A dense block list: dense_i8_accum on its repacked copy (one panel, and panels of
 * NNET_DENSE_PANEL and of 5 groups, read panel by panel as the engine does) vs the reference of
 * that slot, and the reference itself vs the block-sparse reference (checks the repacking). */
static void test_dense_int8(const NNetKernels *k, const Sparse *s, const uint8_t *xq) {
  static const int panels[] = {0, NNET_DENSE_PANEL, 5};
  const int n = NNET_BLOCK_COLS * s->ngroups, rows4 = s->rows / NNET_BLOCK_ROWS;
  float *out = xmalloc(sizeof(float) * n), *want = xmalloc(sizeof(float) * n);
  float *out0 = xmalloc(sizeof(float) * n), *blocks = xmalloc(sizeof(float) * n);
  double *tol = xmalloc(sizeof(double) * n);
  int8_t *dense = xmalloc((size_t)NNET_BLOCK_SIZE * s->nblocks);
  size_t i;
  int g;
  if (!nnet_blocks_are_dense(s->idx, s->rows, s->ngroups))
    fail("nnet_blocks_are_dense: a dense list refused");
  fill(out0, n, -1, 1);
  memcpy(blocks, out0, sizeof(float) * n);
  ref->sparse_i8_accum(blocks, NULL, s->wq, s->idx, s->ngroups, xq, NNET_I8_SCALE);
  int8_tol(tol, out0, blocks, n);
  for (i = 0; i < sizeof panels / sizeof panels[0]; i++) {
    const int panel = panels[i] ? panels[i] : s->ngroups;
    nnet_dense_i8_from_blocks(s->wq, rows4, s->ngroups, panel, dense);
    memcpy(want, out0, sizeof(float) * n);
    memcpy(out, out0, sizeof(float) * n);
    for (g = 0; g < s->ngroups; g += panel) {
      const int pg = s->ngroups - g < panel ? s->ngroups - g : panel;
      const int8_t *pw = dense + (size_t)g * rows4 * NNET_BLOCK_SIZE;
      ref->dense_i8_accum(want + 8 * g, pw, rows4, pg, pg, xq, NNET_I8_SCALE);
      if (k->dense_i8_accum) k->dense_i8_accum(out + 8 * g, pw, rows4, pg, pg, xq, NNET_I8_SCALE);
    }
    check_exact("dense_i8_accum reference vs block form", k->level, want, blocks, sizeof(float) * n);
    if (k->dense_i8_accum) check_tol("dense_i8_accum", k->level, out, want, tol, n);
  }
  { /* several streams at once: each stream bit-identical to the same table's dense_i8_accum */
    const NNetKernels *one = k->dense_i8_accum_multi ? k : ref;
    const int nk = 11; /* more than one pass of 8 streams */
    float *mo = xmalloc(sizeof(float) * (size_t)nk * n), *mw = xmalloc(sizeof(float) * (size_t)nk * n);
    uint8_t *mx = xmalloc((size_t)nk * s->rows);
    float *outs[11];
    const uint8_t *xs[11];
    int st;
    nnet_dense_i8_from_blocks(s->wq, rows4, s->ngroups, s->ngroups, dense);
    fill(mo, (long)nk * n, -1, 1);
    memcpy(mw, mo, sizeof(float) * (size_t)nk * n);
    for (i = 0; i < (size_t)nk * s->rows; i++) mx[i] = (uint8_t)irand(255);
    for (st = 0; st < nk; st++) {
      outs[st] = mo + (size_t)st * n;
      xs[st] = mx + (size_t)st * s->rows;
      one->dense_i8_accum(mw + (size_t)st * n, dense, rows4, s->ngroups, s->ngroups, xs[st], NNET_I8_SCALE);
    }
    one->dense_i8_accum_multi(outs, dense, rows4, s->ngroups, s->ngroups, xs, nk, NNET_I8_SCALE);
    check_exact("dense_i8_accum_multi vs dense_i8_accum of each stream", one->level, mo, mw,
                sizeof(float) * (size_t)nk * n);
    free(mo), free(mw), free(mx);
  }
  if (k->dense_i8_accum && s->ngroups > 1) { /* the first groups of a wider row (gstride) */
    nnet_dense_i8_from_blocks(s->wq, rows4, s->ngroups, s->ngroups, dense);
    memcpy(out, out0, sizeof(float) * n);
    memcpy(want, out0, sizeof(float) * n);
    k->dense_i8_accum(out, dense, rows4, s->ngroups - 1, s->ngroups, xq, NNET_I8_SCALE);
    ref->dense_i8_accum(want, dense, rows4, s->ngroups - 1, s->ngroups, xq, NNET_I8_SCALE);
    check_tol("dense_i8_accum (gstride)", k->level, out, want, tol, n);
  }
  free(out), free(want), free(out0), free(blocks), free(tol), free(dense);
}

/* sgemm_accum of n vectors: each bit-identical to the same table's sgemv_accum. */
static void test_sgemm(const NNetKernels *k, const float *w, int rows, int cols, int n) {
  const int ldx = rows + 3, ldo = cols + 5;
  float *x = xmalloc(sizeof(float) * (size_t)n * ldx), *out = xmalloc(sizeof(float) * (size_t)n * ldo);
  float *want = xmalloc(sizeof(float) * (size_t)n * ldo);
  int v;
  fill(x, (long)n * ldx, -1, 1);
  fill(out, (long)n * ldo, -1, 1);
  memcpy(want, out, sizeof(float) * (size_t)n * ldo);
  k->sgemm_accum(out, ldo, w, rows, cols, x, ldx, n);
  for (v = 0; v < n; v++) k->sgemv_accum(want + (size_t)v * ldo, w, rows, cols, x + (size_t)v * ldx);
  check_exact("sgemm_accum vs sgemv_accum of each vector", k->level, out, want,
              sizeof(float) * (size_t)n * ldo);
  free(x), free(out), free(want);
}

/* sparse_i8_accum_multi of k streams (expanded states, per-stream or shared bias, padded list
 * too): stream s bit-identical to the same table's sparse_i8_accum on stream s. */
static void test_sparse_int8_multi(const NNetKernels *k, const Sparse *s, const float *bias, int nk) {
  const int n = NNET_BLOCK_COLS * s->ngroups, ldo = n + 8, kp = nnet_xe_streams(nk);
  const long padded = nnet_padded_blocks(s->idx, s->ngroups);
  uint8_t *q = xmalloc((size_t)nk * s->rows), *xe = xmalloc((size_t)kp * s->rows / 4 * NNET_XE_BYTES);
  float *out = xmalloc(sizeof(float) * (size_t)nk * ldo), *want = xmalloc(sizeof(float) * (size_t)nk * ldo);
  float *bias_s = xmalloc(sizeof(float) * (size_t)nk * ldo);
  int32_t *pidx = xmalloc(sizeof(int32_t) * (size_t)(padded + s->ngroups));
  int8_t *pwq = xmalloc((size_t)NNET_BLOCK_SIZE * padded);
  int i, st, mode;
  const NNetKernels *one = k->sparse_i8_accum_multi ? k : ref; /* the table whose multi runs */
  for (i = 0; i < nk * s->rows; i++) q[i] = (uint8_t)irand(255);
  for (st = 0; st < nk; st++) nnet_expand_u8(xe, q + (size_t)st * s->rows, s->rows, st, nk);
  /* the layout: stream st's row quad r is its 4 bytes, 8 times */
  for (i = 0; i < kp * s->rows / 4 * NNET_XE_BYTES; i++) {
    const int slot = i / NNET_XE_BYTES, r = slot / kp, sst = slot % kp;
    const uint8_t v = sst < nk ? q[(size_t)sst * s->rows + 4 * r + i % 4] : 0;
    if (xe[i] != v) {
      fail("nnet_expand_u8: byte %d is %d, expected %d", i, xe[i], v);
      break;
    }
  }
  checks++;
  fill(bias_s, (long)nk * ldo, -1, 1);
  nnet_pad_even_i8(s->idx, s->wq, s->ngroups, pidx, pwq);
  for (mode = 0; mode < 3; mode++) { /* shared bias, per-stream bias, no bias (accumulate) */
    const int ldb = mode == 1 ? ldo : 0;
    const float *b = mode == 0 ? bias : (mode == 1 ? bias_s : NULL);
    const int use_pad = mode == 1 && k->sparse_i8_accum_even;
    fill(out, (long)nk * ldo, -1, 1);
    memcpy(want, out, sizeof(float) * (size_t)nk * ldo);
    one->sparse_i8_accum_multi(out, ldo, b, ldb, use_pad ? pwq : s->wq, use_pad ? pidx : s->idx,
                               s->ngroups, xe, nk, NNET_I8_SCALE);
    for (st = 0; st < nk; st++)
      one->sparse_i8_accum(want + (size_t)st * ldo, b ? b + (size_t)st * ldb : NULL, s->wq, s->idx,
                           s->ngroups, q + (size_t)st * s->rows, NNET_I8_SCALE);
    for (st = 0; st < nk; st++) /* only each stream's n outputs are written */
      memcpy(out + (size_t)st * ldo + n, want + (size_t)st * ldo + n, sizeof(float) * (ldo - n));
    check_exact("sparse_i8_accum_multi vs sparse_i8_accum of each stream", one->level, out, want,
                sizeof(float) * (size_t)nk * ldo);
  }
  free(q), free(xe), free(out), free(want), free(bias_s), free(pidx), free(pwq);
}

static void test_activations(const NNetKernels *k, const float *x, int n) {
  float *y = xmalloc(sizeof(float) * n), *want = xmalloc(sizeof(float) * n);
  k->vec_sigmoid(y, x, n);
  ref->vec_sigmoid(want, x, n);
  check_act("vec_sigmoid", k->level, y, want, n, ACT_TOL);
  k->vec_tanh(y, x, n);
  ref->vec_tanh(want, x, n);
  check_act("vec_tanh", k->level, y, want, n, ACT_TOL);
  free(y), free(want);
}

static void test_quantize(const NNetKernels *k, const float *x, int n) {
  uint8_t *q = xmalloc(n), *want = xmalloc(n);
  k->quantize_u8(q, x, n);
  ref->quantize_u8(want, x, n);
  check_exact("quantize_u8", k->level, q, want, n);
  free(q), free(want);
}

/* Inputs of one GRU update of n units (gru_update's arguments). */
typedef struct {
  int n;
  float *h0, *in, *in2, *in3, *in4, *rec, *diag;
} GruCase;

/* Pre-activation sums of up to 5 terms of magnitude <= ~3 are reordered / fused (<= ~1e-6),
 * seen through slopes <= 1, on top of ACT_TOL: 4e-6 (observed: 3e-7). */
#define GRU_TOL 4e-6
/* The spline reference vs the exact update: the fit errors, 2.2e-5 (z) + 4.3e-5 (candidate)
 * through h = z h + (1 - z) hh: 1.5e-4. A level's fast update vs the spline reference: the
 * slot promises the spline's accuracy, not its pieces (a level may use exact activations,
 * as AVX-512 does when n is not a multiple of 16, and a coordinate computed with FMA may
 * fall in the neighbouring piece): 1.5e-4 + GRU_TOL. */
#define GRU_FAST_EXACT_TOL 1.5e-4
#define GRU_FAST_TOL (GRU_FAST_EXACT_TOL + GRU_TOL)

static void test_gru_update(const NNetKernels *k, const GruCase *c) {
  const int n = c->n;
  float *h = xmalloc(sizeof(float) * n), *want = xmalloc(sizeof(float) * n);
  float *exact = xmalloc(sizeof(float) * n);
  uint8_t *q = xmalloc(n), *qh = xmalloc(n);
  memcpy(h, c->h0, sizeof(float) * n);
  memcpy(want, c->h0, sizeof(float) * n);
  k->gru_update(h, c->in, c->in2, c->in3, c->in4, c->rec, c->diag, n);
  ref->gru_update(want, c->in, c->in2, c->in3, c->in4, c->rec, c->diag, n);
  check_act("gru_update", k->level, h, want, n, GRU_TOL);
  memcpy(exact, want, sizeof(float) * n);
  if (k->gru_update_fast) {
    memcpy(want, c->h0, sizeof(float) * n);
    ref->gru_update_fast(want, c->in, c->in2, c->in3, c->in4, c->rec, c->diag, n, NULL);
    check_act("gru_update_fast reference vs exact update", k->level, want, exact, n, GRU_FAST_EXACT_TOL);
    memcpy(h, c->h0, sizeof(float) * n);
    k->gru_update_fast(h, c->in, c->in2, c->in3, c->in4, c->rec, c->diag, n, q);
    check_act("gru_update_fast", k->level, h, want, n, GRU_FAST_TOL);
    ref->quantize_u8(qh, h, n); /* q: the quantised new state, exactly */
    check_exact("gru_update_fast quantised state", k->level, q, qh, n);
  }
  free(h), free(want), free(exact), free(q), free(qh);
}

static GruCase random_gru_case(int n, int with_inputs, int with_diag) {
  GruCase c;
  c.n = n;
  c.h0 = xmalloc(sizeof(float) * n);
  c.in = xmalloc(sizeof(float) * 3 * n), c.rec = xmalloc(sizeof(float) * 3 * n);
  c.in2 = c.in3 = c.in4 = c.diag = NULL;
  fill(c.h0, n, -1, 1);
  fill(c.in, 3 * n, -2, 2);
  fill(c.rec, 3 * n, -2, 2);
  if (with_inputs) {
    c.in2 = xmalloc(sizeof(float) * 3 * n), c.in3 = xmalloc(sizeof(float) * 3 * n);
    c.in4 = xmalloc(sizeof(float) * 3 * n);
    fill(c.in2, 3 * n, -1, 1), fill(c.in3, 3 * n, -1, 1), fill(c.in4, 3 * n, -1, 1);
  }
  if (with_diag) c.diag = xmalloc(sizeof(float) * 3 * n), fill(c.diag, 3 * n, -0.5, 0.5);
  return c;
}

static void free_gru_case(GruCase *c) {
  free(c->h0), free(c->in), free(c->in2), free(c->in3), free(c->in4), free(c->rec), free(c->diag);
}

/* Dual FC: w (256, 2, n), b and f (256, 2). */
typedef struct {
  int n;
  const float *w, *b, *f;
} DualFc;

/* Each output sums two tanh of n-term sums, scaled by f: tanh's slope is <= 1. */
static void test_mdense(const NNetKernels *k, const DualFc *d, const float *v) {
  int units[4], count, j, i, c;
  float out[4], want[4];
  double tol[4];
  for (count = 1; count <= 4; count++) {
    for (j = 0; j < count; j++) units[j] = irand(256);
    k->mdense_units(d->w, d->b, d->f, v, d->n, units, count, out);
    ref->mdense_units(d->w, d->b, d->f, v, d->n, units, count, want);
    for (j = 0; j < count; j++) {
      const int u = units[j];
      double s = fabs(d->b[2 * u]) + fabs(d->b[2 * u + 1]);
      for (c = 0; c < 2; c++)
        for (i = 0; i < d->n; i++) s += fabs((double)v[i] * d->w[((size_t)u * 2 + c) * d->n + i]);
      tol[j] = (fabs(d->f[2 * u]) + fabs(d->f[2 * u + 1])) * (ACT_TOL + (d->n + 1) * FLT_EPSILON * s);
    }
    check_tol("mdense_units", k->level, out, want, tol, count);
  }
}

/* Pre-sigmoid value of tree node u (reference arithmetic). */
static float node_value(const DualFc *d, const float *v, int u) {
  float x;
  ref->mdense_units(d->w, d->b, d->f, v, d->n, &u, 1, &x);
  return x;
}

/* Near-ties: where a level and the reference take different branches, the node at which
 * they part must hold gain * x within 1e-5 of its threshold (x's own error is ~1e-6); at
 * most 1 % of the draws may part. The reference must follow node_value() exactly. */
static void test_tree4(const NNetKernels *k, const DualFc *d, const float *tables, const float *v,
                       int draws) {
  int t, parted = 0;
  for (t = 0; t < draws; t++) {
    const int s = irand(NNET_TREE_TABLES), root = s == 0 ? 1 : 16 + (s - 1);
    const float gain = t % 2 ? 1.f : (float)urand(1, 2);
    float thr[4];
    int got, want, level, h = 1;
    for (level = 0; level < 4; level++) thr[level] = t % 5 == 0 ? 0.f : (float)urand(-3.7, 3.7);
    want = ref->tree4(tables + (size_t)s * NNET_TREE_STRIDE, v, gain, thr);
    for (level = 0; level < 4; level++) { /* the same walk through node_value() */
      const int u = (root << level) + (h - (1 << level));
      h = 2 * h + (gain * node_value(d, v, u) > thr[level]);
    }
    checks++;
    if (h - 16 != want) fail("tree4 reference: bits %d, node by node %d", want, h - 16);
    if (!k->tree4) continue;
    got = k->tree4(tables + (size_t)s * NNET_TREE_STRIDE, v, gain, thr);
    if (got == want) continue;
    for (h = 1, level = 0; level < 4; level++) {
      const int bit = (want >> (3 - level)) & 1, u = (root << level) + (h - (1 << level));
      if (((got >> (3 - level)) & 1) != bit) {
        parted++;
        if (fabs(gain * node_value(d, v, u) - thr[level]) > 1e-5)
          fail("tree4 (level %d): bits %d, reference %d, not at a tie", k->level, got, want);
        break;
      }
      h = 2 * h + bit;
    }
  }
  if (parted * 100 > draws) fail("tree4 (level %d): %d of %d draws parted", k->level, parted, draws);
}

/* --- training GRU kernels (gru_kernels.h) -------------------------------------------------- */
static const GruKernels *gref = &gru_kernels_ref;

/* X (nb x K, row stride K + 3) times U (K x N) packed in panels, with and without bias. */
static void test_gru_matmul(const GruKernels *k, int nb, int K, int N, const float *U,
                            const float *X, const float *bias) {
  const int Np = (N + PANEL - 1) / PANEL * PANEL, ldx = K + 3;
  float *P = xmalloc(sizeof(float) * (size_t)K * Np), *Y = xmalloc(sizeof(float) * (size_t)nb * Np);
  float *want = xmalloc(sizeof(float) * (size_t)nb * Np);
  uint32_t *P16 = xmalloc(sizeof(uint32_t) * (size_t)(K + 1) / 2 * Np);
  uint32_t *X16 = xmalloc(sizeof(uint32_t) * (size_t)nb * ((K + 1) / 2));
  double *sum = xmalloc(sizeof(double) * (size_t)nb * Np), *tol = xmalloc(sizeof(double) * (size_t)nb * Np);
  int b, j, kk;
  for (b = 0; b < nb; b++)
    for (j = 0; j < Np; j++)
      for (sum[b * Np + j] = bias ? fabs(bias[j]) : 0, kk = 0; kk < K && j < N; kk++)
        sum[b * Np + j] += fabs((double)X[b * ldx + kk] * U[kk * N + j]);
  gru_pack_panels(U, (size_t)N, 1, K, N, P);
  k->matmul(nb, K, Np, X, ldx, P, bias, Y, Np);
  gref->matmul(nb, K, Np, X, ldx, P, bias, want, Np);
  sum_tol(tol, NULL, sum, (long)nb * Np, K);
  check_tol("gru matmul", k->level, Y, want, tol, (long)nb * Np);
  if (k->matmul_bf16) { /* the products of two bfloat16 values are exact in float32 */
    gru_pack_panels_bf16(U, (size_t)N, 1, K, N, P16);
    for (b = 0; b < nb; b++)
      for (kk = 0; kk < (K + 1) / 2; kk++)
        X16[b * ((K + 1) / 2) + kk] = gru_to_bf16(X[b * ldx + 2 * kk]) |
                                     (2 * kk + 1 < K ? (uint32_t)gru_to_bf16(X[b * ldx + 2 * kk + 1]) << 16 : 0);
    k->matmul_bf16(nb, (K + 1) / 2, Np, X16, P16, bias, Y, Np);
    gref->matmul_bf16(nb, (K + 1) / 2, Np, X16, P16, bias, want, Np);
    sum_tol(tol, NULL, sum, (long)nb * Np, K + 1); /* (sum of the bf16-rounded terms: +1 %) */
    for (j = 0; j < nb * Np; j++) tol[j] *= 1.01;
    check_tol("gru matmul_bf16", k->level, Y, want, tol, (long)nb * Np);
  }
  free(P), free(Y), free(want), free(P16), free(X16), free(sum), free(tol);
}

/* Gates of one step: xp, hr (3H), hprev (H) -> h (H), cache (4H); backward from dh (H).
 * Forward: the reference uses libm's expf / tanhf, the levels the exp polynomial
 * (check_act). Backward: products of cached values, |values| <= |dh| (1 + |hprev| + |hn|);
 * a few roundings differ (FMA, and 1 - n^2 fused): 8 FLT_EPSILON of that. */
static void test_gru_gates(const GruKernels *k, int H, const float *xp, const float *hr,
                           const float *hprev, const float *dh) {
  float *h = xmalloc(sizeof(float) * H), *cache = xmalloc(sizeof(float) * 4 * H);
  float *hw = xmalloc(sizeof(float) * H), *cw = xmalloc(sizeof(float) * 4 * H);
  float *g = xmalloc(sizeof(float) * 8 * H), *gw = xmalloc(sizeof(float) * 8 * H);
  double *tol = xmalloc(sizeof(double) * 8 * H);
  int i;
  k->fwd_gates(H, xp, hr, hprev, h, cache);
  gref->fwd_gates(H, xp, hr, hprev, hw, cw);
  check_act("gru fwd_gates state", k->level, h, hw, H, ACT_TOL);
  check_act("gru fwd_gates cache", k->level, cache, cw, 3 * H, ACT_TOL);
  check_exact("gru fwd_gates cache hr_n", k->level, cache + 3 * H, cw + 3 * H, sizeof(float) * H);
  /* both backward passes from the reference's cache; g = [dxp 3H, dhn H, dhr 3H, dhz H] */
  k->bwd_gates(H, dh, hprev, cw, g, g + 3 * H, g + 4 * H, g + 7 * H);
  gref->bwd_gates(H, dh, hprev, cw, gw, gw + 3 * H, gw + 4 * H, gw + 7 * H);
  for (i = 0; i < 8 * H; i++) {
    const int u = i % H; /* unit of entry i in every block of H */
    tol[i] = 8 * FLT_EPSILON * (fabs(gw[i]) + fabs(dh[u]) * (1 + fabs(hprev[u]) + fabs(cw[3 * H + u])));
  }
  check_tol("gru bwd_gates", k->level, g, gw, tol, 8 * H);
  free(h), free(cache), free(hw), free(cw), free(g), free(gw), free(tol);
}

/* --- pitch correlation (xcorr.h): bit-identical at every level ------------------------------ */
static void test_xcorr(const XcorrKernels *k, const float *x, const float *y, int len, int max_lag) {
  float *c = xmalloc(sizeof(float) * max_lag), *e = xmalloc(sizeof(float) * max_lag);
  float *cw = xmalloc(sizeof(float) * max_lag), *ew = xmalloc(sizeof(float) * max_lag);
  k->xcorr_energy(x, y, c, e, len, max_lag);
  xcorr_kernels_c.xcorr_energy(x, y, cw, ew, len, max_lag);
  check_exact("xcorr_energy xcorr", k->level, c, cw, sizeof(float) * max_lag);
  check_exact("xcorr_energy energy", k->level, e, ew, sizeof(float) * max_lag);
  free(c), free(e), free(cw), free(ew);
}

/* --- random inputs -------------------------------------------------------------------------- */
static void random_nnet(const NNetKernels *k) {
  static const int sizes[][2] = {{1, 8}, {7, 13}, {16, 48}, {33, 384}, {128, 1152}, {40, 21}};
  static const int act_n[] = {1, 7, 8, 15, 16, 17, 37, 256};
  static const int gru_n[] = {8, 16, 24, 37, 48, 384};
  size_t i;
  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    const int rows = sizes[i][0], cols = sizes[i][1];
    float *w = xmalloc(sizeof(float) * rows * cols), *x = xmalloc(sizeof(float) * rows);
    fill(w, (long)rows * cols, -1, 1), fill(x, rows, -1, 1);
    test_sgemv(k, w, rows, cols, x);
    test_sgemm(k, w, rows, cols, 1 + (int)i * 3); /* 1, 4, 7, 10, 13, 16 vectors */
    free(w), free(x);
  }
  for (i = 0; i < 6; i++) { /* block-sparse: rows (multiple of 4) x 8 ngroups */
    const int rows = 4 * (1 + irand(40)), ngroups = 1 + irand(12), dense = i >= 4;
    Sparse s = random_sparse(rows, ngroups, dense);
    float *x = xmalloc(sizeof(float) * rows), *bias = xmalloc(sizeof(float) * 8 * ngroups);
    uint8_t *xq = xmalloc(rows);
    int r;
    fill(x, rows, -1, 1), fill(bias, 8 * ngroups, -1, 1);
    for (r = 0; r < rows; r++) xq[r] = (uint8_t)irand(255);
    test_sparse_float(k, &s, i % 2 ? bias : NULL, x);
    test_sparse_int8(k, &s, i % 2 ? bias : NULL, xq);
    test_sparse_int8_multi(k, &s, bias, 1 + (int)i * 3); /* 1, 4, 7, 10, 13, 16 streams */
    if (i == 2) test_sparse_int8_multi(k, &s, bias, 21); /* more than one pass of 16 */
    if (dense) test_dense_int8(k, &s, xq);
    free_sparse(&s), free(x), free(bias), free(xq);
  }
  { /* GRU B's input product shape (48 outputs: a special path) and others, dense */
    static const int shapes[][2] = {{384, 6}, {44, 6}, {64, 3}, {36, 5}, {12, 1}, {256, 96}, {96, 27}};
    for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
      Sparse s = random_sparse(shapes[i][0], shapes[i][1], 1);
      uint8_t *xq = xmalloc(shapes[i][0]);
      int r;
      for (r = 0; r < shapes[i][0]; r++) xq[r] = (uint8_t)irand(255);
      test_dense_int8(k, &s, xq);
      free_sparse(&s), free(xq);
    }
  }
  for (i = 0; i < sizeof act_n / sizeof act_n[0]; i++) {
    const int n = act_n[i];
    float *x = xmalloc(sizeof(float) * n);
    fill(x, n, -12, 12);
    if (n > 4) x[0] = 0.f, x[1] = 100.f, x[2] = -100.f, x[3] = 1e-8f;
    test_activations(k, x, n);
    fill(x, n, -1.2, 1.2);
    test_quantize(k, x, n);
    free(x);
  }
  for (i = 0; i < sizeof gru_n / sizeof gru_n[0]; i++) {
    int mode;
    for (mode = 0; mode < 4; mode++) {
      GruCase c = random_gru_case(gru_n[i], mode & 1, mode & 2);
      test_gru_update(k, &c);
      free_gru_case(&c);
    }
  }
}

static void random_dual_fc(int n) {
  float *w = xmalloc(sizeof(float) * 256 * 2 * n), *b = xmalloc(sizeof(float) * 512);
  float *f = xmalloc(sizeof(float) * 512), *v = xmalloc(sizeof(float) * n);
  float *tables = NULL;
  DualFc d;
  int level;
  fill(w, 256L * 2 * n, -0.5, 0.5), fill(b, 512, -1, 1), fill(f, 512, -2, 2);
  d.n = n, d.w = w, d.b = b, d.f = f;
  if (n == 16) {
    tables = xmalloc_aligned(NNET_TREE_TABLES * NNET_TREE_STRIDE);
    nnet_tree4_tables(w, b, f, tables);
  }
  for (level = 0; level <= simd_cpu_level(); level++) {
    const NNetKernels *k = nnet_select(level);
    int t;
    if (k->level != level) continue;
    for (t = 0; t < 20; t++) {
      fill(v, n, -1, 1);
      test_mdense(k, &d, v);
      if (tables) test_tree4(k, &d, tables, v, 50);
    }
  }
  free(w), free(b), free(f), free(v), free(tables);
}

/* Row sums and scatter-adds of the input parts: the same additions in the same order as the
 * reference, so bit-identical. bfloat16 rows: identical for normal floats (the SIMD level
 * flushes denormals, none here). */
static void test_gru_rows(const GruKernels *k, int n) {
  float *src = xmalloc(sizeof(float) * 4 * n), *got = xmalloc(sizeof(float) * 3 * n);
  float *want = xmalloc(sizeof(float) * 3 * n);
  uint32_t *b16 = xmalloc(sizeof(uint32_t) * 3 * (n + 1)), *w16 = xmalloc(sizeof(uint32_t) * 3 * (n + 1));
  const float *rows[4];
  float *dst[2], *wdst[2];
  int i;
  fill(src, 4L * n, -2, 2), fill(got, 3L * n, -1, 1);
  memcpy(want, got, sizeof(float) * 3 * n);
  for (i = 0; i < 4; i++) rows[i] = src + (size_t)i * n;
  k->sum_rows(n, 4, rows, got + n);
  gref->sum_rows(n, 4, rows, want + n);
  check_exact("gru sum_rows", k->level, got + n, want + n, sizeof(float) * n);
  dst[0] = got, dst[1] = got + 2 * n, wdst[0] = want, wdst[1] = want + 2 * n;
  k->add_to_rows(n, src, 2, dst);
  gref->add_to_rows(n, src, 2, wdst);
  check_exact("gru add_to_rows", k->level, got, want, sizeof(float) * 3 * n);
  if (k->to_bf16) { /* 3 rows of n floats, row stride n + 1 */
    k->to_bf16(3, n, src, (size_t)n + 1, b16);
    gref->to_bf16(3, n, src, (size_t)n + 1, w16);
    check_exact("gru to_bf16", k->level, b16, w16, sizeof(uint32_t) * 3 * (size_t)((n + 1) / 2));
  }
  free(src), free(got), free(want), free(b16), free(w16);
}

/* Gaussian noise: the same stream at every level; the draws differ by the log / sincos
 * polynomials and by the reference's float32 angle 2 pi u2 (|error| <= 5e-7 rad, times r <= 6
 * stddev): 1e-5 stddev. A wrong pair or lane is off by ~1 stddev. Moments of 2^16 draws. */
static void test_gru_noise(const GruKernels *k, size_t n) {
  float *got = xmalloc(sizeof(float) * n), *want = xmalloc(sizeof(float) * n);
  double m1 = 0, m2 = 0, m4 = 0;
  size_t i;
  k->normal_fill(got, n, 0x1234567890ABCDEFull, 0.5f);
  gref->normal_fill(want, n, 0x1234567890ABCDEFull, 0.5f);
  check_act("gru normal_fill", k->level, got, want, (long)n, 0.5 * 1e-5);
  for (i = 0; i < n; i++) m1 += got[i], m2 += (double)got[i] * got[i], m4 += pow(got[i], 4);
  m1 /= n, m2 /= n, m4 /= n;
  checks++;
  if (n >= 65536 && (fabs(m1) > 0.02 || fabs(sqrt(m2) - 0.5) > 0.01 || fabs(m4 / (m2 * m2) - 3) > 0.1))
    fail("gru normal_fill (level %d): mean %g, std %g, kurtosis %g of N(0, 0.25)", k->level, m1,
         sqrt(m2), m4 / (m2 * m2));
  free(got), free(want);
}

/* Dual FC of the output head: forward of one sample (tanh / sigmoid polynomials vs libm,
 * ACT_TOL), backward of a block of nb samples (sums of nb or U C products) from the reference's
 * t and q. */
static void test_gru_head(const GruKernels *k, int nb, int D, int U, int C) {
  const int cu = C * U, nw = C * D * U + 2 * C * U;
  float *v = xmalloc(sizeof(float) * nb * D), *Kp = xmalloc(sizeof(float) * C * D * U);
  float *b = xmalloc(sizeof(float) * cu), *f = xmalloc(sizeof(float) * cu);
  float *t = xmalloc(sizeof(float) * nb * cu), *q = xmalloc(sizeof(float) * nb * U);
  float *tw = xmalloc(sizeof(float) * cu), *qw = xmalloc(sizeof(float) * U);
  float *dq = xmalloc(sizeof(float) * nb * U), *dv = xmalloc(sizeof(float) * nb * D);
  float *dvw = xmalloc(sizeof(float) * nb * D), *da = xmalloc(sizeof(float) * nb * cu);
  float *g = xmalloc(sizeof(float) * nw), *gw = xmalloc(sizeof(float) * nw);
  double *tol = xmalloc(sizeof(double) * (nw + nb * D));
  int i;
  fill(v, (long)nb * D, -1, 1), fill(Kp, (long)C * D * U, -0.5, 0.5), fill(b, cu, -1, 1), fill(f, cu, -2, 2);
  fill(dq, (long)nb * U, -1, 1), fill(g, nw, -0.1, 0.1);
  memcpy(gw, g, sizeof(float) * nw);
  for (i = 0; i < nb; i++) gref->head_fwd(D, U, C, v + i * D, Kp, b, f, t + i * cu, q + i * U);
  k->head_fwd(D, U, C, v, Kp, b, f, tw, qw);
  check_act("gru head_fwd tanh", k->level, tw, t, cu, ACT_TOL + D * FLT_EPSILON * D);
  check_act("gru head_fwd q", k->level, qw, q, U, ACT_TOL * (C + 1) * 3);
  k->head_bwd(nb, D, U, C, v, Kp, f, t, q, dq, dv, g, g + C * D * U, g + C * D * U + cu, da);
  gref->head_bwd(nb, D, U, C, v, Kp, f, t, q, dq, dvw, gw, gw + C * D * U, gw + C * D * U + cu, da);
  for (i = 0; i < nw; i++) tol[i] = (nb + 8) * FLT_EPSILON * (fabs(gw[i]) + nb);
  check_tol("gru head_bwd weights", k->level, g, gw, tol, nw);
  for (i = 0; i < nb * D; i++) tol[i] = (U * C + 8) * FLT_EPSILON * 2.0;
  check_tol("gru head_bwd dv", k->level, dv, dvw, tol, (long)nb * D);
  free(v), free(Kp), free(b), free(f), free(t), free(q), free(tw), free(qw), free(dq), free(dv), free(dvw);
  free(da), free(g), free(gw), free(tol);
}

static void random_gru(const GruKernels *k) {
  static const int mm[][3] = {{1, 1, 3}, {3, 16, 48}, {16, 37, 111}, {17, 48, 16}, {35, 111, 37}};
  static const int gates[] = {1, 15, 16, 37, 48};
  size_t i;
  for (i = 0; i < sizeof mm / sizeof mm[0]; i++) {
    const int nb = mm[i][0], K = mm[i][1], N = mm[i][2];
    float *U = xmalloc(sizeof(float) * K * N), *X = xmalloc(sizeof(float) * nb * (K + 3));
    float *bias = xmalloc(sizeof(float) * (N + PANEL));
    fill(U, (long)K * N, -0.5, 0.5), fill(X, (long)nb * (K + 3), -1, 1), fill(bias, N + PANEL, -1, 1);
    test_gru_matmul(k, nb, K, N, U, X, i % 2 ? bias : NULL);
    free(U), free(X), free(bias);
  }
  for (i = 0; i < sizeof gates / sizeof gates[0]; i++) {
    const int H = gates[i];
    float *xp = xmalloc(sizeof(float) * 3 * H), *hr = xmalloc(sizeof(float) * 3 * H);
    float *hp = xmalloc(sizeof(float) * H), *dh = xmalloc(sizeof(float) * H);
    fill(xp, 3 * H, -3, 3), fill(hr, 3 * H, -3, 3), fill(hp, H, -1, 1), fill(dh, H, -1, 1);
    test_gru_gates(k, H, xp, hr, hp, dh);
    free(xp), free(hr), free(hp), free(dh);
  }
  for (i = 0; i < sizeof gates / sizeof gates[0]; i++) test_gru_rows(k, 3 * gates[i]);
  test_gru_noise(k, 65536 + 7);
  test_gru_noise(k, 5);
  if (k->level > 0) { /* the SIMD head needs U a multiple of 16 */
    test_gru_head(k, 16, 16, 256, 2);
    test_gru_head(k, 3, 5, 32, 3);
  }
}

static void random_xcorr(const XcorrKernels *k) {
  static const int lags[] = {256, 255, 37, 5, 1};
  float x[80], y[416];
  size_t i;
  fill(y, 416, -1000, 1000);
  memcpy(x, y + 256, sizeof x);
  for (i = 0; i < sizeof lags / sizeof lags[0]; i++) test_xcorr(k, x, y, 80, lags[i]);
}

/* --- real inputs ------------------------------------------------------------------------------ */
typedef struct {
  float *pcm; /* speech samples at int16 scale */
  long n;
} Speech;

static Speech read_speech(const char *path) {
  Speech sp = {NULL, 0};
  FILE *f = fopen(path, "rb");
  long i;
  if (!f) {
    fprintf(stderr, "test_kernels: cannot open %s\n", path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  sp.n = ftell(f) / 2;
  rewind(f);
  sp.pcm = xmalloc(sizeof(float) * (size_t)sp.n);
  for (i = 0; i < sp.n; i++) {
    int16_t v;
    if (fread(&v, 2, 1, f) != 1) break;
    sp.pcm[i] = v;
  }
  fclose(f);
  if (sp.n < 4000) {
    fprintf(stderr, "test_kernels: %s: expected at least 4000 int16 samples of speech\n", path);
    exit(2);
  }
  return sp;
}

/* Exact mu-law code of a sample (docs/formats.md). */
static int ulaw(float x) {
  double u = 128.0 * log1p(fabs(x) * 255.0 / LPCNET_ULAW_FULL_SCALE) / log(256.0);
  double r = 128.0 + nearbyint(x < 0 ? -u : u);
  return r < 0 ? 0 : (r > 255 ? 255 : (int)r);
}

/* n states in (-1, 1) from consecutive speech samples (as a GRU state follows the signal). */
static void speech_states(const Speech *sp, long at, float *h, int n) {
  int i;
  for (i = 0; i < n; i++) h[i] = (float)tanh(sp->pcm[(at + i) % sp->n] / 4096.0);
}

static void real_xcorr(const XcorrKernels *k, const Speech *sp) {
  long at;
  for (at = 0; at + 416 <= sp->n; at += 4001) /* the pitch analysis' shapes: 80 x 256 lags */
    test_xcorr(k, sp->pcm + at + 256, sp->pcm + at, 80, 256);
}

/* A blob's tensors needed below (NULL where absent: int8 copies of a float-only blob). */
typedef struct {
  int na, nb, cond;
  const float *embed, *cond_w, *cond_b, *rbias, *diag, *gb_rec_w, *gb_rbias, *gb_cond_w;
  Sparse ga, gb;
  DualFc fc;
} Weights;

static Sparse blob_sparse(Blob *b, const char *iname, const char *wname, const char *qname,
                          int rows, int cols) {
  Sparse s;
  long nidx, nw;
  s.rows = rows, s.ngroups = cols / NNET_BLOCK_COLS;
  s.idx = (int32_t *)blob_find(b, iname, BLOB_I32, 1, D1(-1), &nidx, 0);
  s.w = (float *)blob_find(b, wname, BLOB_F32, 3, D3(-1, NNET_BLOCK_ROWS, NNET_BLOCK_COLS), &nw, 0);
  s.nblocks = nw / NNET_BLOCK_SIZE;
  s.wq = (int8_t *)blob_find(b, qname, BLOB_I8, 3, D3(s.nblocks, NNET_BLOCK_COLS, NNET_BLOCK_ROWS), NULL, 1);
  if (!b->failed && blob_check_idx(s.idx, nidx, s.ngroups, rows, s.nblocks))
    blob_fail(b, "%s: inconsistent block list", iname);
  return s;
}

static int read_weights(const unsigned char *raw, size_t len, Weights *w) {
  char err[256] = "";
  Blob b;
  if (blob_check(raw, len, err, sizeof err) || blob_open(&b, raw, len, err, sizeof err)) {
    fprintf(stderr, "test_kernels: %s\n", err);
    return -1;
  }
  w->na = (int)blob_u32(raw + 16), w->nb = (int)blob_u32(raw + 20), w->cond = (int)blob_u32(raw + 24);
  w->embed = blob_find(&b, "gru_a_embed", BLOB_F32, 3, D3(3, 256, 3 * w->na), NULL, 0);
  w->cond_w = blob_find(&b, "gru_a_cond_w", BLOB_F32, 2, D2(w->cond, 3 * w->na), NULL, 0);
  w->cond_b = blob_find(&b, "gru_a_cond_b", BLOB_F32, 1, D1(3 * w->na), NULL, 0);
  w->rbias = blob_find(&b, "gru_a_rbias", BLOB_F32, 1, D1(3 * w->na), NULL, 0);
  w->diag = blob_find(&b, "gru_a_diag", BLOB_F32, 2, D2(3, w->na), NULL, 0);
  w->gb_rec_w = blob_find(&b, "gru_b_rec_w", BLOB_F32, 2, D2(w->nb, 3 * w->nb), NULL, 0);
  w->gb_rbias = blob_find(&b, "gru_b_rbias", BLOB_F32, 1, D1(3 * w->nb), NULL, 0);
  w->gb_cond_w = blob_find(&b, "gru_b_cond_w", BLOB_F32, 2, D2(w->cond, 3 * w->nb), NULL, 0);
  w->ga = blob_sparse(&b, "gru_a_rec_idx", "gru_a_rec_w", "gru_a_rec_wq", w->na, 3 * w->na);
  w->gb = blob_sparse(&b, "gru_b_in_idx", "gru_b_in_w", "gru_b_in_wq", w->na, 3 * w->nb);
  w->fc.n = w->nb;
  w->fc.w = blob_find(&b, "md_w", BLOB_F32, 3, D3(256, 2, w->nb), NULL, 0);
  w->fc.b = blob_find(&b, "md_b", BLOB_F32, 2, D2(256, 2), NULL, 0);
  w->fc.f = blob_find(&b, "md_f", BLOB_F32, 2, D2(256, 2), NULL, 0);
  if (b.failed) fprintf(stderr, "test_kernels: %s\n", err);
  return b.failed ? -1 : 0;
}

/* One decoder sample's worth of kernel calls on the blob's weights, with states and codes
 * taken from the speech at sample `at`; each level's inputs are the reference's outputs. */
static void real_nnet_sample(const NNetKernels *k, const Weights *w, const Speech *sp, long at,
                             const float *tables) {
  const int na = w->na, nb = w->nb;
  float *ha = xmalloc(sizeof(float) * na), *hb = xmalloc(sizeof(float) * nb);
  float *cfeat = xmalloc(sizeof(float) * w->cond), *cond_a = xmalloc(sizeof(float) * 3 * na);
  float *rec_a = xmalloc(sizeof(float) * 3 * na), *rec_b = xmalloc(sizeof(float) * 3 * nb);
  float *in_b = xmalloc(sizeof(float) * 3 * nb);
  uint8_t *hq = xmalloc(na);
  const float *s = sp->pcm;
  const long t = 1 + at % (sp->n - 2);
  GruCase c;
  speech_states(sp, at, ha, na);
  speech_states(sp, at + 5, hb, nb);
  speech_states(sp, at + 11, cfeat, w->cond);
  ref->quantize_u8(hq, ha, na);
  test_sgemv(k, w->cond_w, w->cond, 3 * na, cfeat);
  memcpy(cond_a, w->cond_b, sizeof(float) * 3 * na);
  ref->sgemv_accum(cond_a, w->cond_w, w->cond, 3 * na, cfeat);
  test_sparse_float(k, &w->ga, w->rbias, ha);
  ref->sparse_sgemv_accum(rec_a, w->rbias, w->ga.w, w->ga.idx, w->ga.ngroups, ha);
  test_sparse_float(k, &w->gb, NULL, ha);
  if (w->ga.wq) test_sparse_int8(k, &w->ga, w->rbias, hq);
  if (w->ga.wq) test_sparse_int8_multi(k, &w->ga, w->rbias, 8);
  if (w->ga.wq && nnet_blocks_are_dense(w->ga.idx, na, w->ga.ngroups)) test_dense_int8(k, &w->ga, hq);
  test_sgemm(k, w->cond_w, w->cond, 3 * na, 5);
  if (w->gb.wq) test_sparse_int8(k, &w->gb, NULL, hq);
  if (w->gb.wq && nnet_blocks_are_dense(w->gb.idx, na, w->gb.ngroups)) test_dense_int8(k, &w->gb, hq);
  test_activations(k, rec_a, 3 * na);
  /* GRU A: conditioning + the embedding rows of the signal, prediction and excitation codes */
  c.n = na, c.h0 = ha, c.in = cond_a, c.rec = rec_a, c.diag = (float *)w->diag;
  c.in2 = (float *)w->embed + (size_t)ulaw(s[t - 1]) * 3 * na;
  c.in3 = (float *)w->embed + ((size_t)256 + ulaw(s[t])) * 3 * na;
  c.in4 = (float *)w->embed + ((size_t)512 + ulaw(s[t] - s[t - 1])) * 3 * na;
  test_gru_update(k, &c);
  /* GRU B: recurrent product, then the update on the conditioning sums */
  test_sgemv(k, w->gb_rec_w, nb, 3 * nb, hb);
  memcpy(rec_b, w->gb_rbias, sizeof(float) * 3 * nb);
  ref->sgemv_accum(rec_b, w->gb_rec_w, nb, 3 * nb, hb);
  ref->sparse_sgemv_accum(in_b, NULL, w->gb.w, w->gb.idx, w->gb.ngroups, ha);
  c.n = nb, c.h0 = hb, c.in = in_b, c.rec = rec_b, c.diag = NULL, c.in2 = c.in3 = c.in4 = NULL;
  test_gru_update(k, &c);
  test_mdense(k, &w->fc, hb);
  if (tables) test_tree4(k, &w->fc, tables, hb, 20);
  free(ha), free(hb), free(cfeat), free(cond_a), free(rec_a), free(rec_b), free(in_b), free(hq);
}

/* The training GRU's kernels with GRU B's recurrent matrix as U and GRU A's sums as gates. */
static void real_gru(const GruKernels *k, const Weights *w, const Speech *sp, long at) {
  const int na = w->na, nb = w->nb, rows = 5, ldx = (w->cond > nb ? w->cond : nb) + 3;
  float *X = xmalloc(sizeof(float) * rows * ldx), *ha = xmalloc(sizeof(float) * na);
  float *rec_a = xmalloc(sizeof(float) * 3 * na), *dh = xmalloc(sizeof(float) * na);
  speech_states(sp, at, X, rows * ldx);
  speech_states(sp, at + 3, ha, na);
  speech_states(sp, at + 17, dh, na);
  test_gru_matmul(k, rows, nb, 3 * nb, w->gb_rec_w, X, w->gb_rbias);
  test_gru_matmul(k, rows, w->cond, 3 * nb, w->gb_cond_w, X, NULL);
  ref->sparse_sgemv_accum(rec_a, w->rbias, w->ga.w, w->ga.idx, w->ga.ngroups, ha);
  test_gru_gates(k, na, w->embed + (size_t)ulaw(sp->pcm[at % sp->n]) * 3 * na, rec_a, ha, dh);
  free(X), free(ha), free(rec_a), free(dh);
}

static void real_inputs(const Speech *sp, const Weights *w) {
  float *tables = NULL;
  int level, i;
  if (w && w->nb == 16) {
    tables = xmalloc_aligned(NNET_TREE_TABLES * NNET_TREE_STRIDE);
    nnet_tree4_tables(w->fc.w, w->fc.b, w->fc.f, tables);
  }
  for (level = 0; level <= simd_cpu_level(); level++) {
    const XcorrKernels *xk = xcorr_select(level);
    const NNetKernels *nk = nnet_select(level);
    const GruKernels *gk = gru_select(level);
    if (xk->level == level) real_xcorr(xk, sp);
    for (i = 0; w && i < 12; i++) {
      if (nk->level == level) real_nnet_sample(nk, w, sp, 1597L * i, tables);
      if (gk->level == level && i < 3) real_gru(gk, w, sp, 2999L * i);
    }
  }
  free(tables);
}

/* Every slot of the reference tables is set (designated initialisers leave gaps NULL). */
static void check_references_complete(void) {
  const void *const slots[] = {
      (const void *)ref->sgemv_accum, (const void *)ref->sgemm_accum,
      (const void *)ref->sparse_sgemv_accum, (const void *)ref->sparse_i8_accum,
      (const void *)ref->sparse_i8_accum_even, (const void *)ref->sparse_i8_accum_multi,
      (const void *)ref->dense_i8_accum_multi,
      (const void *)ref->dense_i8_accum, (const void *)ref->vec_sigmoid,
      (const void *)ref->vec_tanh, (const void *)ref->gru_update,
      (const void *)ref->gru_update_fast, (const void *)ref->quantize_u8,
      (const void *)ref->mdense_units, (const void *)ref->tree4,
      (const void *)gref->matmul, (const void *)gref->fwd_gates, (const void *)gref->bwd_gates,
      (const void *)gref->matmul_bf16, (const void *)xcorr_kernels_c.xcorr_energy};
  size_t i;
  for (i = 0; i < sizeof slots / sizeof slots[0]; i++, checks++)
    if (!slots[i]) fail("reference slot %u is NULL", (unsigned)i);
}

int main(int argc, char **argv) {
  const int cpu = simd_cpu_level();
  int level;
  Speech sp = {NULL, 0};
  Weights w;
  unsigned char *blob = NULL;
  check_references_complete();
  for (level = 0; level <= cpu; level++) {
    const XcorrKernels *xk = xcorr_select(level);
    const NNetKernels *nk = nnet_select(level);
    const GruKernels *gk = gru_select(level);
    if (level == 1) continue; /* unused level */
    printf("level %d: tables nnet %d, xcorr %d, gru %d (a lower table is tested at its level)\n",
           level, nk->level, xk->level, gk->level);
    if (xk->level == level) random_xcorr(xk);
    if (nk->level == level) random_nnet(nk);
    if (gk->level == level) random_gru(gk);
  }
  random_dual_fc(16);
  random_dual_fc(8);
  random_dual_fc(24);
  if (argc > 1) {
    sp = read_speech(argv[1]);
    if (argc > 2) {
      FILE *f = fopen(argv[2], "rb");
      long len;
      if (!f) {
        fprintf(stderr, "test_kernels: cannot open %s\n", argv[2]);
        return 2;
      }
      fseek(f, 0, SEEK_END);
      len = ftell(f);
      rewind(f);
      blob = xmalloc((size_t)len);
      if (fread(blob, 1, (size_t)len, f) != (size_t)len || read_weights(blob, (size_t)len, &w)) return 2;
      fclose(f);
    }
    real_inputs(&sp, blob ? &w : NULL);
    printf("real inputs: %ld speech samples from %s%s%s\n", sp.n, argv[1], blob ? ", weights from " : "",
           blob ? argv[2] : "");
  }
  free(sp.pcm), free(blob);
  printf("%s: %d checks, %d failures, SIMD levels 0..%d\n", failures ? "FAIL" : "PASS", checks,
         failures, cpu);
  return failures != 0;
}
