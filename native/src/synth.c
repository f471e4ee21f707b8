/* LPCNet native synthesis: model loading, frame-rate network, per-sample decoder (sparse
 * GRU A, GRU B, dual FC, binary-tree sampling) and de-emphasis. Semantics: those of the
 * kit's Keras reference engine (lpcnet/synth.py), described in docs/synthesis.md; for an
 * end-to-end model (blob flag BLOB_FLAG_END2END) each frame's LPC comes from the first 16
 * values of its conditioning vector (lpc_from_reflection) instead of features 20..35.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "freq.h"
#include "lpcnet_synth.h"
#include "nnet.h"

#ifdef SIMD_X86
#include <xmmintrin.h>
#endif

#define LEVELS LPCNET_ULAW_LEVELS
#define NB_FEAT LPCNET_NB_FEATURES

typedef struct {
  const float *w, *b;
  int rows, cols;
} Dense;

/* GRU A's recurrent product for sample t+1 depends only on GRU A's state after sample t,
 * not on the sampled value: it is computed in GA_CHUNKS pieces interleaved with the
 * latency-bound rest of sample t (two around GRU B's update, the others after the first
 * sampling subtree), so that the core overlaps the two. Same arithmetic, same results.
 * Four pieces: the whole product is done before the next sample starts (measured: int8
 * ~8 % faster than six pieces, docs/benchmarks.md#synth). */
#define GA_CHUNKS 4

struct LPCNetSynthModel {
  unsigned char *mem;
  size_t len;
  int na, nb, cond, embed, pembed, has_int8, end2end;
  const float *embed_pitch;
  Dense conv1, conv2, dense1, dense2, ga_cond, gb_cond;
  const float *ga_embed, *ga_rbias, *ga_subias, *ga_diag, *ga_w;
  const int32_t *ga_idx;
  const int8_t *ga_wq;
  const float *gb_in_subias, *gb_w, *gb_rec_w, *gb_rbias;
  const int32_t *gb_idx;
  const int8_t *gb_wq;
  /* GRU B's input matrix is usually dense: int8 copy repacked at load (owned); the same for
   * GRU A's recurrent matrix when it is dense (not pruned) */
  int8_t *gb_dense_q; /* (na/4, 3nb/8, 8, 4) */
  int8_t *ga_dense_q; /* panels of NNET_DENSE_PANEL groups, each (na/4, groups, 8, 4) */
  /* GRU A's recurrent groups in GA_CHUNKS pieces of about equal block counts: first
   * group, offset in ga_idx and first block of each piece */
  int ga_cg[GA_CHUNKS + 1];
  long ga_ci[GA_CHUNKS + 1], ga_cb[GA_CHUNKS + 1];
  /* int8 copy of GRU A's recurrent blocks with every group's count padded to an even
   * number >= 2 by zero blocks (same sums, simpler loops; owned), and its piece offsets */
  int32_t *ga_pidx;
  int8_t *ga_pwq;
  long ga_pci[GA_CHUNKS + 1], ga_pcb[GA_CHUNKS + 1];
  const float *md_w, *md_b, *md_f;
  /* dual FC regrouped for tree4 (nnet_tree4_tables; 16 GRU B units only; owned, else NULL) */
  float *tree_t;
  FreqTables freq;
};

/* Frames of one state whose conditioning the frame-rate network has made, waiting for their
 * 160 samples (at most FRAME_BLOCK per state). */
#define FRAME_BLOCK 16
typedef struct {
  const float *cond_a, *cond_b; /* conditioning sums of GRU A (3 na) and GRU B (3 nb) */
  const float *cond;            /* the conditioning vector (dense2's output, cond floats) */
  float lpc[LPCNET_LPC_ORDER];
  float gain;
} ReadyFrame;

/* Work space of the frame-rate network for up to n calls at once: consecutive calls of one
 * state (a block of frames), or one call of each of n streams (multi-stream synthesis). */
typedef struct {
  int n;
  float *x3a, *c1, *x3b, *c2, *d1, *cf, *ca, *cb; /* per call: layer inputs and outputs */
  int *valid1, *valid2, *slot;
} FrameWork;

struct LPCNetSynthState {
  const LPCNetSynthModel *m;
  const NNetKernels *k;
  int flags;
  uint64_t seed, counter;
  long calls, nin, t;
  float feat_ring[3][LPCNET_NB_TOTAL_FEATURES];
  float *conv1_mem, *conv2_mem;
  FrameWork fw; /* n = 0 for the streams of a LPCNetSynthMulti (which owns one) */
  ReadyFrame ready[FRAME_BLOCK];
  int nready;
  const float *cond_a, *cond_b; /* conditioning sums of the frame being synthesised */
  float *ha, *hb, *rec_a, *in_b, *rec_b;
  uint8_t *ha_q;
  int next_chunk;     /* pieces of GRU A's next recurrent product already in rec_a */
  int shared_product; /* rec_a is computed for all streams at once (LPCNetSynthMulti) */
  double hist[LPCNET_LPC_ORDER], deemph;
  int sig, exc;
  float *probs;
  const uint8_t *forced;
  float *trace_cond, *trace_lpc; /* lpcnet_synth_trace() (tests) */
};

static int g_level = -1;
static double g_ulaw2lin[LEVELS];
/* g_ulaw_edge[j]: |x| at which the exact mu-law value u crosses j + 0.5 (j < 128), then +inf */
static double g_ulaw_edge[LEVELS];
static float g_thresh[LEVELS], g_logit[LEVELS];
static int g_tables_ready = 0;

/* ---- mu-law (docs/formats.md, exact: natural log, round half to even) ---------- */
static int lin2ulaw_exact(double x) {
  double u = 128.0 * log1p(fabs(x) * (255.0 / LPCNET_ULAW_FULL_SCALE)) / log(256.0);
  double r = 128.0 + nearbyint(x < 0 ? -u : u);
  if (r != r) return 128; /* NaN */
  return r < 0 ? 0 : (r > 255 ? 255 : (int)r);
}

/* The same code without a logarithm: |u| rounds to k = number of edges <= |x|. The top 16
 * bits of the double |x| (exponent and 4 mantissa bits) pick one of ULAW_BUCKETS intervals
 * of 1/16 octave on [2, 32768) (below: bucket 0, above: the last), which holds at most two
 * edges (checked when the tables are built, else the binary search is used): k is the bucket's
 * first count plus two compares. Where |x| is within 1e-9 (relative) of an edge, the rounding
 * of the formula itself decides: lin2ulaw_exact() (practically never taken). */
#define ULAW_BUCKETS 224
static uint8_t g_ulaw_k0[ULAW_BUCKETS];
static int g_ulaw_buckets_ok = 0;

static int lin2ulaw(double x) {
  const double a = fabs(x);
  int k = 0, s;
  if (g_ulaw_buckets_ok && a == a) {
    uint64_t bits;
    long b;
    memcpy(&bits, &a, sizeof(bits));
    b = (long)(bits >> 48) - (1024L << 4); /* 2.0 has the exponent field 1024 */
    b = b < 0 ? 0 : (b >= ULAW_BUCKETS ? ULAW_BUCKETS - 1 : b);
    k = g_ulaw_k0[b];
    k += g_ulaw_edge[k] <= a;
    k += g_ulaw_edge[k] <= a;
  } else {
    for (s = 128; s >= 1; s >>= 1) k += (g_ulaw_edge[k + s - 1] <= a) ? s : 0;
  }
  k = k > 128 ? 128 : k; /* a = +inf passes the +inf padding too */
  /* k in [0, 128]: edge k-1 <= a < edge k (NaN: k = 0) */
  if ((k > 0 && a - g_ulaw_edge[k - 1] <= 1e-9 * g_ulaw_edge[k - 1]) ||
      (k < 128 && g_ulaw_edge[k] - a <= 1e-9 * g_ulaw_edge[k]))
    return lin2ulaw_exact(x);
  k = x < 0 ? -k : k;
  k += 128;
  return k > 255 ? 255 : k;
}

