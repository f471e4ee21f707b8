/* LPCNet native synthesis: model loading, frame-rate network, per-sample decoder (sparse
 * GRU A, GRU B, dual FC, binary-tree sampling) and de-emphasis. Semantics: those of the
 * kit's Keras reference engine (lpcnet/synth.py), described in docs/synthesis.md.
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
 * latency-bound rest of sample t (GRU B, the bit-by-bit sampling), so that the core
 * overlaps the two. Same arithmetic, same results. */
#define GA_CHUNKS 6

struct LPCNetSynthModel {
  unsigned char *mem;
  size_t len;
  int na, nb, cond, embed, pembed, has_int8;
  const float *embed_pitch;
  Dense conv1, conv2, dense1, dense2, ga_cond, gb_cond;
  const float *ga_embed, *ga_rbias, *ga_subias, *ga_diag, *ga_w;
  const int32_t *ga_idx;
  const int8_t *ga_wq;
  const float *gb_in_subias, *gb_w, *gb_rec_w, *gb_rbias;
  const int32_t *gb_idx;
  const int8_t *gb_wq;
  /* GRU B's input matrix is usually dense: int8 copy repacked at load (owned) */
  int8_t *gb_dense_q; /* (na/4, 3nb/8, 8, 4) */
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

/* The same code without a logarithm: |u| rounds to k = number of edges <= |x|, found by a
 * branch-free binary search. Where |x| is within 1e-9 (relative) of an edge, the rounding
 * of the formula itself decides: lin2ulaw_exact() (practically never taken). */
static int lin2ulaw(double x) {
  const double a = fabs(x);
  int k = 0, s;
  for (s = 128; s >= 1; s >>= 1) k += (g_ulaw_edge[k + s - 1] <= a) ? s : 0;
  k = k > 128 ? 128 : k; /* a = +inf passes the +inf padding too */
  /* k in [0, 128]: edge k-1 <= a < edge k (NaN: k = 0) */
  if ((k > 0 && a - g_ulaw_edge[k - 1] <= 1e-9 * g_ulaw_edge[k - 1]) ||
      (k < 128 && g_ulaw_edge[k] - a <= 1e-9 * g_ulaw_edge[k]))
    return lin2ulaw_exact(x);
  k = x < 0 ? -k : k;
  k += 128;
  return k > 255 ? 255 : k;
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
  m->has_int8 = (blob_u32(raw + 12) & 1) != 0;
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

/* If every 4x8 block of GRU B's input matrix is stored (in row order), keep a dense
 * int8 copy: a dense product reuses each input broadcast across all outputs. (A dense
 * float copy brings nothing: that product is bound by FMA throughput either way.) */
static void repack_dense_gru_b(LPCNetSynthModel *m) {
  const int rq = m->na / NNET_BLOCK_ROWS, ng = 3 * m->nb / NNET_BLOCK_COLS;
  if (!m->gb_wq || !nnet_blocks_are_dense(m->gb_idx, m->na, ng)) return;
  m->gb_dense_q = malloc((size_t)m->na * 3 * m->nb);
  if (m->gb_dense_q) nnet_dense_i8_from_blocks(m->gb_wq, rq, ng, m->gb_dense_q);
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
    while (k < GA_CHUNKS && b * GA_CHUNKS >= nblk * k) m->ga_cg[k] = g + 1, m->ga_ci[k] = pos, m->ga_cb[k] = b, k++;
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
  m->ga_pwq = malloc((size_t)NNET_BLOCK_SIZE * n);
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
  chunk_gru_a(m, 3 * m->na / NNET_BLOCK_COLS);
  if (m->ga_wq) pad_gru_a(m, 3 * m->na / NNET_BLOCK_COLS);
  build_tree_tables(m);
  return m;
}

void lpcnet_synth_model_free(LPCNetSynthModel *m) {
  if (!m) return;
  free(m->gb_dense_q);
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
}

/* ---- state -------------------------------------------------------------------- */
LPCNetSynthState *lpcnet_synth_create(const LPCNetSynthModel *m, int flags, uint64_t seed) {
  LPCNetSynthState *st;
  float *f;
  size_t nf;
  int in1;
  if (!m || ((flags & LPCNET_SYNTH_INT8) && !m->has_int8)) return NULL;
  init_tables();
  in1 = NB_FEAT + m->pembed;
  st = calloc(1, sizeof(*st));
  if (!st) return NULL;
  /* conv memories and layer outputs, conditioning tables, states, GRU sums (below) */
  nf = 3 * (size_t)in1 + 6 * (size_t)m->cond + 7 * (size_t)m->na + 10 * (size_t)m->nb;
  f = calloc(nf, sizeof(float));
  st->ha_q = malloc((size_t)m->na + 4);
  if (st->ha_q) memset(st->ha_q, 127, (size_t)m->na + 4); /* quantised zero state */
  if (!f || !st->ha_q) {
    free(f);
    free(st->ha_q);
    free(st);
    return NULL;
  }
  st->conv1_mem = f, f += 2 * in1;
  st->x1 = f, f += in1;
  st->conv2_mem = f, f += 2 * m->cond;
  st->c1 = f, f += m->cond;
  st->c2 = f, f += m->cond;
  st->d1 = f, f += m->cond;
  st->cfeat = f, f += m->cond;
  st->cond_a = f, f += 3 * m->na;
  st->cond_b = f, f += 3 * m->nb;
  st->ha = f, f += m->na;
  st->hb = f, f += m->nb;
  st->rec_a = f, f += 3 * m->na;
  st->in_b = f, f += 3 * m->nb;
  st->rec_b = f, f += 3 * m->nb;
  st->m = m;
  st->k = nnet_select(g_level);
  st->flags = flags;
  st->seed = seed;
  st->sig = st->exc = 128;
  return st;
}

void lpcnet_synth_destroy(LPCNetSynthState *st) {
  if (!st) return;
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
static void dense_tanh(const NNetKernels *k, const Dense *d, float *out, const float *x) {
  memcpy(out, d->b, sizeof(float) * d->cols);
  k->sgemv_accum(out, d->w, d->rows, d->cols, x);
  k->vec_tanh(out, out, d->cols);
}

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
  const int c = st->next_chunk, g0 = m->ga_cg[c], ng = m->ga_cg[c + 1] - g0;
  if (c >= GA_CHUNKS) return;
  st->next_chunk = c + 1;
  /* (the int8 products read ha_q, the quantised state made for GRU B) */
  if (!(st->flags & LPCNET_SYNTH_INT8))
    st->k->sparse_sgemv_accum(st->rec_a + 8 * g0, m->ga_rbias + 8 * g0, m->ga_w + 32 * m->ga_cb[c],
                              m->ga_idx + m->ga_ci[c], ng, st->ha);
  else if (m->ga_pidx && st->k->sparse_i8_accum_even)
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
  st->next_chunk = 0; /* rec_a consumed: start on the next sample's product */
}

/* GRU B on [GRU A state (block matrix), conditioning], with two pieces of GRU A's next
 * recurrent product in between. */
static void gru_b_step(LPCNetSynthState *st) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  const int na = m->na, nb = m->nb, int8 = st->flags & LPCNET_SYNTH_INT8;
  memcpy(st->in_b, st->cond_b, sizeof(float) * 3 * nb);
  if (int8) {
    /* ha_q: the quantised new state (made with GRU A's update) */
    if (m->gb_dense_q && k->dense_i8_accum)
      k->dense_i8_accum(st->in_b, m->gb_dense_q, na / NNET_BLOCK_ROWS, 3 * nb / NNET_BLOCK_COLS,
                        st->ha_q, NNET_I8_SCALE);
    else
      k->sparse_i8_accum(st->in_b, NULL, m->gb_wq, m->gb_idx, 3 * nb / NNET_BLOCK_COLS, st->ha_q,
                         NNET_I8_SCALE);
  } else {
    k->sparse_sgemv_accum(st->in_b, NULL, m->gb_w, m->gb_idx, 3 * nb / NNET_BLOCK_COLS, st->ha);
  }
  ga_chunk(st);
  memcpy(st->rec_b, m->gb_rbias, sizeof(float) * 3 * nb);
  k->sgemv_accum(st->rec_b, m->gb_rec_w, nb, 3 * nb, st->hb);
  if (int8 && k->gru_update_fast)
    k->gru_update_fast(st->hb, st->in_b, NULL, NULL, NULL, st->rec_b, NULL, nb, NULL);
  else
    k->gru_update(st->hb, st->in_b, NULL, NULL, NULL, st->rec_b, NULL, nb);
  ga_chunk(st);
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
    for (b = 0; b < 8; b++) {
      const int r = (int)(rng_next(st) >> 56);
      thr[b] = (st->flags & LPCNET_SYNTH_ARGMAX) ? 0.f : g_logit[r]; /* as bit_of() */
    }
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
    if (b < 6) ga_chunk(st); /* the last piece waits for the next sample's LPC prediction */
  }
  return v;
}

