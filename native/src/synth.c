/* LPCNet native synthesis: weight-blob loader, frame-rate network, per-sample
 * decoder (sparse GRU A, GRU B, dual FC, binary-tree sampling) and de-emphasis.
 * Semantics follow the kit's Keras reference engine (lpcnet/synth.py), i.e. spec
 * E.1 with bugs G.10 / G.12 fixed, and the sampling rule of spec E.3 (X2).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define SYNTH_X86 1
#endif

#include "freq.h"
#include "lpcnet_synth.h"
#include "nnet.h"

#define NB_TOTAL 36
#define NB_FEAT 20
#define FRAME 160
#define LEVELS 256
#define ORDER 16
#define PITCH_IDX 18
#define CORR_IDX 19
#define LPC_IDX 20
#define HEADER_SIZE 52
#define ENTRY_SIZE 72
#define NAME_LEN 32
#define ALIGN 64

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
  /* dual FC regrouped for tree4 (16 GRU B units only; owned, NULL otherwise): subtree 0 is
   * rooted at node 1 (levels 0-3), subtree 1 + p at node 16 + p (levels 4-7) */
  float *tree_t;
  FreqTables freq;
};

struct LPCNetSynthState {
  const LPCNetSynthModel *m;
  const NNetKernels *k;
  int flags;
  uint64_t seed, counter;
  long calls, nin, t;
  float feat_ring[3][NB_TOTAL];
  float *conv1_mem, *conv2_mem, *x1, *c1, *c2, *d1, *cfeat;
  float *cond_a, *cond_b, *ha, *hb, *rec_a, *in_b, *rec_b;
  uint8_t *ha_q;
  int next_chunk; /* pieces of GRU A's next recurrent product already in rec_a */
  double hist[ORDER], deemph;
  int sig, exc;
  float *probs;
  const uint8_t *forced;
};

/* Per-section cycle counts of the per-sample loop (build with -DSYNTH_PROFILE; development only). */
#if defined(SYNTH_PROFILE) && defined(SYNTH_X86)
#include <x86intrin.h>
unsigned long long synth_prof[8];
#define PROF_START unsigned long long prof_t_ = __rdtsc()
#define PROF(k) do { unsigned long long t_ = __rdtsc(); synth_prof[k] += t_ - prof_t_; prof_t_ = t_; } while (0)
#else
#define PROF_START
#define PROF(k)
#endif

static int g_level = -1;
static double g_ulaw2lin[LEVELS];
/* g_ulaw_edge[j]: |x| at which the exact mu-law value u crosses j + 0.5 (j < 128), then +inf */
static double g_ulaw_edge[LEVELS];
static float g_thresh[LEVELS], g_logit[LEVELS];
static int g_tables_ready = 0;