/* Edges below a (binary search), for the bucket table. */
static int edges_below(double a, int strict) {
  int k = 0;
  while (k < 128 && (strict ? g_ulaw_edge[k] < a : g_ulaw_edge[k] <= a)) k++;
  return k;
}

static void init_buckets(void) {
  int b, ok = 1;
  for (b = 0; b < ULAW_BUCKETS; b++) {
    const double lo = ldexp(1.0 + (b % 16) / 16.0, 1 + b / 16);
    const double hi = ldexp(1.0 + (b % 16 + 1) / 16.0, 1 + b / 16);
    const int k0 = b == 0 ? 0 : edges_below(lo, 0);
    const int k1 = b == ULAW_BUCKETS - 1 ? 128 : edges_below(hi, 1);
    g_ulaw_k0[b] = (uint8_t)k0;
    if (k1 - k0 > 2) ok = 0;
  }
  g_ulaw_buckets_ok = ok;
}

static void init_tables(void) {
  int i;
  if (g_tables_ready) return;
  for (i = 0; i < LEVELS; i++) {
    double d = (double)(i - 128);
    double v = (LPCNET_ULAW_FULL_SCALE / 255.0) * expm1(fabs(d) / 128.0 * log(256.0));
    g_ulaw2lin[i] = d < 0 ? -v : (d > 0 ? v : 0.0);
    /* bit threshold of the sampling rule (docs/synthesis.md): in [0.025, 0.975] */
    g_thresh[i] = 0.025f + 0.95f * (float)i / 255.f;
    /* sigmoid(x) > t  <=>  x > logit(t): no sigmoid on the sampling path */
    g_logit[i] = (float)log((double)g_thresh[i] / (1.0 - (double)g_thresh[i]));
    g_ulaw_edge[i] = i < 128 ? (LPCNET_ULAW_FULL_SCALE / 255.0) * expm1((i + 0.5) / 128.0 * log(256.0))
                             : HUGE_VAL;
  }
  init_buckets();
  g_tables_ready = 1;
}

