/* Reader of the weight blob (docs/weights-format.md).
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#include "blob.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nnet.h"

static void verror(char *err, size_t errlen, const char *fmt, va_list ap) {
  if (err && errlen) vsnprintf(err, errlen, fmt, ap);
}

void blob_error(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(err, errlen, fmt, ap);
  va_end(ap);
}

void blob_fail(Blob *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(b->err, b->errlen, fmt, ap);
  va_end(ap);
  b->failed = 1;
}

uint32_t blob_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t blob_u64(const unsigned char *p) {
  return (uint64_t)blob_u32(p) | (uint64_t)blob_u32(p + 4) << 32;
}

/* CRC-32 of the zlib polynomial. */
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

int blob_check(const unsigned char *raw, size_t len, char *err, size_t errlen) {
  const uint16_t one = 1;
  if (*(const unsigned char *)&one != 1) {
    blob_error(err, errlen, "weight blob: big-endian hosts are not supported");
    return -1;
  }
  if (!raw || len < BLOB_HEADER_SIZE + 4) {
    blob_error(err, errlen, "weight blob: %lu bytes, too short", (unsigned long)len);
    return -1;
  }
  if (memcmp(raw, "LPCNWGT\0", 8) != 0) {
    blob_error(err, errlen, "not an LPCNet weight blob (bad magic; use `lpcnet export`)");
    return -1;
  }
  {
    const uint32_t version = blob_u32(raw + 8), flags = blob_u32(raw + 12);
    const uint32_t known = version == 1 ? BLOB_FLAG_INT8 : BLOB_FLAG_INT8 | BLOB_FLAG_END2END;
    if (version < 1 || version > BLOB_VERSION) {
      blob_error(err, errlen, "weight blob version %u is not supported (expected 1 to %d)", version,
                 BLOB_VERSION);
      return -1;
    }
    if (crc32_calc(raw, len - 4) != blob_u32(raw + len - 4)) {
      blob_error(err, errlen, "weight blob is truncated or corrupt (CRC mismatch)");
      return -1;
    }
    if (flags & ~known) {
      blob_error(err, errlen, "weight blob version %u with unknown flags 0x%x", version, flags);
      return -1;
    }
  }
  return 0;
}

int blob_open(Blob *b, const unsigned char *raw, size_t len, char *err, size_t errlen) {
  b->base = raw;
  b->body = len - 4;
  b->count = blob_u32(raw + 48);
  b->err = err;
  b->errlen = errlen;
  b->failed = 0;
  if ((size_t)b->count > (b->body - BLOB_HEADER_SIZE) / BLOB_ENTRY_SIZE) {
    blob_fail(b, "weight blob: tensor table runs past the end");
    return -1;
  }
  return 0;
}

const void *blob_find(Blob *b, const char *name, uint32_t dtype, int ndim, const long *d,
                      long *nelem, int optional) {
  uint32_t i;
  int j;
  if (b->failed) return NULL;
  for (i = 0; i < b->count; i++) {
    const unsigned char *e = b->base + BLOB_HEADER_SIZE + (size_t)i * BLOB_ENTRY_SIZE;
    char tname[BLOB_NAME_LEN + 1];
    uint64_t off, nbytes, n = 1;
    memcpy(tname, e, BLOB_NAME_LEN);
    tname[BLOB_NAME_LEN] = 0;
    if (strcmp(tname, name) != 0) continue;
    off = blob_u64(e + 56);
    nbytes = blob_u64(e + 64);
    if (blob_u32(e + 32) != dtype || blob_u32(e + 36) != (uint32_t)ndim) break;
    for (j = 0; j < ndim; j++) {
      uint32_t dim = blob_u32(e + 40 + 4 * j);
      if (d[j] >= 0 && (long)dim != d[j]) goto bad;
      n *= dim;
    }
    if (n * (dtype == BLOB_I8 ? 1 : 4) != nbytes || off % BLOB_ALIGN || off > b->body ||
        nbytes > b->body - off)
      goto bad;
    if (nelem) *nelem = (long)n;
    return b->base + off;
  }
  if (optional) return NULL;
bad:
  blob_fail(b, "weight blob: tensor '%s' missing or of the wrong type/shape", name);
  return NULL;
}

int blob_check_idx(const int32_t *idx, long len, int ngroups, int rows, long nblocks) {
  long pos = 0, total = 0;
  int g, k;
  for (g = 0; g < ngroups; g++) {
    int32_t c;
    if (pos >= len) return -1;
    c = idx[pos++];
    if (c < 0 || c > rows / NNET_BLOCK_ROWS || pos + c > len) return -1;
    for (k = 0; k < c; k++) {
      int32_t r = idx[pos++];
      if (r < 0 || r % NNET_BLOCK_ROWS || r > rows - NNET_BLOCK_ROWS) return -1;
    }
    total += c;
  }
  return (pos == len && total == nblocks) ? 0 : -1;
}
