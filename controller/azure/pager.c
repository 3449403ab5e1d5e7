/* pager.c — Azure list paging; see include/sqltde/azure/pager.h. */
#include "sqltde/azure/pager.h"

#include <string.h>

#include "sqltde/azure/cloud.h"
#include "sqltde/azure/pipeline.h"
#include "sqltde/buf.h"
#include "sqltde/jsonx.h"

/* One page: *body (owned) is a JSON object with a "value" array. */
static sq_code fetch_page(const sq_azure_pager *p, const char *url, json_t **body, sq_err *err) {
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  sq_code rc = p->send(p->send_ud, url, &resp, err);
  if(!rc && resp.status != 200)
    rc = sq_azure_error_from_resp(&resp, p->what, err);
  if(!rc)
    rc = sq_azure_json_body(&resp, p->what, body, err);
  sq_http_resp_free(&resp);
  if(!rc && !json_is_array(json_object_get(*body, "value")))
    rc = sq_err_set(err, SQ_EPARSE, "%s: list response without a \"value\" array", p->what);
  return rc;
}

/* Hands the page's items to the caller; *stop when it asked to. */
static sq_code page_items(const sq_azure_pager *p, const json_t *body, size_t *items, int *stop,
                          sq_err *err) {
  size_t i;
  json_t *it;
  json_array_foreach(json_object_get(body, "value"), i, it) {
    if(p->max_items && ++*items > p->max_items)
      return sq_err_set(err, SQ_ETOOBIG, "%s: more than %zu items", p->what, p->max_items);
    if(p->item(p->item_ud, it)) {
      *stop = 1;
      break;
    }
  }
  return SQ_OK;
}

/* Moves url to the page's nextLink (prev keeps the URL before it, so an
 * A -> B -> A cycle is caught too); *stop when there is none. */
static sq_code follow_next(const sq_azure_pager *p, const json_t *body, sq_buf *url, sq_buf *prev,
                           int *stop, sq_err *err) {
  const char *next = sq_json_str(body, "nextLink");
  if(!next || !*next) {
    *stop = 1;
    return SQ_OK;
  }
  if(!sq_azure_same_origin(next, p->origin))
    return sq_err_set(err, SQ_EPARSE, "%s: nextLink is not on %s", p->what, p->origin_name);
  if(!strcmp(next, url->ptr) || (prev->ptr && !strcmp(next, prev->ptr)))
    return sq_err_set(err, SQ_EPARSE, "%s: nextLink repeats", p->what);
  sq_buf_reset(prev);
  if(sq_buf_adds(prev, url->ptr) || (sq_buf_reset(url), sq_buf_adds(url, next)))
    return sq_err_set(err, SQ_ETOOBIG, "%s: nextLink too long", p->what);
  return SQ_OK;
}

sq_code sq_azure_list_pages(const sq_azure_pager *p, const char *first_url, sq_err *err) {
  sq_buf url, prev;
  sq_buf_init(&url, p->max_url);
  sq_buf_init(&prev, p->max_url);
  size_t items = 0;
  int stop = 0;
  sq_code rc = SQ_OK;
  if(sq_buf_adds(&url, first_url))
    rc = sq_err_set(err, SQ_ETOOBIG, "%s: URL too long", p->what);
  for(int page = 0; !rc && !stop; page++) {
    if(page >= p->max_pages) {
      rc = sq_err_set(err, SQ_ETOOBIG, "%s: more than %d pages", p->what, p->max_pages);
      break;
    }
    json_t *body = NULL;
    rc = fetch_page(p, url.ptr, &body, err);
    if(!rc)
      rc = page_items(p, body, &items, &stop, err);
    if(!rc && !stop)
      rc = follow_next(p, body, &url, &prev, &stop, err);
    json_decref(body);
  }
  sq_buf_free(&url);
  sq_buf_free(&prev);
  return rc;
}