/* Counter-based splitmix64: value n of the stream is a pure function of (seed, n). */
static uint64_t rng_next(LPCNetSynthState *st) {
  uint64_t z = st->seed + (++st->counter) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* ---- model loading ----------------------------------------------------------------- */
static Dense dense(Blob *p, const char *wname, const char *bname, int rows, int cols) {
  Dense d;
  d.w = blob_find(p, wname, BLOB_F32, 2, D2(rows, cols), NULL, 0);
  d.b = blob_find(p, bname, BLOB_F32, 1, D1(cols), NULL, 0);
  d.rows = rows;
  d.cols = cols;
  return d;
}

static int load_sparse(Blob *p, const char *iname, const char *wname, const char *qname,
                       int rows, int cols, int want_q, const int32_t **idx, const float **w,
                       const int8_t **wq) {
  long nidx = 0, nblk = 0;
  *idx = blob_find(p, iname, BLOB_I32, 1, D1(-1), &nidx, 0);
  *w = blob_find(p, wname, BLOB_F32, 3, D3(-1, NNET_BLOCK_ROWS, NNET_BLOCK_COLS), &nblk, 0);
  if (p->failed) return -1;
  nblk /= NNET_BLOCK_SIZE;
  if (blob_check_idx(*idx, nidx, cols / NNET_BLOCK_COLS, rows, nblk)) {
    blob_fail(p, "weight blob: block index list '%s' is inconsistent", iname);
    return -1;
  }
  if (want_q) *wq = blob_find(p, qname, BLOB_I8, 3, D3(nblk, NNET_BLOCK_COLS, NNET_BLOCK_ROWS), NULL, 0);
  return p->failed ? -1 : 0;
}

/* The header's 8 sizes (docs/weights-format.md) into m; 0, or -1 if unsupported. */
static int read_sizes(LPCNetSynthModel *m, const unsigned char *raw) {
  uint32_t sz[8];
  int i;
  for (i = 0; i < 8; i++) sz[i] = blob_u32(raw + 16 + 4 * i);
  if (sz[0] < 8 || sz[0] > 2048 || sz[0] % 8 || sz[1] < 8 || sz[1] > 512 || sz[1] % 8 ||
      sz[2] < 1 || sz[2] > 1024 || sz[3] != NB_FEAT || sz[4] < 1 || sz[4] > 1024 ||
      sz[5] < 1 || sz[5] > 1024 || sz[6] != LPCNET_FRAME_SIZE || sz[7] != LEVELS)
    return -1;
  m->na = (int)sz[0], m->nb = (int)sz[1], m->cond = (int)sz[2], m->embed = (int)sz[4];
  m->pembed = (int)sz[5];
  m->has_int8 = (blob_u32(raw + 12) & BLOB_FLAG_INT8) != 0;
  m->end2end = (blob_u32(raw + 12) & BLOB_FLAG_END2END) != 0;
  return 0;
}

/* Every tensor of docs/weights-format.md, checked against the sizes. */
static void find_tensors(Blob *p, LPCNetSynthModel *m) {
  const int na = m->na, nb = m->nb, cond = m->cond, in1 = NB_FEAT + m->pembed;
  m->embed_pitch = blob_find(p, "embed_pitch", BLOB_F32, 2, D2(256, m->pembed), NULL, 0);
  m->conv1 = dense(p, "conv1_w", "conv1_b", 3 * in1, cond);
  m->conv2 = dense(p, "conv2_w", "conv2_b", 3 * cond, cond);
  m->dense1 = dense(p, "dense1_w", "dense1_b", cond, cond);
  m->dense2 = dense(p, "dense2_w", "dense2_b", cond, cond);
  m->ga_embed = blob_find(p, "gru_a_embed", BLOB_F32, 3, D3(3, LEVELS, 3 * na), NULL, 0);
  m->ga_cond = dense(p, "gru_a_cond_w", "gru_a_cond_b", cond, 3 * na);
  m->ga_rbias = blob_find(p, "gru_a_rbias", BLOB_F32, 1, D1(3 * na), NULL, 0);
  m->ga_diag = blob_find(p, "gru_a_diag", BLOB_F32, 2, D2(3, na), NULL, 0);
  load_sparse(p, "gru_a_rec_idx", "gru_a_rec_w", "gru_a_rec_wq", na, 3 * na, m->has_int8,
              &m->ga_idx, &m->ga_w, &m->ga_wq);
  m->gb_cond = dense(p, "gru_b_cond_w", "gru_b_cond_b", cond, 3 * nb);
  load_sparse(p, "gru_b_in_idx", "gru_b_in_w", "gru_b_in_wq", na, 3 * nb, m->has_int8, &m->gb_idx,
              &m->gb_w, &m->gb_wq);
  m->gb_rec_w = blob_find(p, "gru_b_rec_w", BLOB_F32, 2, D2(nb, 3 * nb), NULL, 0);
  m->gb_rbias = blob_find(p, "gru_b_rbias", BLOB_F32, 1, D1(3 * nb), NULL, 0);
  if (m->has_int8) {
    m->ga_subias = blob_find(p, "gru_a_subias", BLOB_F32, 1, D1(3 * na), NULL, 0);
    m->gb_in_subias = blob_find(p, "gru_b_in_subias", BLOB_F32, 1, D1(3 * nb), NULL, 0);
  }
  m->md_w = blob_find(p, "md_w", BLOB_F32, 3, D3(LEVELS, 2, nb), NULL, 0);
  m->md_b = blob_find(p, "md_b", BLOB_F32, 2, D2(LEVELS, 2), NULL, 0);
  m->md_f = blob_find(p, "md_f", BLOB_F32, 2, D2(LEVELS, 2), NULL, 0);
}

/* Zeroed memory aligned to a cache line (64 bytes), NULL if out of memory: the kernels' 32-
 * and 64-byte loads and stores of weights, states and sums then never straddle two lines (a
 * split access costs two; misaligned weights and states made int8 synthesis ~7 % slower). */
static void *zalloc64(size_t bytes) {
  void *p;
  if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
  memset(p, 0, bytes);
  return p;
}

/* n floats rounded up to whole cache lines (sections of a zalloc64 block stay aligned) */
static size_t line_floats(size_t n) { return (n + 15) & ~(size_t)15; }

/* If every 4x8 block of GRU B's input matrix is stored (in row order), keep a dense
 * int8 copy: a dense product reuses each input broadcast across all outputs. (A dense
 * float copy brings nothing: that product is bound by FMA throughput either way.) */
static void repack_dense_gru_b(LPCNetSynthModel *m) {
  const int rq = m->na / NNET_BLOCK_ROWS, ng = 3 * m->nb / NNET_BLOCK_COLS;
  if (!m->gb_wq || !nnet_blocks_are_dense(m->gb_idx, m->na, ng)) return;
  m->gb_dense_q = zalloc64((size_t)m->na * 3 * m->nb);
  if (m->gb_dense_q) nnet_dense_i8_from_blocks(m->gb_wq, rq, ng, ng, m->gb_dense_q);
}

/* A dense int8 copy of GRU A's recurrent matrix if every block is stored (no pruning): the
 * dense product broadcasts each state quad once for all outputs (512-bit VNNI). */
static void repack_dense_gru_a(LPCNetSynthModel *m) {
  const int rq = m->na / NNET_BLOCK_ROWS, ng = 3 * m->na / NNET_BLOCK_COLS;
  if (!m->ga_wq || !nnet_blocks_are_dense(m->ga_idx, m->na, ng)) return;
  m->ga_dense_q = zalloc64((size_t)m->na * 3 * m->na);
  if (m->ga_dense_q) nnet_dense_i8_from_blocks(m->ga_wq, rq, ng, NNET_DENSE_PANEL, m->ga_dense_q);
}

/* Split GRU A's recurrent block list into GA_CHUNKS pieces of about equal block counts. */
static void chunk_gru_a(LPCNetSynthModel *m, int ngroups) {
  long pos = 0, b = 0, nblk = 0;
  int g, k = 1;
  for (g = 0; g < ngroups; g++) {
    nblk += m->ga_idx[pos];
    pos += 1 + m->ga_idx[pos];
  }
  pos = 0;
  m->ga_cg[0] = 0, m->ga_ci[0] = m->ga_cb[0] = 0;
  for (g = 0; g < ngroups; g++) {
    b += m->ga_idx[pos];
    pos += 1 + m->ga_idx[pos];
    while (k < GA_CHUNKS && b * GA_CHUNKS >= nblk * k &&
           (!m->ga_dense_q || (g + 1) % NNET_DENSE_PANEL == 0 || g + 1 == ngroups))
      m->ga_cg[k] = g + 1, m->ga_ci[k] = pos, m->ga_cb[k] = b, k++;
  }
  for (; k <= GA_CHUNKS; k++) m->ga_cg[k] = ngroups, m->ga_ci[k] = pos, m->ga_cb[k] = b;
}

/* The padded int8 copy of GRU A's recurrent blocks (ga_pidx) and the offsets of the
 * chunk_gru_a pieces in it; absent on failure. */
static void pad_gru_a(LPCNetSynthModel *m, int ngroups) {
  const long n = nnet_padded_blocks(m->ga_idx, ngroups);
  long pos = 0, blocks = 0;
  int g, c = 1;
  m->ga_pidx = malloc(sizeof(int32_t) * (size_t)(n + ngroups));
  m->ga_pwq = zalloc64((size_t)NNET_BLOCK_SIZE * n);
  if (!m->ga_pidx || !m->ga_pwq) {
    free(m->ga_pidx), free(m->ga_pwq);
    m->ga_pidx = NULL, m->ga_pwq = NULL;
    return;
  }
  nnet_pad_even_i8(m->ga_idx, m->ga_wq, ngroups, m->ga_pidx, m->ga_pwq);
  m->ga_pci[0] = m->ga_pcb[0] = 0;
  for (g = 0; g < ngroups; g++) {
    blocks += m->ga_pidx[pos];
    pos += 1 + m->ga_pidx[pos];
    while (c <= GA_CHUNKS && m->ga_cg[c] == g + 1) m->ga_pci[c] = pos, m->ga_pcb[c] = blocks, c++;
  }
}

/* Tables of the 17 four-level subtrees of the sampling tree (nnet.h, tree4). */
static void build_tree_tables(LPCNetSynthModel *m) {
  if (m->nb != 16) return;
  if (posix_memalign((void **)&m->tree_t, BLOB_ALIGN, sizeof(float) * NNET_TREE_TABLES * NNET_TREE_STRIDE)) {
    m->tree_t = NULL;
    return;
  }
  nnet_tree4_tables(m->md_w, m->md_b, m->md_f, m->tree_t);
}

LPCNetSynthModel *lpcnet_synth_model_load(const void *data, size_t len, char *err, size_t errlen) {
  LPCNetSynthModel *m;
  Blob p;
  init_tables();
  if (blob_check(data, len, err, errlen)) return NULL;
  m = calloc(1, sizeof(*m));
  if (!m) return NULL;
  if (read_sizes(m, data)) {
    free(m);
    blob_error(err, errlen, "weight blob: unsupported model sizes");
    return NULL;
  }
  if (m->end2end && m->cond < LPCNET_LPC_ORDER) {
    blob_error(err, errlen, "weight blob: an end-to-end model needs at least %d conditioning values, "
               "got %d", LPCNET_LPC_ORDER, m->cond);
    free(m);
    return NULL;
  }
  m->len = (len + BLOB_ALIGN - 1) / BLOB_ALIGN * BLOB_ALIGN;
  if (posix_memalign((void **)&m->mem, BLOB_ALIGN, m->len)) m->mem = NULL;
  if (!m->mem) {
    free(m);
    blob_error(err, errlen, "out of memory");
    return NULL;
  }
  memcpy(m->mem, data, len);
  if (blob_open(&p, m->mem, len, err, errlen) == 0) find_tensors(&p, m);
  if (p.failed) {
    lpcnet_synth_model_free(m);
    return NULL;
  }
  freq_init(&m->freq);
  repack_dense_gru_b(m);
  repack_dense_gru_a(m);
  chunk_gru_a(m, 3 * m->na / NNET_BLOCK_COLS);
  if (m->ga_wq) pad_gru_a(m, 3 * m->na / NNET_BLOCK_COLS);
  build_tree_tables(m);
  return m;
}

/* Whether a synthesis state of model m can run with these flags: int8 needs the blob's int8
 * copies; an end-to-end model's LPC comes from the network, not from the cepstrum. */
static int flags_supported(const LPCNetSynthModel *m, int flags) {
  return m && !((flags & LPCNET_SYNTH_INT8) && !m->has_int8) &&
         !((flags & LPCNET_SYNTH_LPC_CEPSTRUM) && m->end2end);
}

void lpcnet_synth_model_free(LPCNetSynthModel *m) {
  if (!m) return;
  free(m->gb_dense_q);
  free(m->ga_dense_q);
  free(m->tree_t);
  free(m->ga_pidx);
  free(m->ga_pwq);
  free(m->mem);
  free(m);
}

void lpcnet_synth_model_sizes(const LPCNetSynthModel *m, int *out) {
  out[0] = m->na;
  out[1] = m->nb;
  out[2] = m->cond;
  out[3] = m->has_int8;
  out[4] = m->end2end;
}

/* ---- state -------------------------------------------------------------------- */
static void framework_free(FrameWork *fw) {
  free(fw->x3a);
  free(fw->valid1);
  memset(fw, 0, sizeof(*fw));
}

/* Work space for n calls; 0, or -1 (out of memory). */
static int framework_alloc(FrameWork *fw, const LPCNetSynthModel *m, int n) {
  const size_t in1 = NB_FEAT + (size_t)m->pembed, cond = (size_t)m->cond;
  const size_t x3a = line_floats((size_t)n * 3 * in1), c = line_floats((size_t)n * cond);
  const size_t x3b = line_floats((size_t)n * 3 * cond), ca = line_floats((size_t)n * 3 * m->na);
  float *f = zalloc64(sizeof(float) * (x3a + x3b + 4 * c + ca + (size_t)n * 3 * m->nb));
  memset(fw, 0, sizeof(*fw));
  fw->valid1 = calloc(3 * (size_t)n, sizeof(int));
  if (!f || !fw->valid1) {
    free(f);
    free(fw->valid1);
    fw->valid1 = NULL;
    return -1;
  }
  fw->n = n;
  fw->x3a = f, f += x3a;
  fw->c1 = f, f += c;
  fw->x3b = f, f += x3b;
  fw->c2 = f, f += c;
  fw->d1 = f, f += c;
  fw->cf = f, f += c;
  fw->ca = f, f += ca;
  fw->cb = f;
  fw->valid2 = fw->valid1 + n;
  fw->slot = fw->valid2 + n;
  return 0;
}

/* A state with its own frame work space for FRAME_BLOCK calls (own_frames), or none (the
 * streams of a LPCNetSynthMulti); rec_a: its GRU A recurrent sums (3 na floats, owned by the
 * caller) or NULL (allocated here). */
static LPCNetSynthState *state_new(const LPCNetSynthModel *m, int flags, uint64_t seed,
                                   int own_frames, float *rec_a) {
  LPCNetSynthState *st;
  float *f;
  size_t nf;
  int in1;
  if (!flags_supported(m, flags))
    return NULL;
  init_tables();
  in1 = NB_FEAT + m->pembed;
  st = calloc(1, sizeof(*st));
  if (!st) return NULL;
  /* conv memories, states, GRU sums (below) */
  nf = line_floats(2 * (size_t)in1) + line_floats(2 * (size_t)m->cond) + line_floats(m->na) +
       line_floats(m->nb) + line_floats(3 * (size_t)m->na) + line_floats(3 * (size_t)m->nb) +
       3 * (size_t)m->nb;
  f = zalloc64(sizeof(float) * nf);
  st->ha_q = malloc((size_t)m->na + 4);
  if (st->ha_q) memset(st->ha_q, 127, (size_t)m->na + 4); /* quantised zero state */
  if (!f || !st->ha_q || (own_frames && framework_alloc(&st->fw, m, FRAME_BLOCK))) {
    free(f);
    free(st->ha_q);
    free(st);
    return NULL;
  }
  st->conv1_mem = f, f += line_floats(2 * (size_t)in1);
  st->conv2_mem = f, f += line_floats(2 * (size_t)m->cond);
  st->ha = f, f += line_floats(m->na);
  st->hb = f, f += line_floats(m->nb);
  st->rec_a = f, f += line_floats(3 * (size_t)m->na);
  st->in_b = f, f += line_floats(3 * (size_t)m->nb);
  st->rec_b = f;
  if (rec_a) st->rec_a = rec_a;
  st->m = m;
  st->k = nnet_select(g_level);
  st->flags = flags;
  st->seed = seed;
  st->sig = st->exc = 128;
  return st;
}

LPCNetSynthState *lpcnet_synth_create(const LPCNetSynthModel *m, int flags, uint64_t seed) {
  return state_new(m, flags, seed, 1, NULL);
}

void lpcnet_synth_destroy(LPCNetSynthState *st) {
  if (!st) return;
  framework_free(&st->fw);
  free(st->conv1_mem);
  free(st->ha_q);
  free(st);
}

int lpcnet_synth_simd_level(void) { return nnet_select(g_level)->level; }

int lpcnet_synth_set_simd_level(int level) {
  g_level = level;
  return lpcnet_synth_simd_level();
}

/* ---- layers ------------------------------------------------------------------- */
/* All 256 tree-node bit probabilities (tests only). */
static void mdense_all(LPCNetSynthState *st, const float *v, float *q) {
  const LPCNetSynthModel *m = st->m;
  int u, j, units[4];
  for (u = 0; u < LEVELS; u += 4) {
    for (j = 0; j < 4; j++) units[j] = u + j;
    st->k->mdense_units(m->md_w, m->md_b, m->md_f, v, m->nb, units, 4, q + u);
  }
  st->k->vec_sigmoid(q, q, LEVELS);
}

static int bit_of(const LPCNetSynthState *st, float x, int r) {
  return (st->flags & LPCNET_SYNTH_ARGMAX) ? x > 0.f : x > g_logit[r];
}

/* Piece c of GRU A's recurrent product (bias + W h) into rec_a, from the current state. */
static void ga_chunk(LPCNetSynthState *st) {
  const LPCNetSynthModel *m = st->m;
  const int c = st->next_chunk;
  int g0, ng;
  if (c >= GA_CHUNKS) return;
  g0 = m->ga_cg[c], ng = m->ga_cg[c + 1] - g0;
  st->next_chunk = c + 1;
  /* (the int8 products read ha_q, the quantised state made for GRU B) */
  if (!(st->flags & LPCNET_SYNTH_INT8)) {
    st->k->sparse_sgemv_accum(st->rec_a + 8 * g0, m->ga_rbias + 8 * g0, m->ga_w + 32 * m->ga_cb[c],
                              m->ga_idx + m->ga_ci[c], ng, st->ha);
  } else if (m->ga_dense_q && st->k->dense_i8_accum) { /* pieces start at a panel */
    const int rows4 = m->na / NNET_BLOCK_ROWS, ngroups = 3 * m->na / NNET_BLOCK_COLS;
    int g;
    memcpy(st->rec_a + 8 * g0, m->ga_subias + 8 * g0, sizeof(float) * 8 * ng);
    for (g = g0; g < g0 + ng; g += NNET_DENSE_PANEL) {
      const int pg = ngroups - g < NNET_DENSE_PANEL ? ngroups - g : NNET_DENSE_PANEL;
      st->k->dense_i8_accum(st->rec_a + 8 * g, m->ga_dense_q + (size_t)g * rows4 * NNET_BLOCK_SIZE,
                            rows4, pg < g0 + ng - g ? pg : g0 + ng - g, pg, st->ha_q, NNET_I8_SCALE);
    }
  } else if (m->ga_pidx && st->k->sparse_i8_accum_even)
    st->k->sparse_i8_accum_even(st->rec_a + 8 * g0, m->ga_subias + 8 * g0,
                                m->ga_pwq + 32 * m->ga_pcb[c], m->ga_pidx + m->ga_pci[c], ng,
                                st->ha_q, NNET_I8_SCALE);
  else
    st->k->sparse_i8_accum(st->rec_a + 8 * g0, m->ga_subias + 8 * g0, m->ga_wq + 32 * m->ga_cb[c],
                           m->ga_idx + m->ga_ci[c], ng, st->ha_q, NNET_I8_SCALE);
}

/* GRU A on [conditioning, embeddings of the signal, prediction and excitation codes]; the
 * three embedding-table rows (speech keeps to a few hundred of the 768 rows, which stay in
 * L2: explicit prefetching brought nothing) are added to the frame's conditioning sums. */
static void gru_a_step(LPCNetSynthState *st, int pred_code) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  const int na = m->na, int8 = st->flags & LPCNET_SYNTH_INT8;
  const float *e0 = m->ga_embed + (size_t)st->sig * 3 * na;
  const float *e1 = m->ga_embed + ((size_t)LEVELS + pred_code) * 3 * na;
  const float *e2 = m->ga_embed + ((size_t)2 * LEVELS + st->exc) * 3 * na;
  while (st->next_chunk < GA_CHUNKS) ga_chunk(st); /* what is left of the product */
  if (int8 && k->gru_update_fast) {
    k->gru_update_fast(st->ha, st->cond_a, e0, e1, e2, st->rec_a, m->ga_diag, na, st->ha_q);
  } else {
    k->gru_update(st->ha, st->cond_a, e0, e1, e2, st->rec_a, m->ga_diag, na);
    if (int8) k->quantize_u8(st->ha_q, st->ha, na);
  }
  /* rec_a consumed: start on the next sample's product (unless made for all streams) */
  st->next_chunk = st->shared_product ? GA_CHUNKS : 0;
}

