/* Reader of the weight blob (docs/weights-format.md): header checks and tensor lookup.
 * Copyright (c) 2026 the LPCNet kit authors. BSD-3-Clause. */
#ifndef LPCNET_BLOB_H
#define LPCNET_BLOB_H

#include <stddef.h>
#include <stdint.h>

/* Versions read: 2 (written by `lpcnet export`) and 1 (the same layout before FLAG_END2END) */
#define BLOB_VERSION 2
/* header flags (bytes 12..15) */
#define BLOB_FLAG_INT8 1    /* int8 copies of the block matrices present */
#define BLOB_FLAG_END2END 2 /* end-to-end model: LPC from the conditioning (version 2 on) */
#define BLOB_HEADER_SIZE 52
#define BLOB_ENTRY_SIZE 72
#define BLOB_NAME_LEN 32
#define BLOB_ALIGN 64
/* tensor dtype codes */
#define BLOB_F32 0
#define BLOB_I8 1
#define BLOB_I32 2

/* Dimension lists of blob_find (-1 = any) */
#define D1(a) ((const long[]){(a)})
#define D2(a, b) ((const long[]){(a), (b)})
#define D3(a, b, c) ((const long[]){(a), (b), (c)})

/** A blob being read; the first failure sets `failed` and a one-line message in err. */
typedef struct {
  const unsigned char *base;
  size_t body; /* bytes before the CRC */
  uint32_t count;
  char *err;
  size_t errlen;
  int failed;
} Blob;

uint32_t blob_u32(const unsigned char *p);

/** Check length, magic, version, the flags the version may set and CRC of len bytes at raw;
 * 0, or -1 with err set. */
int blob_check(const unsigned char *raw, size_t len, char *err, size_t errlen);

/** Start reading a checked blob (its tensor table must lie inside it); 0, or -1 with err set. */
int blob_open(Blob *b, const unsigned char *raw, size_t len, char *err, size_t errlen);

/** Tensor `name` of the dtype code with ndim dims equal to d[] (-1 = any): its data and, if
 * nelem is not NULL, its element count. NULL (and b->failed, unless optional) if absent or
 * of another type, shape, alignment or extent. */
const void *blob_find(Blob *b, const char *name, uint32_t dtype, int ndim, const long *d,
                      long *nelem, int optional);

/** Write a one-line message (printf format) into err[errlen] (nothing if err is NULL). */
void blob_error(char *err, size_t errlen, const char *fmt, ...);

/** Record a failure of b with a message (printf format). */
void blob_fail(Blob *b, const char *fmt, ...);

/** Index list of a block-sparse matrix: per group of 8 outputs a count then row starts
 * (multiples of 4 below rows), nblocks blocks in all; 0 if consistent, else -1. */
int blob_check_idx(const int32_t *idx, long len, int ngroups, int rows, long nblocks);

#endif
