/* jsonx.h — the project's JSON helpers on top of jansson.
 *
 * Parsing is always bounded by the caller's buffer (sq_buf) and reports a
 * clear error; lookups by dotted path never crash on a wrong type, they just
 * return NULL / the default. Returned json_t* from lookups are borrowed. */
#ifndef SQLTDE_JSONX_H
#define SQLTDE_JSONX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sqltde/err.h"

/* Parses len bytes; on failure returns SQ_EPARSE with line/column in err.
 * what names the source for the message (e.g. "apiserver response"). */
sq_code sq_json_parse(const char *data, size_t len, const char *what, json_t **out, sq_err *err);

/* Borrowed lookup by dotted path ("metadata.name"); NULL if any step is
 * missing or not an object. Keys containing dots cannot be addressed. */
json_t *sq_json_path(const json_t *root, const char *path);

/* String at path, or NULL if absent or not a string (borrowed). */
const char *sq_json_str(const json_t *root, const char *path);

/* Integer at path, or def. */
int64_t sq_json_int(const json_t *root, const char *path, int64_t def);

/* A JSON number (integer or real) as int64: reals are truncated toward zero
 * and clamped to the int64 range (NaN gives def), so a hostile 1e300 can
 * never reach an undefined float-to-int conversion. def if not a number. */
int64_t sq_json_number_i64(const json_t *v, int64_t def);

/* Boolean at path, or def. */
int sq_json_bool(const json_t *root, const char *path, int def);

/* Sets obj[key] = val, taking val's reference in every case, and records a
 * failure in *bad: a NULL obj or val (allocation failure, or json_string()
 * refusing invalid UTF-8) or a key jansson refuses. Request bodies are built
 * top-down with it and checked once, so a field can never be dropped
 * silently (a key map missing a key would be a different request). */
void sq_json_put(int *bad, json_t *obj, const char *key, json_t *val);

/* Serialises compactly with sorted keys; caller frees with free(). */
char *sq_json_dump(const json_t *v);

#endif