/* GRU B's input sums: its conditioning sums + its input matrix times GRU A's new state. */
static void gru_b_input(LPCNetSynthState *st) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  const int na = m->na, nb = m->nb;
  memcpy(st->in_b, st->cond_b, sizeof(float) * 3 * nb);
  if (st->flags & LPCNET_SYNTH_INT8) {
    /* ha_q: the quantised new state (made with GRU A's update) */
    if (m->gb_dense_q && k->dense_i8_accum)
      k->dense_i8_accum(st->in_b, m->gb_dense_q, na / NNET_BLOCK_ROWS, 3 * nb / NNET_BLOCK_COLS,
                        3 * nb / NNET_BLOCK_COLS, st->ha_q, NNET_I8_SCALE);
    else
      k->sparse_i8_accum(st->in_b, NULL, m->gb_wq, m->gb_idx, 3 * nb / NNET_BLOCK_COLS, st->ha_q,
                         NNET_I8_SCALE);
  } else {
    k->sparse_sgemv_accum(st->in_b, NULL, m->gb_w, m->gb_idx, 3 * nb / NNET_BLOCK_COLS, st->ha);
  }
}

/* The rest of GRU B's step (recurrent sums, update), with two pieces of GRU A's next
 * recurrent product around it. */
static void gru_b_rest(LPCNetSynthState *st) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  const int nb = m->nb;
  ga_chunk(st);
  memcpy(st->rec_b, m->gb_rbias, sizeof(float) * 3 * nb);
  k->sgemv_accum(st->rec_b, m->gb_rec_w, nb, 3 * nb, st->hb);
  if ((st->flags & LPCNET_SYNTH_INT8) && k->gru_update_fast)
    k->gru_update_fast(st->hb, st->in_b, NULL, NULL, NULL, st->rec_b, NULL, nb, NULL);
  else
    k->gru_update(st->hb, st->in_b, NULL, NULL, NULL, st->rec_b, NULL, nb);
  ga_chunk(st);
}

