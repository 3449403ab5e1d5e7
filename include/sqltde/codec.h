/* codec.h — base64 (standard and URL-safe, as JWT/JWK and Key Vault use) and
 * hex, in one place. Output goes to a bounded sq_buf; decoders reject
 * malformed input with SQ_EPARSE instead of guessing. */
#ifndef SQLTDE_CODEC_H
#define SQLTDE_CODEC_H

#include <stddef.h>

#include "sqltde/buf.h"
#include "sqltde/err.h"

/* url=1: base64url without padding (RFC 7515/4648 §5); url=0: standard with padding. */
sq_code sq_b64_encode(const void *data, size_t len, int url, sq_buf *out);
/* Accepts both alphabets, with or without padding; ignores no whitespace. */
sq_code sq_b64_decode(const char *s, size_t len, sq_buf *out);
/* Upper-case hex. */
sq_code sq_hex_encode(const void *data, size_t len, sq_buf *out);

#endif