/* ---- mu-law (spec A.6, exact: natural log, round half to even) ---------------- */
static int lin2ulaw_exact(double x) {
  double u = 128.0 * log1p(fabs(x) * (255.0 / 32768.0)) / log(256.0);
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
    double v = (32768.0 / 255.0) * expm1(fabs(d) / 128.0 * log(256.0));
    g_ulaw2lin[i] = d < 0 ? -v : (d > 0 ? v : 0.0);
    /* bit probability clamp of spec E.3 (X2): threshold in [0.025, 0.975] */
    g_thresh[i] = 0.025f + 0.95f * (float)i / 255.f;
    /* sigmoid(x) > t  <=>  x > logit(t): no sigmoid on the sampling path */
    g_logit[i] = (float)log((double)g_thresh[i] / (1.0 - (double)g_thresh[i]));
    g_ulaw_edge[i] = i < 128 ? (32768.0 / 255.0) * expm1((i + 0.5) / 128.0 * log(256.0)) : HUGE_VAL;
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

/* ---- blob parsing --------------------------------------------------------------- */
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || !errlen) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static uint32_t rd32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint32_t crc32_calc(const unsigned char *p, size_t n) {
  static uint32_t table[256];
  static int ready = 0;
  uint32_t c = 0xFFFFFFFFu;
  size_t i;
  if (!ready) {
    uint32_t k, v;
    int j;
    for (k = 0; k < 256; k++) {
      v = k;
      for (j = 0; j < 8; j++) v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
      table[k] = v;
    }
    ready = 1;
  }
  for (i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

typedef struct {
  const unsigned char *base;
  size_t body;
  uint32_t count;
  char *err;
  size_t errlen;
  int failed;
} Parser;

/* Find tensor `name` of dtype code with ndim dims equal to d[] (-1 = any); NULL + error if not. */
static const void *find(Parser *p, const char *name, uint32_t dtype, int ndim, const long *d,
                        long *nelem, int optional) {
  uint32_t i;
  int j;
  if (p->failed) return NULL;
  for (i = 0; i < p->count; i++) {
    const unsigned char *e = p->base + HEADER_SIZE + (size_t)i * ENTRY_SIZE;
    char tname[NAME_LEN + 1];
    uint32_t code, nd;
    uint64_t off, nbytes, n = 1;
    memcpy(tname, e, NAME_LEN);
    tname[NAME_LEN] = 0;
    if (strcmp(tname, name) != 0) continue;
    code = rd32(e + 32);
    nd = rd32(e + 36);
    off = rd64(e + 56);
    nbytes = rd64(e + 64);
    if (code != dtype || nd != (uint32_t)ndim) break;
    for (j = 0; j < ndim; j++) {
      uint32_t dim = rd32(e + 40 + 4 * j);
      if (d[j] >= 0 && (long)dim != d[j]) goto bad;
      n *= dim;
    }
    if (n * (dtype == 1 ? 1 : 4) != nbytes || off % ALIGN || off > p->body || nbytes > p->body - off)
      goto bad;
    if (nelem) *nelem = (long)n;
    return p->base + off;
  }
  if (optional) return NULL;
bad:
  set_err(p->err, p->errlen, "weight blob: tensor '%s' missing or of the wrong type/shape", name);
  p->failed = 1;
  return NULL;
}

#define D1(a) ((const long[]){(a)})
#define D2(a, b) ((const long[]){(a), (b)})
#define D3(a, b, c) ((const long[]){(a), (b), (c)})

/* Index list: per group of 8 outputs a count then row starts (multiples of 4 < rows). */
static int check_idx(const int32_t *idx, long len, int ngroups, int rows, long nblocks) {
  long pos = 0, total = 0;
  int g, b;
  for (g = 0; g < ngroups; g++) {
    int32_t c;
    if (pos >= len) return -1;
    c = idx[pos++];
    if (c < 0 || c > rows / NNET_BLOCK_ROWS || pos + c > len) return -1;
    for (b = 0; b < c; b++) {
      int32_t r = idx[pos++];
      if (r < 0 || r % NNET_BLOCK_ROWS || r > rows - NNET_BLOCK_ROWS) return -1;
    }
    total += c;
  }
  return (pos == len && total == nblocks) ? 0 : -1;
}

static Dense dense(Parser *p, const char *wname, const char *bname, int rows, int cols) {
  Dense d;
  d.w = find(p, wname, 0, 2, D2(rows, cols), NULL, 0);
  d.b = find(p, bname, 0, 1, D1(cols), NULL, 0);
  d.rows = rows;
  d.cols = cols;
  return d;
}

static int load_sparse(Parser *p, const char *iname, const char *wname, const char *qname,
                       int rows, int cols, int want_q, const int32_t **idx, const float **w,
                       const int8_t **wq) {
  long nidx = 0, nblk = 0, nq = 0;
  *idx = find(p, iname, 2, 1, D1(-1), &nidx, 0);
  *w = find(p, wname, 0, 3, D3(-1, NNET_BLOCK_ROWS, NNET_BLOCK_COLS), &nblk, 0);
  if (p->failed) return -1;
  nblk /= NNET_BLOCK_ROWS * NNET_BLOCK_COLS;
  if (check_idx(*idx, nidx, cols / NNET_BLOCK_COLS, rows, nblk)) {
    set_err(p->err, p->errlen, "weight blob: block index list '%s' is inconsistent", iname);
    p->failed = 1;
    return -1;
  }
  if (want_q) {
    *wq = find(p, qname, 1, 3, D3(nblk, NNET_BLOCK_COLS, NNET_BLOCK_ROWS), &nq, 0);
    if (p->failed) return -1;
  }
  return 0;
}

/* If every 4x8 block of GRU B's input matrix is stored (in row order), keep a dense
 * int8 copy: a dense product reuses each input broadcast across all outputs. (A dense
 * float copy brings nothing: that product is bound by FMA throughput either way.) */
static void repack_dense_gru_b(LPCNetSynthModel *m) {
  const int rq = m->na / NNET_BLOCK_ROWS, ng = 3 * m->nb / NNET_BLOCK_COLS;
  const int32_t *idx = m->gb_idx;
  int g, r;
  for (g = 0; g < ng; g++) {
    if (*idx++ != rq) return;
    for (r = 0; r < rq; r++)
      if (*idx++ != NNET_BLOCK_ROWS * r) return;
  }
  if (m->gb_wq) {
    m->gb_dense_q = malloc((size_t)m->na * 3 * m->nb);
    if (!m->gb_dense_q) return;
    for (g = 0; g < ng; g++)
      for (r = 0; r < rq; r++)
        memcpy(m->gb_dense_q + ((size_t)r * ng + g) * 32, m->gb_wq + ((size_t)g * rq + r) * 32, 32);
  }
}

/* The padded int8 copy of GRU A's recurrent blocks (ga_pidx); absent on failure. */
static void pad_gru_a(LPCNetSynthModel *m, int ngroups) {
  long pos = 0, n = 0, b = 0, pb = 0;
  int g, c = 1, j;
  int32_t *pi;
  int8_t *pw;
  for (g = 0; g < ngroups; g++) {
    const int cnt = m->ga_idx[pos];
    n += cnt < 2 ? 2 : cnt + (cnt & 1);
    pos += 1 + cnt;
  }
  m->ga_pidx = malloc(sizeof(int32_t) * (size_t)(n + ngroups));
  m->ga_pwq = malloc((size_t)32 * n);
  if (!m->ga_pidx || !m->ga_pwq) {
    free(m->ga_pidx), free(m->ga_pwq);
    m->ga_pidx = NULL, m->ga_pwq = NULL;
    return;
  }
  pi = m->ga_pidx, pw = m->ga_pwq;
  m->ga_pci[0] = m->ga_pcb[0] = 0;
  for (pos = 0, g = 0; g < ngroups; g++) {
    const int cnt = m->ga_idx[pos], pc = cnt < 2 ? 2 : cnt + (cnt & 1);
    *pi++ = pc;
    for (j = 0; j < pc; j++) *pi++ = j < cnt ? m->ga_idx[pos + 1 + j] : 0;
    memcpy(pw, m->ga_wq + 32 * b, (size_t)32 * cnt);
    memset(pw + 32 * cnt, 0, (size_t)32 * (pc - cnt));
    pw += 32 * pc, b += cnt, pb += pc, pos += 1 + cnt;
    while (c <= GA_CHUNKS && m->ga_cg[c] == g + 1) m->ga_pci[c] = pi - m->ga_pidx, m->ga_pcb[c] = pb, c++;
  }
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

/* Tables of the 17 four-level subtrees of the sampling tree (layout: nnet.h, tree4). */
static void build_tree_tables(LPCNetSynthModel *m) {
  const int nb = m->nb;
  int s, h, i, c;
  if (nb != 16) return;
  if (posix_memalign((void **)&m->tree_t, ALIGN, sizeof(float) * 17 * NNET_TREE_STRIDE)) {
    m->tree_t = NULL;
    return;
  }
  memset(m->tree_t, 0, sizeof(float) * 17 * NNET_TREE_STRIDE);
  for (s = 0; s < 17; s++) {
    float *t = m->tree_t + (size_t)s * NNET_TREE_STRIDE;
    const int root = s == 0 ? 1 : 16 + (s - 1);
    for (h = 1; h < 16; h++) {
      const int l = h >= 8 ? 3 : (h >= 4 ? 2 : (h >= 2 ? 1 : 0));
      const int u = (root << l) + (h - (1 << l));
      for (c = 0; c < 2; c++) {
        const int lane = 16 * c + h - 1;
        for (i = 0; i < nb; i++) t[32 * i + lane] = m->md_w[((size_t)u * 2 + c) * nb + i];
        t[32 * 16 + lane] = m->md_b[2 * u + c];
        t[32 * 17 + lane] = m->md_f[2 * u + c];
      }
    }
  }
}

LPCNetSynthModel *lpcnet_synth_model_load(const void *data, size_t len, char *err, size_t errlen) {
  const unsigned char *raw = data;
  LPCNetSynthModel *m;
  Parser p;
  uint32_t sizes[8], flags, i;
  int na, nb, cond, e, pe, in1;
  const uint16_t one = 1;

  init_tables();
  if (*(const unsigned char *)&one != 1) {
    set_err(err, errlen, "weight blob: big-endian hosts are not supported");
    return NULL;
  }
  if (!raw || len < HEADER_SIZE + 4) {
    set_err(err, errlen, "weight blob: %lu bytes, too short", (unsigned long)len);
    return NULL;
  }
  if (memcmp(raw, "LPCNWGT\0", 8) != 0) {
    set_err(err, errlen, "not an LPCNet weight blob (bad magic; use `lpcnet export`)");
    return NULL;
  }
  if (rd32(raw + 8) != 1) {
    set_err(err, errlen, "weight blob version %u is not supported (expected 1)", rd32(raw + 8));
    return NULL;
  }
  if (crc32_calc(raw, len - 4) != rd32(raw + len - 4)) {
    set_err(err, errlen, "weight blob is truncated or corrupt (CRC mismatch)");
    return NULL;
  }
  flags = rd32(raw + 12);
  for (i = 0; i < 8; i++) sizes[i] = rd32(raw + 16 + 4 * i);
  na = (int)sizes[0], nb = (int)sizes[1], cond = (int)sizes[2], e = (int)sizes[4], pe = (int)sizes[5];
  if (sizes[0] < 8 || sizes[0] > 2048 || na % 8 || sizes[1] < 8 || sizes[1] > 512 || nb % 8 ||
      sizes[2] < 1 || sizes[2] > 1024 || sizes[3] != NB_FEAT || sizes[4] < 1 || sizes[4] > 1024 ||
      sizes[5] < 1 || sizes[5] > 1024 || sizes[6] != FRAME || sizes[7] != LEVELS) {
    set_err(err, errlen, "weight blob: unsupported model sizes");
    return NULL;
  }
  p.count = rd32(raw + 48);
  p.body = len - 4;
  if ((size_t)p.count > (p.body - HEADER_SIZE) / ENTRY_SIZE) {
    set_err(err, errlen, "weight blob: tensor table runs past the end");
    return NULL;
  }
  m = calloc(1, sizeof(*m));
  if (!m) return NULL;
  m->len = (len + ALIGN - 1) / ALIGN * ALIGN;
  if (posix_memalign((void **)&m->mem, ALIGN, m->len)) m->mem = NULL;
  if (!m->mem) {
    free(m);
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  memcpy(m->mem, raw, len);
  p.base = m->mem;
  p.err = err;
  p.errlen = errlen;
  p.failed = 0;
  m->na = na, m->nb = nb, m->cond = cond, m->embed = e, m->pembed = pe;
  m->has_int8 = (flags & 1) != 0;
  in1 = NB_FEAT + pe;
  m->embed_pitch = find(&p, "embed_pitch", 0, 2, D2(256, pe), NULL, 0);
  m->conv1 = dense(&p, "conv1_w", "conv1_b", 3 * in1, cond);
  m->conv2 = dense(&p, "conv2_w", "conv2_b", 3 * cond, cond);
  m->dense1 = dense(&p, "dense1_w", "dense1_b", cond, cond);
  m->dense2 = dense(&p, "dense2_w", "dense2_b", cond, cond);
  m->ga_embed = find(&p, "gru_a_embed", 0, 3, D3(3, LEVELS, 3 * na), NULL, 0);
  m->ga_cond = dense(&p, "gru_a_cond_w", "gru_a_cond_b", cond, 3 * na);
  m->ga_rbias = find(&p, "gru_a_rbias", 0, 1, D1(3 * na), NULL, 0);
  m->ga_diag = find(&p, "gru_a_diag", 0, 2, D2(3, na), NULL, 0);
  load_sparse(&p, "gru_a_rec_idx", "gru_a_rec_w", "gru_a_rec_wq", na, 3 * na, m->has_int8,
              &m->ga_idx, &m->ga_w, &m->ga_wq);
  m->gb_cond = dense(&p, "gru_b_cond_w", "gru_b_cond_b", cond, 3 * nb);
  load_sparse(&p, "gru_b_in_idx", "gru_b_in_w", "gru_b_in_wq", na, 3 * nb, m->has_int8, &m->gb_idx,
              &m->gb_w, &m->gb_wq);
  m->gb_rec_w = find(&p, "gru_b_rec_w", 0, 2, D2(nb, 3 * nb), NULL, 0);
  m->gb_rbias = find(&p, "gru_b_rbias", 0, 1, D1(3 * nb), NULL, 0);
  if (m->has_int8) {
    m->ga_subias = find(&p, "gru_a_subias", 0, 1, D1(3 * na), NULL, 0);
    m->gb_in_subias = find(&p, "gru_b_in_subias", 0, 1, D1(3 * nb), NULL, 0);
  }
  m->md_w = find(&p, "md_w", 0, 3, D3(LEVELS, 2, nb), NULL, 0);
  m->md_b = find(&p, "md_b", 0, 2, D2(LEVELS, 2), NULL, 0);
  m->md_f = find(&p, "md_f", 0, 2, D2(LEVELS, 2), NULL, 0);
  if (p.failed) {
    lpcnet_synth_model_free(m);
    return NULL;
  }
  freq_init(&m->freq);
  repack_dense_gru_b(m);
  chunk_gru_a(m, 3 * na / NNET_BLOCK_COLS);
  if (m->ga_wq) pad_gru_a(m, 3 * na / NNET_BLOCK_COLS);
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
                                st->ha_q, 1.f / (128.f * 127.f));
  else
    st->k->sparse_i8_accum(st->rec_a + 8 * g0, m->ga_subias + 8 * g0, m->ga_wq + 32 * m->ga_cb[c],
                           m->ga_idx + m->ga_ci[c], ng, st->ha_q, 1.f / (128.f * 127.f));
}

/* One output sample (spec E.1 steps b-g with the E.3 sampling rule). */
static int16_t sample_step(LPCNetSynthState *st, const float *lpc, float gain) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  const int na = m->na, nb = m->nb, int8 = st->flags & LPCNET_SYNTH_INT8;
  const float *e0, *e1, *e2;
  double pred = 0.0, pcm, y;
  int i, b, pred_code, v = 0;
  PROF_START;

  for (i = 0; i < ORDER; i++) pred -= (double)lpc[i] * st->hist[i];
  pred_code = lin2ulaw(pred);

  /* GRU A: input = frame conditioning + three embedding-table rows (speech keeps to a
   * few hundred of the 768 rows, which stay in L2: explicit prefetching brought nothing) */
  e0 = m->ga_embed + (size_t)st->sig * 3 * na;
  e1 = m->ga_embed + ((size_t)LEVELS + pred_code) * 3 * na;
  e2 = m->ga_embed + ((size_t)2 * LEVELS + st->exc) * 3 * na;
  PROF(0);
  while (st->next_chunk < GA_CHUNKS) ga_chunk(st); /* what is left of the product */
  PROF(1);
  if (int8 && k->gru_update_fast) {
    k->gru_update_fast(st->ha, st->cond_a, e0, e1, e2, st->rec_a, m->ga_diag, na, st->ha_q);
  } else {
    k->gru_update(st->ha, st->cond_a, e0, e1, e2, st->rec_a, m->ga_diag, na);
    if (int8) k->quantize_u8(st->ha_q, st->ha, na);
  }
  st->next_chunk = 0; /* rec_a consumed: start on the next sample's product */
  PROF(2);

  /* GRU B: input = GRU A state (block matrix) + frame conditioning */
  memcpy(st->in_b, st->cond_b, sizeof(float) * 3 * nb);
  if (int8) {
    /* ha_q: the quantised new state (made with the update above) */
    if (m->gb_dense_q && k->dense_i8_accum)
      k->dense_i8_accum(st->in_b, m->gb_dense_q, na / 4, 3 * nb / 8, st->ha_q, 1.f / (128.f * 127.f));
    else
      k->sparse_i8_accum(st->in_b, NULL, m->gb_wq, m->gb_idx, 3 * nb / 8, st->ha_q,
                         1.f / (128.f * 127.f));
  } else {
    k->sparse_sgemv_accum(st->in_b, NULL, m->gb_w, m->gb_idx, 3 * nb / 8, st->ha);
  }
  ga_chunk(st);
  PROF(3);
  memcpy(st->rec_b, m->gb_rbias, sizeof(float) * 3 * nb);
  k->sgemv_accum(st->rec_b, m->gb_rec_w, nb, 3 * nb, st->hb);
  if (int8 && k->gru_update_fast)
    k->gru_update_fast(st->hb, st->in_b, NULL, NULL, NULL, st->rec_b, NULL, nb, NULL);
  else
    k->gru_update(st->hb, st->in_b, NULL, NULL, NULL, st->rec_b, NULL, nb);
  ga_chunk(st);
  PROF(4);
  if (st->probs) mdense_all(st, st->hb, st->probs + st->t * LEVELS);

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
    v = 16 * v + k->tree4(m->tree_t + (size_t)(1 + v) * NNET_TREE_STRIDE, st->hb, gain, thr + 4);
  } else {
    /* binary tree, MSB first: node 2^b + bits so far (spec C.5). Two levels per step:
     * the node and both of its children are evaluated together (shorter dependency chain). */
    for (b = 0; b < 8; b += 2) {
      int units[3], bit;
      float x[3];
      units[0] = (1 << b) + v;
      units[1] = (1 << (b + 1)) + 2 * v;
      units[2] = units[1] + 1;
      k->mdense_units(m->md_w, m->md_b, m->md_f, st->hb, nb, units, 3, x);
      bit = bit_of(st, gain * x[0], (int)(rng_next(st) >> 56));
      v = 2 * v + bit;
      v = 2 * v + bit_of(st, gain * x[1 + bit], (int)(rng_next(st) >> 56));
      if (b < 6) ga_chunk(st); /* the last piece waits for the next sample's LPC prediction */
    }
  }
  PROF(5);
  if (st->forced) v = st->forced[st->t];
  st->exc = v;
  pcm = pred + g_ulaw2lin[v];
  st->sig = lin2ulaw(pcm);
  memmove(st->hist + 1, st->hist, sizeof(double) * (ORDER - 1));
  st->hist[0] = pcm;
  st->deemph = 0.85 * st->deemph + pcm;
  y = nearbyint(st->deemph);
  if (y != y) y = 0.0; /* non-finite features (C callers): no undefined conversion */
  PROF(6);
  st->t++;
  return (int16_t)(y > 32767.0 ? 32767 : (y < -32768.0 ? -32768 : y));
}

/* One call of the frame-rate network; decodes frame calls-2 when it exists. */
static int frame_step(LPCNetSynthState *st, const float *features, int16_t *out) {
  const LPCNetSynthModel *m = st->m;
  const NNetKernels *k = st->k;
  const int in1 = NB_FEAT + m->pembed, cond = m->cond;
  const long n = st->calls++;
  const long j = n - 2;
  float x3[3 * 1024 + 3 * NB_FEAT];
  const float *f;
  float lpc[ORDER], gain = 1.f;
  int i;

  if (features) {
    double p = floor(0.1 + 50.0 * (double)features[PITCH_IDX] + 100.0); /* spec A.4 */
    int period = !(p >= 33.0) ? 33 : (p > 255.0 ? 255 : (int)p); /* also catches NaN */
    memcpy(st->x1, features, sizeof(float) * NB_FEAT);
    memcpy(st->x1 + NB_FEAT, m->embed_pitch + (size_t)period * m->pembed, sizeof(float) * m->pembed);
    memcpy(st->feat_ring[n % 3], features, sizeof(float) * NB_TOTAL);
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
  if (j < 0 || j >= st->nin) return 0;
  dense_tanh(k, &m->conv2, st->c2, x3);
  dense_tanh(k, &m->dense1, st->d1, st->c2);
  dense_tanh(k, &m->dense2, st->cfeat, st->d1);
  memcpy(st->cond_a, m->ga_cond.b, sizeof(float) * 3 * m->na);
  k->sgemv_accum(st->cond_a, m->ga_cond.w, cond, 3 * m->na, st->cfeat);
  memcpy(st->cond_b, (st->flags & LPCNET_SYNTH_INT8) ? m->gb_in_subias : m->gb_cond.b,
         sizeof(float) * 3 * m->nb);
  k->sgemv_accum(st->cond_b, m->gb_cond.w, cond, 3 * m->nb, st->cfeat);

  f = st->feat_ring[j % 3];
  if (st->flags & LPCNET_SYNTH_LPC_CEPSTRUM)
    lpc_from_cepstrum(&m->freq, f, lpc);
  else
    memcpy(lpc, f + LPC_IDX, sizeof(lpc));
  if (st->flags & LPCNET_SYNTH_SHARPEN) {
    /* raw pitch correlation is feature 19 + 0.5 (fixes spec G.12's offset) */
    float beta = 1.5f * (f[CORR_IDX] + 0.5f) - 0.5f;
    gain = 1.f + (beta > 0.f ? beta : 0.f);
  }
  for (i = 0; i < FRAME; i++) out[i] = sample_step(st, lpc, gain);
  return FRAME;
}

/* Denormals flushed to zero while synthesising (as TensorFlow does on CPU): avoids
 * slow micro-code assists in the GRU updates; the caller's mode is restored. */
#ifdef SYNTH_X86
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
    for (f = 0; f < nb_frames; f++) done += frame_step(st, features + f * NB_TOTAL, out + done);
    FTZ_END;
  }
  done += lpcnet_synth_flush(st, out + done);
  st->probs = NULL;
  st->forced = NULL;
  return done;
}