/* The logit thresholds of the 8 bits of the next excitation code (sampling rule of
 * docs/synthesis.md): 8 values of the random stream. */
static void draw_thresholds(LPCNetSynthState *st, float *thr) {
  int b;
  for (b = 0; b < 8; b++) {
    const int r = (int)(rng_next(st) >> 56);
    thr[b] = (st->flags & LPCNET_SYNTH_ARGMAX) ? 0.f : g_logit[r]; /* as bit_of() */
  }
}

/* The 8 bits of the excitation code, MSB first down the tree of the dual FC (sampling rule
 * of docs/synthesis.md), with GRU A's next product interleaved. */
static int draw_code(LPCNetSynthState *st, float gain) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  int b, v = 0;
  if (m->tree_t && k->tree4) {
    /* four levels per step: the 15 nodes of a subtree evaluated and decided together */
    float thr[8];
    draw_thresholds(st, thr);
    v = k->tree4(m->tree_t, st->hb, gain, thr);
    ga_chunk(st);
    ga_chunk(st);
    ga_chunk(st);
    return 16 * v + k->tree4(m->tree_t + (size_t)(1 + v) * NNET_TREE_STRIDE, st->hb, gain, thr + 4);
  }
  /* node 2^b + bits so far. Two levels per step: the node and both of its children are
   * evaluated together (shorter dependency chain). */
  for (b = 0; b < 8; b += 2) {
    int units[3], bit;
    float x[3];
    units[0] = (1 << b) + v;
    units[1] = (1 << (b + 1)) + 2 * v;
    units[2] = units[1] + 1;
    k->mdense_units(m->md_w, m->md_b, m->md_f, st->hb, m->nb, units, 3, x);
    bit = bit_of(st, gain * x[0], (int)(rng_next(st) >> 56));
    v = 2 * v + bit;
    v = 2 * v + bit_of(st, gain * x[1 + bit], (int)(rng_next(st) >> 56));
    if (b < 6) ga_chunk(st); /* (pieces left over: at the next sample's GRU A step) */
  }
  return v;
}

/* The LPC prediction of the next sample from the history of the synthesised signal. */
static double lpc_predict(const LPCNetSynthState *st, const float *lpc) {
  double pred = 0.0;
  int i;
  for (i = 0; i < LPCNET_LPC_ORDER; i++) pred -= (double)lpc[i] * st->hist[i];
  return pred;
}

/* The end of a sample: excitation code v -> signal, history, de-emphasis, output sample. */
static int16_t sample_finish(LPCNetSynthState *st, double pred, int v) {
  double pcm, y;
  st->exc = v;
  pcm = pred + g_ulaw2lin[v];
  st->sig = lin2ulaw(pcm);
  memmove(st->hist + 1, st->hist, sizeof(double) * (LPCNET_LPC_ORDER - 1));
  st->hist[0] = pcm;
  st->deemph = LPCNET_PREEMPHASIS * st->deemph + pcm;
  y = nearbyint(st->deemph);
  if (y != y) y = 0.0; /* non-finite features (C callers): no undefined conversion */
  st->t++;
  return (int16_t)(y > 32767.0 ? 32767 : (y < -32768.0 ? -32768 : y));
}

