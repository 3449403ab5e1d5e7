/* router.c — path/query decoding and route matching by path pattern.
 *
 * Patterns are '/'-separated: literal segments (compared case-insensitively,
 * as ARM and Key Vault do), "{name}" for exactly one segment (which may be
 * empty: the JS Key Vault SDK sends "/keys/NAME/" for the latest version) and
 * "{*name}" for one or more segments (an ARM scope), captured with a leading
 * '/'. Everything is bounded by the buffers in emu_call. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "emu.h"

static int hexval(int ch) {
  if(ch >= '0' && ch <= '9')
    return ch - '0';
  if(ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if(ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

long emu_pct_decode(const char *s, size_t n, int form, char *out, size_t outcap) {
  size_t o = 0;
  for(size_t i = 0; i < n; i++) {
    int ch = (unsigned char)s[i];
    if(ch == '%') {
      if(i + 2 >= n)
        return -1;
      int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
      if(h < 0 || l < 0)
        return -1;
      ch = h * 16 + l;
      i += 2;
    } else if(form && ch == '+') {
      ch = ' ';
    }
    if(ch == 0 || o + 1 >= outcap)
      return -1;
    out[o++] = (char)ch;
  }
  if(o >= outcap)
    return -1;
  out[o] = '\0';
  return (long)o;
}

sq_code emu_path_split(emu_call *c, const char *path) {
  c->nsegs = 0;
  c->trailing_slash = 0;
  size_t plen = strlen(path);
  if(plen > EMU_MAX_PATH)
    return SQ_ETOOBIG;
  if(plen == 0 || path[0] != '/')
    return SQ_EPARSE;
  size_t used = 0;
  const char *p = path + 1;
  if(!*p)
    return SQ_OK; /* "/" */
  for(;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if(c->nsegs >= EMU_MAX_SEGS)
      return SQ_ETOOBIG;
    long d;
    if(c->e && c->e->path_decoded) {
      /* the server already percent-decoded the path */
      d = (long)n;
      if(used + n + 1 > sizeof c->pathbuf)
        return SQ_ETOOBIG;
      memcpy(c->pathbuf + used, p, n);
      c->pathbuf[used + n] = '\0';
    } else {
      d = emu_pct_decode(p, n, 0, c->pathbuf + used, sizeof c->pathbuf - used);
    }
    if(d < 0)
      return SQ_EPARSE;
    c->segs[c->nsegs++] = c->pathbuf + used;
    used += (size_t)d + 1;
    if(!slash)
      break;
    p = slash + 1;
  }
  c->trailing_slash = path[plen - 1] == '/';
  return SQ_OK;
}

sq_code emu_query_parse(emu_call *c, const char *query) {
  c->nquery = 0;
  if(!query || !*query)
    return SQ_OK;
  size_t qlen = strlen(query);
  if(qlen > EMU_MAX_QUERYSTR)
    return SQ_ETOOBIG;
  size_t used = 0;
  const char *p = query;
  while(*p) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if(n) {
      if(c->nquery >= EMU_MAX_QUERY)
        return SQ_ETOOBIG;
      const char *eq = memchr(p, '=', n);
      size_t kn = eq ? (size_t)(eq - p) : n;
      long dk = emu_pct_decode(p, kn, 1, c->querybuf + used, sizeof c->querybuf - used);
      if(dk < 0)
        return SQ_EPARSE;
      c->query[c->nquery].name = c->querybuf + used;
      used += (size_t)dk + 1;
      const char *v = eq ? eq + 1 : p + n;
      size_t vn = eq ? n - kn - 1 : 0;
      long dv = emu_pct_decode(v, vn, 1, c->querybuf + used, sizeof c->querybuf - used);
      if(dv < 0)
        return SQ_EPARSE;
      c->query[c->nquery].value = c->querybuf + used;
      used += (size_t)dv + 1;
      c->nquery++;
    }
    if(!amp)
      break;
    p = amp + 1;
  }
  return SQ_OK;
}

const char *emu_query(const emu_call *c, const char *name) {
  for(int i = 0; i < c->nquery; i++)
    if(!strcasecmp(c->query[i].name, name))
      return c->query[i].value;
  return NULL;
}

const char *emu_var(const emu_call *c, const char *name) {
  for(int i = 0; i < c->nvars; i++)
    if(!strcmp(c->var_names[i], name))
      return c->var_vals[i];
  return NULL;
}

/* ---- pattern matching ---- */

#define PAT_MAX 32