/* One output sample (docs/synthesis.md, "What both engines compute", step 3). */
static int16_t sample_step(LPCNetSynthState *st, const float *lpc, float gain) {
  double pred = 0.0, pcm, y;
  int i, v;
  for (i = 0; i < LPCNET_LPC_ORDER; i++) pred -= (double)lpc[i] * st->hist[i];
  gru_a_step(st, lin2ulaw(pred));
  gru_b_step(st);
  if (st->probs) mdense_all(st, st->hb, st->probs + st->t * LEVELS);
  v = draw_code(st, gain);
  if (st->forced) v = st->forced[st->t];
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

/* Frame-rate network for call n = st->calls - 1 (docs/synthesis.md, step 1): the conv
 * memories advance by one frame; when frame n - 2 exists, its conditioning sums of GRU A and
 * GRU B are computed and 1 is returned, else 0. features NULL: zero padding past the end. */
static int frame_network(LPCNetSynthState *st, const float *features, long n) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  const int in1 = NB_FEAT + m->pembed, cond = m->cond;
  float x3[3 * 1024 + 3 * NB_FEAT];
  if (features) {
    /* pitch-embedding index: the period of docs/formats.md, clamped to 33..255 */
    double p = floor(0.1 + 50.0 * (double)features[LPCNET_PITCH_INDEX] + 100.0);
    int period = !(p >= 33.0) ? 33 : (p > 255.0 ? 255 : (int)p); /* also catches NaN */
    memcpy(st->x1, features, sizeof(float) * NB_FEAT);
    memcpy(st->x1 + NB_FEAT, m->embed_pitch + (size_t)period * m->pembed, sizeof(float) * m->pembed);
    memcpy(st->feat_ring[n % 3], features, sizeof(float) * LPCNET_NB_TOTAL_FEATURES);
    st->nin++;
  } else {
    memset(st->x1, 0, sizeof(float) * in1); /* 'same' zero padding past the end */
  }
  /* conv1 output for frame n-1 from inputs n-2, n-1, n; zero padding outside 0..nin-1 */
  memcpy(x3, st->conv1_mem, sizeof(float) * 2 * in1);
  memcpy(x3 + 2 * in1, st->x1, sizeof(float) * in1);
  memmove(st->conv1_mem, st->conv1_mem + in1, sizeof(float) * in1);
  memcpy(st->conv1_mem + in1, st->x1, sizeof(float) * in1);
  if (n - 1 >= 0 && n - 1 < st->nin)
    dense_tanh(k, &m->conv1, st->c1, x3);
  else
    memset(st->c1, 0, sizeof(float) * cond);
  /* conv2 output for frame n-2 */
  memcpy(x3, st->conv2_mem, sizeof(float) * 2 * cond);
  memcpy(x3 + 2 * cond, st->c1, sizeof(float) * cond);
  memmove(st->conv2_mem, st->conv2_mem + cond, sizeof(float) * cond);
  memcpy(st->conv2_mem + cond, st->c1, sizeof(float) * cond);
  if (n - 2 < 0 || n - 2 >= st->nin) return 0;
  dense_tanh(k, &m->conv2, st->c2, x3);
  dense_tanh(k, &m->dense1, st->d1, st->c2);
  dense_tanh(k, &m->dense2, st->cfeat, st->d1);
  memcpy(st->cond_a, m->ga_cond.b, sizeof(float) * 3 * m->na);
  k->sgemv_accum(st->cond_a, m->ga_cond.w, cond, 3 * m->na, st->cfeat);
  memcpy(st->cond_b, (st->flags & LPCNET_SYNTH_INT8) ? m->gb_in_subias : m->gb_cond.b,
         sizeof(float) * 3 * m->nb);
  k->sgemv_accum(st->cond_b, m->gb_cond.w, cond, 3 * m->nb, st->cfeat);
  return 1;
}