/* One output sample (docs/synthesis.md, "What both engines compute", step 3). */
static int16_t sample_step(LPCNetSynthState *st, const float *lpc, float gain) {
  const double pred = lpc_predict(st, lpc);
  int v;
  gru_a_step(st, lin2ulaw(pred));
  gru_b_input(st);
  gru_b_rest(st);
  if (st->probs) mdense_all(st, st->hb, st->probs + st->t * LEVELS);
  v = draw_code(st, gain);
  if (st->forced) v = st->forced[st->t];
  return sample_finish(st, pred, v);
}

/* ---- frame-rate network (docs/synthesis.md, step 1) --------------------------------- */
/* One call of a state: its features (NULL: zero padding past the end of the stream). */
typedef struct {
  LPCNetSynthState *st;
  const float *features;
} FrameCall;

/* LPC and sharpening gain of a frame (its 36 features); an end-to-end model's LPC is made
 * from the frame's conditioning later (frame_network). */
static void frame_params(const LPCNetSynthState *st, const float *f, ReadyFrame *rf) {
  rf->gain = 1.f;
  if (st->flags & LPCNET_SYNTH_LPC_CEPSTRUM) /* (refused for an end-to-end model) */
    lpc_from_cepstrum(&st->m->freq, f, rf->lpc);
  else if (!st->m->end2end)
    memcpy(rf->lpc, f + LPCNET_LPC_INDEX, sizeof(rf->lpc));
  if (st->flags & LPCNET_SYNTH_SHARPEN) {
    /* the raw pitch correlation is feature 19 + 0.5 (docs/synthesis.md, --sharpen) */
    float beta = 1.5f * (f[LPCNET_PITCH_CORR_INDEX] + 0.5f) - 0.5f;
    rf->gain = 1.f + (beta > 0.f ? beta : 0.f);
  }
}

/* out_v = tanh(b + W x_v) for n vectors (rows of out and x: ldo / ldx floats apart). */
static void dense_tanh(const NNetKernels *k, const Dense *d, float *out, int ldo, const float *x,
                       int ldx, int n) {
  int v;
  for (v = 0; v < n; v++) memcpy(out + (size_t)v * ldo, d->b, sizeof(float) * d->cols);
  k->sgemm_accum(out, ldo, d->w, d->rows, d->cols, x, ldx, n);
  for (v = 0; v < n; v++) k->vec_tanh(out + (size_t)v * ldo, out + (size_t)v * ldo, d->cols);
}

/* The frame-rate network of n calls (fw->n >= n): consecutive calls of one state, or one
 * call of each of n states. Call c of a state advances its convolution memories by one frame;
 * when frame c - 2 exists it becomes a ReadyFrame of that state (conditioning sums in fw).
 * The layers run once per batch, each vector with the arithmetic of a single call
 * (sgemm_accum), so the results do not depend on how the calls are batched. */
static void frame_network(FrameWork *fw, const FrameCall *calls, int n) {
  const LPCNetSynthModel *m = calls[0].st->m;
  const NNetKernels *k = calls[0].st->k;
  const int in1 = NB_FEAT + m->pembed, cond = m->cond, na3 = 3 * m->na, nb3 = 3 * m->nb;
  int j, v, n2 = 0;
  /* 1: first convolution's input windows (frames c-2, c-1, c), in call order; the LPC and
   * gain of frame c-2 are read now, before a later call of the state reuses its ring slot */
  for (j = 0; j < n; j++) {
    LPCNetSynthState *st = calls[j].st;
    const float *features = calls[j].features;
    const long c = st->calls++;
    float *x3 = fw->x3a + (size_t)j * 3 * in1, *x1 = x3 + 2 * in1;
    memcpy(x3, st->conv1_mem, sizeof(float) * 2 * in1);
    if (features) {
      /* pitch-embedding index: the period of docs/formats.md, clamped to 33..255 */
      double p = floor(0.1 + 50.0 * (double)features[LPCNET_PITCH_INDEX] + 100.0);
      int period = !(p >= 33.0) ? 33 : (p > 255.0 ? 255 : (int)p); /* also catches NaN */
      memcpy(x1, features, sizeof(float) * NB_FEAT);
      memcpy(x1 + NB_FEAT, m->embed_pitch + (size_t)period * m->pembed, sizeof(float) * m->pembed);
      memcpy(st->feat_ring[c % 3], features, sizeof(float) * LPCNET_NB_TOTAL_FEATURES);
      st->nin++;
    } else {
      memset(x1, 0, sizeof(float) * in1); /* 'same' zero padding past the end */
    }
    memmove(st->conv1_mem, st->conv1_mem + in1, sizeof(float) * in1);
    memcpy(st->conv1_mem + in1, x1, sizeof(float) * in1);
    /* zero padding outside frames 0..nin-1 */
    fw->valid1[j] = c - 1 >= 0 && c - 1 < st->nin;
    fw->valid2[j] = c - 2 >= 0 && c - 2 < st->nin;
    if (fw->valid2[j]) {
      fw->slot[j] = st->nready++;
      frame_params(st, st->feat_ring[(c - 2) % 3], &st->ready[fw->slot[j]]);
    }
  }
  /* 2: conv1 output of frame c-1 */
  dense_tanh(k, &m->conv1, fw->c1, cond, fw->x3a, 3 * in1, n);
  for (j = 0; j < n; j++)
    if (!fw->valid1[j]) memset(fw->c1 + (size_t)j * cond, 0, sizeof(float) * cond);
  /* 3: conv2 input windows in call order; the calls completing a frame first */
  for (j = 0; j < n; j++) {
    LPCNetSynthState *st = calls[j].st;
    const float *c1 = fw->c1 + (size_t)j * cond;
    float *x3 = fw->x3b + (size_t)n2 * 3 * cond;
    if (fw->valid2[j]) {
      memcpy(x3, st->conv2_mem, sizeof(float) * 2 * cond);
      memcpy(x3 + 2 * cond, c1, sizeof(float) * cond);
      fw->slot[n2] = fw->slot[j];
      fw->valid1[n2++] = j; /* (valid1 is free now: the call of row n2) */
    }
    memmove(st->conv2_mem, st->conv2_mem + cond, sizeof(float) * cond);
    memcpy(st->conv2_mem + cond, c1, sizeof(float) * cond);
  }
  if (n2 == 0) return;
  /* 4: conv2 output of frame c-2, the two dense layers, the conditioning sums */
  dense_tanh(k, &m->conv2, fw->c2, cond, fw->x3b, 3 * cond, n2);
  dense_tanh(k, &m->dense1, fw->d1, cond, fw->c2, cond, n2);
  dense_tanh(k, &m->dense2, fw->cf, cond, fw->d1, cond, n2);
  for (v = 0; v < n2; v++) {
    memcpy(fw->ca + (size_t)v * na3, m->ga_cond.b, sizeof(float) * na3);
    memcpy(fw->cb + (size_t)v * nb3,
           (calls[0].st->flags & LPCNET_SYNTH_INT8) ? m->gb_in_subias : m->gb_cond.b,
           sizeof(float) * nb3);
  }
  k->sgemm_accum(fw->ca, na3, m->ga_cond.w, cond, na3, fw->cf, cond, n2);
  k->sgemm_accum(fw->cb, nb3, m->gb_cond.w, cond, nb3, fw->cf, cond, n2);
  for (v = 0; v < n2; v++) {
    ReadyFrame *rf = &calls[fw->valid1[v]].st->ready[fw->slot[v]];
    rf->cond_a = fw->ca + (size_t)v * na3;
    rf->cond_b = fw->cb + (size_t)v * nb3;
    rf->cond = fw->cf + (size_t)v * cond;
    /* end-to-end model: the frame's LPC from its first 16 conditioning values (reflection
     * coefficients), used for the frame's 160 samples as the features' LPC is otherwise */
    if (m->end2end) lpc_from_reflection(rf->cond, rf->lpc);
  }
}

