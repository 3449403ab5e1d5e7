/* heap.c — intrusive min-heap; see include/sqltde/kube/heap.h. */
#include "sqltde/kube/heap.h"

#include <stdlib.h>

static int before(const sq_heap_node *a, const sq_heap_node *b) {
  if(a->when != b->when)
    return a->when < b->when;
  return a->seq < b->seq;
}

static void place(sq_heap *h, size_t i, sq_heap_node *node) {
  h->v[i] = node;
  node->idx = i;
}

static void sift_up(sq_heap *h, size_t i) {
  sq_heap_node *node = h->v[i];
  while(i > 0) {
    size_t parent = (i - 1) / 2;
    if(!before(node, h->v[parent]))
      break;
    place(h, i, h->v[parent]);
    i = parent;
  }
  place(h, i, node);
}

static void sift_down(sq_heap *h, size_t i) {
  sq_heap_node *node = h->v[i];
  for(;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const sq_heap_node *best = node;
    if(l < h->n && before(h->v[l], best)) {
      m = l;
      best = h->v[l];
    }
    if(r < h->n && before(h->v[r], best))
      m = r;
    if(m == i)
      break;
    place(h, i, h->v[m]);
    i = m;
  }
  place(h, i, node);
}

void sq_heap_init(sq_heap *h) {
  h->v = NULL;
  h->n = h->cap = 0;
  h->next_seq = 0;
}

void sq_heap_free(sq_heap *h) {
  for(size_t i = 0; i < h->n; i++)
    h->v[i]->idx = SQ_HEAP_NONE;
  free(h->v);
  sq_heap_init(h);
}

sq_code sq_heap_push(sq_heap *h, sq_heap_node *node, int64_t when) {
  if(h->n == h->cap) {
    size_t ncap = h->cap ? h->cap * 2 : 16;
    sq_heap_node **nv = realloc(h->v, ncap * sizeof *nv);
    if(!nv)
      return SQ_ENOMEM;
    h->v = nv;
    h->cap = ncap;
  }
  node->when = when;
  node->seq = h->next_seq++;
  h->v[h->n] = node;
  node->idx = h->n;
  h->n++;
  sift_up(h, h->n - 1);
  return SQ_OK;
}

sq_heap_node *sq_heap_peek(const sq_heap *h) { return h->n ? h->v[0] : NULL; }

void sq_heap_remove(sq_heap *h, sq_heap_node *node) {
  size_t i = node->idx;
  if(i == SQ_HEAP_NONE || i >= h->n || h->v[i] != node)
    return;
  node->idx = SQ_HEAP_NONE;
  h->n--;
  if(i == h->n)
    return;
  /* move the last node into the hole; it may belong above or below it */
  place(h, i, h->v[h->n]);
  if(i > 0 && before(h->v[i], h->v[(i - 1) / 2]))
    sift_up(h, i);
  else
    sift_down(h, i);
}

sq_heap_node *sq_heap_pop(sq_heap *h) {
  sq_heap_node *top = sq_heap_peek(h);
  if(top)
    sq_heap_remove(h, top);
  return top;
}

void sq_heap_rekey(sq_heap *h, sq_heap_node *node, int64_t when) {
  size_t i = node->idx;
  if(i == SQ_HEAP_NONE || i >= h->n || h->v[i] != node)
    return;
  int64_t old = node->when;
  node->when = when;
  if(when < old)
    sift_up(h, i);
  else
    sift_down(h, i);
}
