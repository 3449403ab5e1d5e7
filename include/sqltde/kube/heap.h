/* heap.h — an intrusive binary min-heap of timed nodes, ordered by (when,
 * insertion sequence): the timer structure behind delayed requeues (the
 * libuv timer heap idea, with an index in each node so a node can be
 * re-keyed or removed in O(log n) without searching).
 *
 * Ownership: the heap owns only its pointer array; nodes are embedded in the
 * caller's structs and must outlive their membership. Not thread-safe: the
 * caller locks. Equal `when` values come out in insertion order, so delayed
 * keys due at the same instant keep FIFO order. */
#ifndef SQLTDE_KUBE_HEAP_H
#define SQLTDE_KUBE_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "sqltde/err.h"

#define SQ_HEAP_NONE ((size_t)-1)

typedef struct sq_heap_node {
  int64_t when; /* ordering key (ms) */
  uint64_t seq; /* tie-breaker: order of insertion */
  size_t idx;   /* position in the heap, SQ_HEAP_NONE when not a member */
} sq_heap_node;

typedef struct sq_heap {
  sq_heap_node **v;
  size_t n, cap;
  uint64_t next_seq;
} sq_heap;

void sq_heap_init(sq_heap *h);
/* Frees the array (not the nodes) and leaves h empty and reusable. */
void sq_heap_free(sq_heap *h);

/* Marks a node as not in any heap. */
static inline void sq_heap_node_init(sq_heap_node *n) { n->idx = SQ_HEAP_NONE; }
static inline int sq_heap_member(const sq_heap_node *n) { return n->idx != SQ_HEAP_NONE; }

/* Inserts a node that is not a member, keyed by when. SQ_ENOMEM leaves the
 * heap and node unchanged. */
sq_code sq_heap_push(sq_heap *h, sq_heap_node *node, int64_t when);

/* The earliest node (borrowed), or NULL when empty. */
sq_heap_node *sq_heap_peek(const sq_heap *h);

/* Removes and returns the earliest node (marked non-member), or NULL. */
sq_heap_node *sq_heap_pop(sq_heap *h);

/* Removes a member node; no-op for a non-member. */
void sq_heap_remove(sq_heap *h, sq_heap_node *node);

/* Changes a member's key and restores heap order (keeps its sequence). */
void sq_heap_rekey(sq_heap *h, sq_heap_node *node, int64_t when);

#endif