/* The samples of a state's ready frames -> out (160 each); returns the count. */
static long synth_ready(LPCNetSynthState *st, int16_t *out) {
  long done = 0;
  int f, i;
  for (f = 0; f < st->nready; f++) {
    const ReadyFrame *rf = &st->ready[f];
    st->cond_a = rf->cond_a;
    st->cond_b = rf->cond_b;
    if (st->trace_cond) { /* tests: what frame t / 160 is synthesised with */
      const size_t frame = (size_t)(st->t / LPCNET_FRAME_SIZE);
      memcpy(st->trace_cond + frame * (size_t)st->m->cond, rf->cond, sizeof(float) * (size_t)st->m->cond);
      memcpy(st->trace_lpc + frame * LPCNET_LPC_ORDER, rf->lpc, sizeof(rf->lpc));
    }
    for (i = 0; i < LPCNET_FRAME_SIZE; i++) out[done++] = sample_step(st, rf->lpc, rf->gain);
  }
  st->nready = 0;
  return done;
}

/* nframes calls of one state (features NULL: zero padding), in blocks of FRAME_BLOCK. */
static long feed(LPCNetSynthState *st, const float *features, long nframes, int16_t *out) {
  FrameCall calls[FRAME_BLOCK];
  long f = 0, done = 0;
  int j, n;
  while (f < nframes) {
    n = nframes - f < st->fw.n ? (int)(nframes - f) : st->fw.n;
    for (j = 0; j < n; j++) {
      calls[j].st = st;
      calls[j].features = features ? features + (f + j) * LPCNET_NB_TOTAL_FEATURES : NULL;
    }
    frame_network(&st->fw, calls, n);
    done += synth_ready(st, out + done);
    f += n;
  }
  return done;
}

/* Denormals flushed to zero while synthesising (as TensorFlow does on CPU): avoids
 * slow micro-code assists in the GRU updates; the caller's mode is restored. */
#ifdef SIMD_X86
#define FTZ_BEGIN unsigned int csr_ = _mm_getcsr(); _mm_setcsr(csr_ | 0x8040)
#define FTZ_END _mm_setcsr(csr_)
#else
#define FTZ_BEGIN
#define FTZ_END
#endif

int lpcnet_synth_frame(LPCNetSynthState *st, const float *features, int16_t *out) {
  return (int)lpcnet_synth_frames(st, features, 1, out);
}

long lpcnet_synth_frames(LPCNetSynthState *st, const float *features, long nframes, int16_t *out) {
  long n;
  if (!st->fw.n || nframes < 0 || !features) return -1;
  {
    FTZ_BEGIN;
    n = feed(st, features, nframes, out);
    FTZ_END;
  }
  return n;
}

int lpcnet_synth_flush(LPCNetSynthState *st, int16_t *out) {
  long n;
  if (!st->fw.n) return -1;
  {
    FTZ_BEGIN;
    n = feed(st, NULL, LPCNET_SYNTH_DELAY_FRAMES, out);
    FTZ_END;
  }
  return (int)n;
}

void lpcnet_synth_trace(LPCNetSynthState *st, float *cond, float *lpc) {
  st->trace_cond = cond && lpc ? cond : NULL;
  st->trace_lpc = cond && lpc ? lpc : NULL;
}

long lpcnet_synth_run(LPCNetSynthState *st, const float *features, long nb_frames, int16_t *out,
                      float *probs, const uint8_t *forced) {
  long done;
  if (st->calls != 0 || nb_frames < 0 || !st->fw.n) return -1;
  st->probs = probs;
  st->forced = forced;
  {
    FTZ_BEGIN;
    done = feed(st, features, nb_frames, out);
    done += feed(st, NULL, LPCNET_SYNTH_DELAY_FRAMES, out + done);
    FTZ_END;
  }
  st->probs = NULL;
  st->forced = NULL;
  return done;
}

/* ---- several streams at once (docs/synthesis.md, "Many streams") --------------------- */
struct LPCNetSynthMulti {
  const LPCNetSynthModel *m;
  const NNetKernels *k;
  int flags, nstreams;
  int shared; /* GRU A's int8 recurrent product made for all streams by one kernel call */
  LPCNetSynthState **st;
  float *rec_a;  /* nstreams x 3 na: the streams' rec_a, for the shared product */
  uint8_t *xe;   /* their quantised GRU A states, expanded (nnet_expand_u8) */
  FrameWork fw;  /* one call per stream */
  FrameCall *calls;
  int *act, *code;
  double *pred;
  float *thr;    /* 8 per stream */
  float **outs;  /* GRU B input sums and states of the active streams (dense_i8_accum_multi) */
  const uint8_t **xs;
};

void lpcnet_synth_multi_destroy(LPCNetSynthMulti *ms) {
  int s;
  if (!ms) return;
  if (ms->st)
    for (s = 0; s < ms->nstreams; s++) lpcnet_synth_destroy(ms->st[s]);
  free(ms->st);
  free(ms->rec_a);
  free(ms->xe);
  framework_free(&ms->fw);
  free(ms->calls);
  free(ms->act);
  free(ms->code);
  free(ms->pred);
  free(ms->thr);
  free(ms->outs);
  free(ms->xs);
  free(ms);
}

LPCNetSynthMulti *lpcnet_synth_multi_create(const LPCNetSynthModel *m, int flags, int nstreams) {
  LPCNetSynthMulti *ms;
  int s;
  if (!flags_supported(m, flags) || nstreams < 1 || nstreams > LPCNET_SYNTH_MAX_STREAMS)
    return NULL;
  ms = calloc(1, sizeof(*ms));
  if (!ms) return NULL;
  ms->m = m;
  ms->k = nnet_select(g_level);
  ms->flags = flags;
  ms->nstreams = nstreams;
  ms->shared = (flags & LPCNET_SYNTH_INT8) && ms->k->sparse_i8_accum_multi && nstreams > 1;
  ms->st = calloc((size_t)nstreams, sizeof(*ms->st));
  ms->rec_a = zalloc64(sizeof(float) * (size_t)nstreams * 3 * m->na);
  { /* 64-byte aligned: the kernel's 64-byte loads must not straddle cache lines */
    const size_t xe_bytes = (size_t)nnet_xe_streams(nstreams) * m->na / NNET_BLOCK_ROWS * NNET_XE_BYTES;
    if (posix_memalign((void **)&ms->xe, 64, xe_bytes)) ms->xe = NULL;
    if (ms->xe) memset(ms->xe, 0, xe_bytes);
  }
  ms->calls = calloc((size_t)nstreams, sizeof(*ms->calls));
  ms->act = calloc((size_t)nstreams, sizeof(int));
  ms->code = calloc((size_t)nstreams, sizeof(int));
  ms->pred = calloc((size_t)nstreams, sizeof(double));
  ms->thr = calloc((size_t)nstreams * 8, sizeof(float));
  ms->outs = calloc((size_t)nstreams, sizeof(float *));
  ms->xs = calloc((size_t)nstreams, sizeof(uint8_t *));
  if (!ms->st || !ms->rec_a || !ms->xe || !ms->calls || !ms->act || !ms->code || !ms->pred ||
      !ms->thr || !ms->outs || !ms->xs ||
      framework_alloc(&ms->fw, m, nstreams)) {
    lpcnet_synth_multi_destroy(ms);
    return NULL;
  }
  for (s = 0; s < nstreams; s++)
    if (lpcnet_synth_multi_start(ms, s, 0)) {
      lpcnet_synth_multi_destroy(ms);
      return NULL;
    }
  return ms;
}