typedef struct pat {
  const char *seg[PAT_MAX];
  size_t len[PAT_MAX];
  int n;
} pat;

static int pat_split(const char *pattern, pat *pt) {
  pt->n = 0;
  if(pattern[0] != '/')
    return -1;
  const char *p = pattern + 1;
  if(!*p)
    return 0;
  for(;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if(pt->n >= PAT_MAX)
      return -1;
    pt->seg[pt->n] = p;
    pt->len[pt->n] = n;
    pt->n++;
    if(!slash)
      break;
    p = slash + 1;
  }
  return 0;
}

static int is_var(const char *s, size_t n) { return n >= 2 && s[0] == '{' && s[n - 1] == '}'; }

/* spans[i] = {first seg, count} for pattern segment i */
static int match_rec(const emu_call *c, const pat *pt, int pi, int si, int spans[][2]) {
  if(pi == pt->n)
    return si == c->nsegs;
  const char *ps = pt->seg[pi];
  size_t pl = pt->len[pi];
  if(is_var(ps, pl) && ps[1] == '*') {
    /* greedy: one or more segments, longest first */
    for(int take = c->nsegs - si; take >= 1; take--) {
      spans[pi][0] = si;
      spans[pi][1] = take;
      if(match_rec(c, pt, pi + 1, si + take, spans))
        return 1;
    }
    return 0;
  }
  if(si >= c->nsegs)
    return 0;
  if(is_var(ps, pl)) {
    spans[pi][0] = si;
    spans[pi][1] = 1;
    return match_rec(c, pt, pi + 1, si + 1, spans);
  }
  const char *s = c->segs[si];
  if(strlen(s) != pl || strncasecmp(s, ps, pl))
    return 0;
  return match_rec(c, pt, pi + 1, si + 1, spans);
}

int emu_pattern_match(emu_call *c, const char *pattern) {
  pat pt;
  int spans[PAT_MAX][2];
  if(pat_split(pattern, &pt) || !match_rec(c, &pt, 0, 0, spans))
    return 0;
  /* captures: names are copied into varbuf as well (patterns are static, but
   * names need NUL termination) */
  c->nvars = 0;
  size_t used = 0;
  for(int i = 0; i < pt.n; i++) {
    const char *ps = pt.seg[i];
    size_t pl = pt.len[i];
    if(!is_var(ps, pl))
      continue;
    if(c->nvars >= EMU_MAX_VARS)
      return 0;
    int greedy = ps[1] == '*';
    size_t nl = pl - 2 - (size_t)greedy;
    if(used + nl + 1 > sizeof c->varbuf)
      return 0;
    memcpy(c->varbuf + used, ps + 1 + greedy, nl);
    c->varbuf[used + nl] = '\0';
    c->var_names[c->nvars] = c->varbuf + used;
    used += nl + 1;
    if(!greedy) {
      c->var_vals[c->nvars] = c->segs[spans[i][0]];
    } else {
      char *start = c->varbuf + used;
      for(int k = 0; k < spans[i][1]; k++) {
        const char *s = c->segs[spans[i][0] + k];
        size_t sl = strlen(s);
        if(used + sl + 2 > sizeof c->varbuf)
          return 0;
        c->varbuf[used++] = '/';
        memcpy(c->varbuf + used, s, sl);
        used += sl;
      }
      c->varbuf[used++] = '\0';
      c->var_vals[c->nvars] = start;
    }
    c->nvars++;
  }
  return 1;
}

const emu_route *emu_extra_routes;

static emu_match_result scan(emu_call *c, const emu_route *table, emu_family fam, const char *method,
                             emu_match_result res) {
  for(const emu_route *r = table; r->pattern; r++) {
    if(r->fam != fam || !emu_pattern_match(c, r->pattern))
      continue;
    if(r->method && strcmp(r->method, method)) {
      res = EMU_MATCH_METHOD;
      continue;
    }
    c->route = r;
    return EMU_MATCH_OK;
  }
  return res;
}

emu_match_result emu_route_find(emu_call *c, emu_family fam, const char *method) {
  emu_match_result res = EMU_MATCH_NONE;
  for(int t = 0; emu_route_tables[t] && res != EMU_MATCH_OK; t++)
    res = scan(c, emu_route_tables[t], fam, method, res);
  if(res != EMU_MATCH_OK && emu_extra_routes)
    res = scan(c, emu_extra_routes, fam, method, res);
  if(res != EMU_MATCH_OK)
    c->nvars = 0;
  return res;
}
