/* azure/pager.h — follows Azure list pages ({"value": [...], "nextLink": URL}).
 *
 * Internal to the Azure clients: ARM (arm.c) and Key Vault (keyvault.c) page
 * the same way and differ only in how a GET is sent (auth, metrics), so the
 * loop and its safety rules live here once:
 *  - each page must be a 200 with a JSON object holding a "value" array
 *    (non-2xx -> the typed error of sq_azure_error_from_resp);
 *  - a nextLink is followed only when it is on origin (the bearer token goes
 *    with it), differs from the current and the previous URL, and fits in
 *    max_url bytes; else SQ_EPARSE (SQ_ETOOBIG when too long);
 *  - more than max_pages pages or max_items items is SQ_ETOOBIG.
 * Messages start with what. */
#ifndef SQLTDE_AZURE_PAGER_H
#define SQLTDE_AZURE_PAGER_H

#include <jansson.h>
#include <stddef.h>

#include "sqltde/err.h"
#include "sqltde/http.h"

/* Sends a GET of the absolute url; SQ_OK whenever a response arrived (any
 * status), as sq_azure_exec. resp is initialised by the pager. */
typedef sq_code (*sq_azure_page_send_fn)(void *ud, const char *url, sq_http_resp *resp,
                                         sq_err *err);

/* Called for each element of "value" (borrowed). Return non-zero to stop. */
typedef int (*sq_azure_page_item_fn)(void *ud, const json_t *item);

typedef struct sq_azure_pager {
  const char *what;          /* message prefix, e.g. "list /subscriptions/s/..." */
  const char *origin;        /* nextLinks must stay on it */
  const char *origin_name;   /* for messages: "the ARM endpoint", "the vault" */
  int max_pages;
  size_t max_items;          /* 0 = no bound */
  size_t max_url;            /* bytes, the first URL included */
  sq_azure_page_send_fn send;
  void *send_ud;
  sq_azure_page_item_fn item;
  void *item_ud;
} sq_azure_pager;

/* GETs first_url and the nextLinks after it, handing every item to p->item,
 * until a page without nextLink, a non-zero return from p->item (SQ_OK), or
 * an error. */
sq_code sq_azure_list_pages(const sq_azure_pager *p, const char *first_url, sq_err *err);

#endif
