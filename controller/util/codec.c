/* codec.c — base64/base64url/hex; see include/sqltde/codec.h. */
#include "sqltde/codec.h"

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

sq_code sq_b64_encode(const void *data, size_t len, int url, sq_buf *out) {
  const unsigned char *p = data;
  const char *alpha = url ? b64url : b64std;
  sq_code rc = SQ_OK;
  size_t i = 0;
  for(; i + 2 < len && !rc; i += 3) {
    char q[4] = {alpha[p[i] >> 2], alpha[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                 alpha[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)], alpha[p[i + 2] & 63]};
    rc = sq_buf_add(out, q, 4);
  }
  if(rc)
    return rc;
  size_t rest = len - i;
  if(rest == 1) {
    char q[4] = {alpha[p[i] >> 2], alpha[(p[i] & 3) << 4], '=', '='};
    rc = sq_buf_add(out, q, url ? 2 : 4);
  } else if(rest == 2) {
    char q[4] = {alpha[p[i] >> 2], alpha[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                 alpha[(p[i + 1] & 15) << 2], '='};
    rc = sq_buf_add(out, q, url ? 3 : 4);
  }
  if(!rc && !out->ptr)
    rc = sq_buf_add(out, "", 0);
  return rc;
}

static int b64val(unsigned char c) {
  if(c >= 'A' && c <= 'Z')
    return c - 'A';
  if(c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if(c >= '0' && c <= '9')
    return c - '0' + 52;
  if(c == '+' || c == '-')
    return 62;
  if(c == '/' || c == '_')
    return 63;
  return -1;
}

sq_code sq_b64_decode(const char *s, size_t len, sq_buf *out) {
  while(len && s[len - 1] == '=')
    len--;
  if(len % 4 == 1)
    return SQ_EPARSE;
  unsigned acc = 0;
  int bits = 0;
  for(size_t i = 0; i < len; i++) {
    int v = b64val((unsigned char)s[i]);
    if(v < 0)
      return SQ_EPARSE;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if(bits >= 8) {
      bits -= 8;
      unsigned char byte = (unsigned char)((acc >> bits) & 0xff);
      sq_code rc = sq_buf_add(out, &byte, 1);
      if(rc)
        return rc;
    }
  }
  /* leftover bits must be zero padding, otherwise the input was not canonical */
  if(bits && (acc & ((1u << bits) - 1)))
    return SQ_EPARSE;
  return out->ptr ? SQ_OK : sq_buf_add(out, "", 0);
}

sq_code sq_hex_encode(const void *data, size_t len, sq_buf *out) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = data;
  for(size_t i = 0; i < len; i++) {
    char h[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
    sq_code rc = sq_buf_add(out, h, 2);
    if(rc)
      return rc;
  }
  return out->ptr ? SQ_OK : sq_buf_add(out, "", 0);
}
