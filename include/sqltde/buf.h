/* buf.h — growable byte buffer with a mandatory maximum size.
 *
 * Everything read from the network or from files lands in an sq_buf so no
 * peer can make us allocate without bound. The content is always kept
 * NUL-terminated (ptr[len] == 0) so text can be used directly.
 * Ownership: the sq_buf owns ptr; sq_buf_free releases it, sq_buf_free_wipe
 * also zeroes it first (use for tokens and key material). */
#ifndef SQLTDE_BUF_H
#define SQLTDE_BUF_H

#include <stddef.h>

#include "sqltde/err.h"

typedef struct sq_buf {
  char *ptr;  /* NULL until first add */
  size_t len; /* bytes used, excluding the trailing NUL */
  size_t cap; /* bytes allocated */
  size_t max; /* content may never exceed this many bytes */
} sq_buf;

/* Prepares an empty buffer that may hold at most max bytes. Allocates nothing. */
void sq_buf_init(sq_buf *b, size_t max);

/* Appends n bytes; SQ_ETOOBIG if that would exceed max (buffer unchanged),
 * SQ_ENOMEM on allocation failure. */
sq_code sq_buf_add(sq_buf *b, const void *data, size_t n);
sq_code sq_buf_adds(sq_buf *b, const char *s);
sq_code sq_buf_addf(sq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer but keeps the allocation (wiping the old content). */
void sq_buf_reset(sq_buf *b);

/* Hands the allocation to the caller (who frees it with free()); the buffer is
 * left empty. Returns an empty allocated string if nothing was added. */
char *sq_buf_detach(sq_buf *b);

void sq_buf_free(sq_buf *b);
void sq_buf_free_wipe(sq_buf *b);

/* Zeroes memory in a way the compiler cannot elide (OPENSSL_cleanse). */
void sq_wipe(void *p, size_t n);

/* Wipes and frees a NUL-terminated secret string; NULL is fine. */
void sq_free_secret(char *s);

/* Copies len bytes of data (which need not be NUL-terminated, e.g. an
 * OpenSSL memory BIO) into a new NUL-terminated string; NULL on ENOMEM.
 * strndup may read past len looking for a NUL, which ASan rightly flags. */
char *sq_memdup_str(const void *data, size_t len);

/* Reads a whole file into b (bounded by b->max). */
sq_code sq_buf_read_file(sq_buf *b, const char *path, sq_err *err);

#endif