int lpcnet_synth_multi_start(LPCNetSynthMulti *ms, int stream, uint64_t seed) {
  const LPCNetSynthModel *m = ms->m;
  LPCNetSynthState *st;
  if (stream < 0 || stream >= ms->nstreams) return -1;
  st = state_new(m, ms->flags, seed, 0, ms->rec_a + (size_t)stream * 3 * m->na);
  if (!st) return -1;
  st->k = ms->k; /* the level of the LPCNetSynthMulti, whatever was forced since */
  if (ms->shared) {
    st->shared_product = 1;
    st->next_chunk = GA_CHUNKS;
    nnet_expand_u8(ms->xe, st->ha_q, m->na, stream, ms->nstreams);
  }
  lpcnet_synth_destroy(ms->st[stream]);
  ms->st[stream] = st;
  return 0;
}

/* 160 samples of every stream with a ready frame (out + 160 s, nout[s] = 160; else 0).
 * Each sample runs in phases, each phase over all streams in turn (the prediction and its
 * code, GRU A, GRU B's input product for all at once, GRU B, the two sampling subtrees, the
 * output), so that the latency-bound steps of different streams overlap; every stream does
 * exactly what sample_step() does, in the same order. */
static void multi_samples(LPCNetSynthMulti *ms, int16_t *out, int16_t *nout) {
  const LPCNetSynthModel *m = ms->m;
  const NNetKernels *k = ms->k;
  const int na = m->na, ng = 3 * na / NNET_BLOCK_COLS, nb3g = 3 * m->nb / NNET_BLOCK_COLS;
  const int int8 = ms->flags & LPCNET_SYNTH_INT8;
  const int gb_shared = int8 && m->gb_dense_q && k->dense_i8_accum && k->dense_i8_accum_multi;
  const int tree = m->tree_t && k->tree4;
  int s, a, i, nact = 0;
  for (s = 0; s < ms->nstreams; s++) {
    LPCNetSynthState *st = ms->st[s];
    nout[s] = 0;
    if (!st->nready) continue;
    st->cond_a = st->ready[0].cond_a;
    st->cond_b = st->ready[0].cond_b;
    ms->outs[nact] = st->in_b;
    ms->xs[nact] = st->ha_q;
    ms->act[nact++] = s;
  }
  for (i = 0; i < LPCNET_FRAME_SIZE && nact; i++) {
    if (ms->shared) { /* GRU A's recurrent sums of every stream, from the current states */
      if (m->ga_pidx)
        k->sparse_i8_accum_multi(ms->rec_a, 3 * na, m->ga_subias, 0, m->ga_pwq, m->ga_pidx, ng,
                                 ms->xe, ms->nstreams, NNET_I8_SCALE);
      else
        k->sparse_i8_accum_multi(ms->rec_a, 3 * na, m->ga_subias, 0, m->ga_wq, m->ga_idx, ng,
                                 ms->xe, ms->nstreams, NNET_I8_SCALE);
    }
    for (a = 0; a < nact; a++) {
      LPCNetSynthState *st = ms->st[ms->act[a]];
      ms->pred[a] = lpc_predict(st, st->ready[0].lpc);
      ms->code[a] = lin2ulaw(ms->pred[a]);
    }
    for (a = 0; a < nact; a++) {
      LPCNetSynthState *st = ms->st[ms->act[a]];
      gru_a_step(st, ms->code[a]);
      if (ms->shared) nnet_expand_u8(ms->xe, st->ha_q, na, ms->act[a], ms->nstreams);
    }
    if (gb_shared) {
      for (a = 0; a < nact; a++) memcpy(ms->outs[a], ms->st[ms->act[a]]->cond_b, sizeof(float) * 3 * m->nb);
      k->dense_i8_accum_multi(ms->outs, m->gb_dense_q, na / NNET_BLOCK_ROWS, nb3g, nb3g, ms->xs,
                              nact, NNET_I8_SCALE);
    } else {
      for (a = 0; a < nact; a++) gru_b_input(ms->st[ms->act[a]]);
    }
    for (a = 0; a < nact; a++) gru_b_rest(ms->st[ms->act[a]]);
    if (tree) { /* as draw_code(): the first subtree of every stream, then the second */
      for (a = 0; a < nact; a++) {
        LPCNetSynthState *st = ms->st[ms->act[a]];
        draw_thresholds(st, ms->thr + 8 * a);
        ms->code[a] = k->tree4(m->tree_t, st->hb, st->ready[0].gain, ms->thr + 8 * a);
        ga_chunk(st);
        ga_chunk(st);
        ga_chunk(st);
      }
      for (a = 0; a < nact; a++) {
        LPCNetSynthState *st = ms->st[ms->act[a]];
        const int v = ms->code[a];
        ms->code[a] = 16 * v + k->tree4(m->tree_t + (size_t)(1 + v) * NNET_TREE_STRIDE, st->hb,
                                        st->ready[0].gain, ms->thr + 8 * a + 4);
      }
    } else {
      for (a = 0; a < nact; a++) {
        LPCNetSynthState *st = ms->st[ms->act[a]];
        ms->code[a] = draw_code(st, st->ready[0].gain);
      }
    }
    for (a = 0; a < nact; a++)
      out[(size_t)ms->act[a] * LPCNET_FRAME_SIZE + i] =
          sample_finish(ms->st[ms->act[a]], ms->pred[a], ms->code[a]);
  }
  for (a = 0; a < nact; a++) {
    ms->st[ms->act[a]]->nready = 0;
    nout[ms->act[a]] = LPCNET_FRAME_SIZE;
  }
}

long lpcnet_synth_multi_step(LPCNetSynthMulti *ms, int nsteps, const float *features,
                             const int8_t *cmd, int16_t *out, int16_t *nout) {
  const int K = ms->nstreams;
  long done = 0;
  int step, s, n;
  for (step = 0; step < nsteps; step++)
    for (s = 0; s < K; s++)
      if (cmd[(size_t)step * K + s] < LPCNET_SYNTH_IDLE || cmd[(size_t)step * K + s] > LPCNET_SYNTH_END)
        return -1;
  {
    FTZ_BEGIN;
    for (step = 0; step < nsteps; step++) {
      const int8_t *c = cmd + (size_t)step * K;
      for (s = 0, n = 0; s < K; s++) {
        if (c[s] == LPCNET_SYNTH_IDLE) continue;
        ms->calls[n].st = ms->st[s];
        ms->calls[n++].features =
            c[s] == LPCNET_SYNTH_FEED ? features + ((size_t)step * K + s) * LPCNET_NB_TOTAL_FEATURES : NULL;
      }
      if (n) frame_network(&ms->fw, ms->calls, n);
      multi_samples(ms, out + (size_t)step * K * LPCNET_FRAME_SIZE, nout + (size_t)step * K);
      for (s = 0; s < K; s++) done += nout[(size_t)step * K + s];
    }
    FTZ_END;
  }
  return done;
}
