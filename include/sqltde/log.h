/* log.h — structured JSON logs, one object per line on stderr.
 *
 * Shape (zap/controller-runtime-like): {"ts":"...","level":"info","logger":"x",
 * "msg":"...","reconcileID":"..." ,<extra key/values>}. Never pass tokens,
 * passwords or key material to these functions. */
#ifndef SQLTDE_LOG_H
#define SQLTDE_LOG_H

typedef enum sq_log_level {
  SQ_LOG_DEBUG = 0,
  SQ_LOG_INFO = 1,
  SQ_LOG_WARN = 2,
  SQ_LOG_ERROR = 3,
} sq_log_level;

void sq_log_set_level(sq_log_level lvl);
sq_log_level sq_log_get_level(void);

/* Parses "debug" | "info" | "warn" | "error" or a zap-style integer
 * (positive = more verbose: 1 and up -> debug, 0 -> info, -1 -> warn, -2 -> error).
 * Returns 0 on success, -1 when s is not a level. */
int sq_log_parse_level(const char *s, sq_log_level *out);

/* Sets (or clears with NULL) this thread's reconcile id, added to its lines. */
void sq_log_set_reconcile_id(const char *id);

/* Logs msg (printf-style) at lvl under logger. */
void sq_logf(sq_log_level lvl, const char *logger, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs msg with extra string key/value pairs, terminated by NULL:
 * sq_log_kv(SQ_LOG_INFO, "queue", "added", "key", k, NULL); */
void sq_log_kv(sq_log_level lvl, const char *logger, const char *msg, ...)
    __attribute__((sentinel));

#define SQ_DEBUG(logger, ...) sq_logf(SQ_LOG_DEBUG, logger, __VA_ARGS__)
#define SQ_INFO(logger, ...) sq_logf(SQ_LOG_INFO, logger, __VA_ARGS__)
#define SQ_WARN(logger, ...) sq_logf(SQ_LOG_WARN, logger, __VA_ARGS__)
#define SQ_ERROR(logger, ...) sq_logf(SQ_LOG_ERROR, logger, __VA_ARGS__)

#endif