/* One call: the frame-rate network, then the 160 samples of frame calls - 2 if it exists. */
static int frame_step(LPCNetSynthState *st, const float *features, int16_t *out) {
  const long n = st->calls++;
  const float *f;
  float lpc[LPCNET_LPC_ORDER], gain = 1.f;
  int i;
  if (!frame_network(st, features, n)) return 0;
  f = st->feat_ring[(n - 2) % 3];
  if (st->flags & LPCNET_SYNTH_LPC_CEPSTRUM)
    lpc_from_cepstrum(&st->m->freq, f, lpc);
  else
    memcpy(lpc, f + LPCNET_LPC_INDEX, sizeof(lpc));
  if (st->flags & LPCNET_SYNTH_SHARPEN) {
    /* the raw pitch correlation is feature 19 + 0.5 (docs/synthesis.md, --sharpen) */
    float beta = 1.5f * (f[LPCNET_PITCH_CORR_INDEX] + 0.5f) - 0.5f;
    gain = 1.f + (beta > 0.f ? beta : 0.f);
  }
  for (i = 0; i < LPCNET_FRAME_SIZE; i++) out[i] = sample_step(st, lpc, gain);
  return LPCNET_FRAME_SIZE;
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
  int n;
  FTZ_BEGIN;
  n = frame_step(st, features, out);
  FTZ_END;
  return n;
}

int lpcnet_synth_flush(LPCNetSynthState *st, int16_t *out) {
  int done = 0, i;
  FTZ_BEGIN;
  for (i = 0; i < LPCNET_SYNTH_DELAY_FRAMES; i++) done += frame_step(st, NULL, out + done);
  FTZ_END;
  return done;
}

long lpcnet_synth_run(LPCNetSynthState *st, const float *features, long nb_frames, int16_t *out,
                      float *probs, const uint8_t *forced) {
  long f, done = 0;
  if (st->calls != 0 || nb_frames < 0) return -1;
  st->probs = probs;
  st->forced = forced;
  {
    FTZ_BEGIN;
    for (f = 0; f < nb_frames; f++)
      done += frame_step(st, features + f * LPCNET_NB_TOTAL_FEATURES, out + done);
    FTZ_END;
  }
  done += lpcnet_synth_flush(st, out + done);
  st->probs = NULL;
  st->forced = NULL;
  return done;
}
