/* plan_rules.c — what both planners share: the plan builder (steps,
 * findings, verdict), the key/permission gates, auto-rotation equivalence,
 * the rotation backoff, and the names of everything. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"
#include "sqltde/kube/ratelimit.h"

/* ---- names --------------------------------------------------------------- */

static const char *const step_names[SQ_STEP_KIND_COUNT] = {
    [SQ_STEP_CREATE_DATABASE] = "CreateDatabase",
    [SQ_STEP_SET_IDENTITY] = "SetIdentity",
    [SQ_STEP_SET_FEDERATED_CLIENT_ID] = "SetFederatedClientId",
    [SQ_STEP_ADD_KEYS] = "AddKeys",
    [SQ_STEP_SET_AUTO_ROTATION] = "SetAutoRotation",
    [SQ_STEP_SET_PROTECTOR] = "SetProtector",
    [SQ_STEP_REMOVE_KEYS] = "RemoveKeys",
    [SQ_STEP_REVALIDATE] = "Revalidate",
    [SQ_STEP_REVERT] = "Revert",
    [SQ_STEP_DELETE_DATABASE] = "DeleteDatabase",
    [SQ_STEP_SET_SERVER_IDENTITY] = "SetServerIdentity",
    [SQ_STEP_ADD_SERVER_KEY] = "AddServerKey",
    [SQ_STEP_SET_SERVER_PROTECTOR] = "SetServerProtector",
    [SQ_STEP_SET_SERVER_SERVICE_MANAGED] = "SetServerServiceManaged",
};

/* name, and whether a wait/refusal for it needs an outside change (kstatus
 * Stalled) rather than just time. */
static const struct {
  const char *name;
  int stalled;
} reasons[SQ_REASON_COUNT] = {
    [SQ_REASON_NONE] = {"None", 0},
    [SQ_REASON_UP_TO_DATE] = {"UpToDate", 0},
    [SQ_REASON_RETAINED] = {"Retained", 0},
    [SQ_REASON_DELETED] = {"Deleted", 0},
    [SQ_REASON_PROGRESSING] = {"Progressing", 0},
    [SQ_REASON_OBSERVATION_INCOMPLETE] = {"ObservationIncomplete", 0},
    [SQ_REASON_REFERENCE_NOT_FOUND] = {"ReferenceNotFound", 1},
    [SQ_REASON_DATABASE_BUSY] = {"DatabaseBusy", 0},
    [SQ_REASON_DATABASE_INACCESSIBLE] = {"DatabaseInaccessible", 1},
    [SQ_REASON_SERVER_NOT_OBSERVED] = {"ServerNotObserved", 0},
    [SQ_REASON_KEY_NOT_OBSERVED] = {"KeyNotObserved", 0},
    [SQ_REASON_KEY_NOT_FOUND] = {"KeyNotFound", 1},
    [SQ_REASON_KEY_DISABLED] = {"KeyDisabled", 1},
    [SQ_REASON_KEY_EXPIRED] = {"KeyExpired", 1},
    [SQ_REASON_KEY_NOT_YET_VALID] = {"KeyNotYetValid", 0},
    [SQ_REASON_PERMISSION_PENDING] = {"PermissionPending", 0},
    [SQ_REASON_ROTATION_BLOCKED] = {"RotationBlocked", 0},
    [SQ_REASON_INVALID_SPEC] = {"InvalidSpec", 1},
    [SQ_REASON_IDENTITY_MISSING_PERMISSIONS] = {"IdentityMissingPermissions", 1},
    [SQ_REASON_REVERT_NOT_ALLOWED_WITH_SERVER_CMK] = {"RevertNotAllowedWithServerCMK", 1},
    [SQ_REASON_OPT_IN_TO_SMK_NOT_ALLOWED] = {"OptInToSMKNotAllowed", 1},
    [SQ_REASON_UNDECLARED_SECONDARY] = {"UndeclaredSecondary", 1},
    [SQ_REASON_SERVER_NOT_FOUND] = {"ServerNotFound", 1},
    [SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP] = {"KeyRemovalWouldStrandBackup", 0},
    [SQ_REASON_KEY_REMOVAL_DEFERRED] = {"KeyRemovalDeferred", 0},
    [SQ_REASON_AUTO_ROTATION_OVERDUE] = {"AutoRotationOverdue", 0},
    [SQ_REASON_MULTIPLE_IDENTITIES] = {"MultipleIdentities", 0},
    [SQ_REASON_ACCESS_UNVERIFIED] = {"AccessUnverified", 0},
    [SQ_REASON_PLAN_TRUNCATED] = {"PlanTruncated", 0},
};

const char *sq_plan_step_kind_name(sq_plan_step_kind k) {
  if((unsigned)k >= SQ_STEP_KIND_COUNT)
    return "Unknown";
  return step_names[k];
}

int sq_plan_step_is_server(sq_plan_step_kind k) {
  switch(k) {
  case SQ_STEP_SET_SERVER_IDENTITY:
  case SQ_STEP_ADD_SERVER_KEY:
  case SQ_STEP_SET_SERVER_PROTECTOR:
  case SQ_STEP_SET_SERVER_SERVICE_MANAGED:
    return 1;
  default:
    return 0;
  }
}

const char *sq_plan_reason_name(sq_plan_reason r) {
  if((unsigned)r >= SQ_REASON_COUNT || !reasons[r].name)
    return "Unknown";
  return reasons[r].name;
}

const char *sq_plan_verdict_name(sq_plan_verdict v) {
  switch(v) {
  case SQ_PLAN_CONVERGED:
    return "Converged";
  case SQ_PLAN_PROGRESSING:
    return "Progressing";
  case SQ_PLAN_WAITING:
    return "Waiting";
  case SQ_PLAN_REFUSED:
    return "Refused";
  }
  return "Unknown";
}

int sq_plan_reason_stalled(sq_plan_reason r) {
  return (unsigned)r < SQ_REASON_COUNT && reasons[r].stalled;
}

sq_plan_kstatus sq_plan_kstatus_of(const sq_plan *p) {
  switch(p->verdict) {
  case SQ_PLAN_CONVERGED:
    return SQ_PLAN_KSTATUS_READY;
  case SQ_PLAN_PROGRESSING:
    return SQ_PLAN_KSTATUS_RECONCILING;
  case SQ_PLAN_WAITING:
    return sq_plan_reason_stalled(p->reason) ? SQ_PLAN_KSTATUS_STALLED
                                             : SQ_PLAN_KSTATUS_RECONCILING;
  case SQ_PLAN_REFUSED:
    break;
  }
  return SQ_PLAN_KSTATUS_STALLED;
}

/* ---- arithmetic on untrusted times --------------------------------------- */

int64_t pl_sub(int64_t a, int64_t b) {
  int64_t r;
  if(__builtin_sub_overflow(a, b, &r))
    return b < 0 ? INT64_MAX : INT64_MIN;
  return r;
}

int64_t pl_ms(int64_t s) {
  int64_t r;
  if(__builtin_mul_overflow(s, (int64_t)1000, &r))
    return s < 0 ? INT64_MIN : INT64_MAX;
  return r;
}

/* ---- borrowed sets ------------------------------------------------------- */

int pl_set_has(const pl_set *s, const char *x) {
  for(size_t i = 0; x && i < s->n; i++)
    if(sq_plan_uri_eq(s->v[i], x))
      return 1;
  return 0;
}

void pl_set_add(pl_set *s, const char *x) {
  if(!x || !*x || pl_set_has(s, x) || s->n >= PL_SET_MAX)
    return;
  s->v[s->n++] = x;
}

void pl_set_del(pl_set *s, const char *x) {
  for(size_t i = 0; i < s->n;) {
    if(sq_plan_uri_eq(s->v[i], x)) {
      memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof s->v[0]);
      s->n--;
    } else {
      i++;
    }
  }
}

void pl_set_add_list(pl_set *s, const sq_plan_list *l) {
  for(size_t i = 0; i < l->n; i++)
    pl_set_add(s, l->v[i]);
}

int pl_set_eq(const pl_set *a, const pl_set *b) {
  if(a->n != b->n)
    return 0;
  for(size_t i = 0; i < a->n; i++)
    if(!pl_set_has(b, a->v[i]))
      return 0;
  return 1;
}

/* ---- plan builder -------------------------------------------------------- */

char *pl_dup(pl_out *o, const char *s) {
  if(!s)
    return NULL;
  char *c = strdup(s);
  if(!c)
    o->oom = 1;
  return c;
}

void pl_list_add(pl_out *o, sq_plan_list *l, const char *s) {
  sq_code rc = sq_plan_list_add(l, s, NULL);
  if(rc == SQ_ENOMEM)
    o->oom = 1;
}

sq_plan_step *pl_step_new(pl_out *o, sq_plan_step_kind kind, sq_plan_target target,
                          const char *server_id, const char *database) {
  sq_plan *p = o->p;
  if(o->oom || p->n_steps >= SQ_PLAN_MAX_STEPS)
    return NULL;
  if(!p->steps) {
    p->steps = calloc(SQ_PLAN_MAX_STEPS, sizeof *p->steps);
    if(!p->steps) {
      o->oom = 1;
      return NULL;
    }
  }
  sq_plan_step *s = &p->steps[p->n_steps++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->target = target;
  s->secondary = -1;
  s->server_id = pl_dup(o, server_id);
  s->database = pl_dup(o, database);
  return s;
}

/* Cuts a string that vsnprintf truncated back to a whole UTF-8 character. */
static void utf8_cut(char *buf, size_t len, int wanted) {
  if(wanted < 0 || (size_t)wanted < len)
    return;
  size_t n = strlen(buf);
  size_t i = n;
  while(i > 0 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
    i--;
  if(i > 0 && ((unsigned char)buf[i - 1] & 0x80)) {
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if(n - (i - 1) < need)
      buf[i - 1] = '\0';
  }
}

void pl_desc(sq_plan_step *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(s->description, sizeof s->description, fmt, ap);
  va_end(ap);
  utf8_cut(s->description, sizeof s->description, w);
}

void pl_desc_append(sq_plan_step *s, const char *fmt, ...) {
  size_t used = strlen(s->description);
  if(used + 1 >= sizeof s->description)
    return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(s->description + used, sizeof s->description - used, fmt, ap);
  va_end(ap);
  utf8_cut(s->description + used, sizeof s->description - used, w);
}

static char *vfmt(pl_out *o, const char *fmt, va_list ap) {
  char *m = NULL;
  if(vasprintf(&m, fmt, ap) < 0) {
    o->oom = 1;
    return NULL;
  }
  return m;
}

static void add_finding(pl_out *o, sq_plan_reason r, char *msg) {
  sq_plan *p = o->p;
  if(!msg)
    return;
  for(size_t i = 0; i < p->n_findings; i++)
    if(p->findings[i].reason == r && !strcmp(p->findings[i].message, msg)) {
      free(msg);
      return;
    }
  if(p->n_findings >= SQ_PLAN_MAX_FINDINGS) {
    free(msg);
    return;
  }
  if(!p->findings) {
    p->findings = calloc(SQ_PLAN_MAX_FINDINGS, sizeof *p->findings);
    if(!p->findings) {
      o->oom = 1;
      free(msg);
      return;
    }
  }
  p->findings[p->n_findings].reason = r;
  p->findings[p->n_findings].message = msg;
  p->n_findings++;
}

void pl_finding(pl_out *o, sq_plan_reason r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *m = vfmt(o, fmt, ap);
  va_end(ap);
  add_finding(o, r, m);
}

void pl_stop(pl_out *o, sq_plan_verdict v, sq_plan_reason r, int64_t retry_ms, const char *fmt,
             ...) {
  if(o->stopped)
    return;
  o->stopped = 1;
  va_list ap;
  va_start(ap, fmt);
  char *m = vfmt(o, fmt, ap);
  va_end(ap);
  if(!m)
    return;
  sq_plan *p = o->p;
  if(p->n_steps) {
    /* the listed steps can run; this is what the next pass will wait on */
    char *f = NULL;
    if(asprintf(&f, "after step %zu: %s", p->n_steps, m) < 0) {
      o->oom = 1;
      f = NULL;
    }
    free(m);
    add_finding(o, r, f);
    return;
  }
  p->verdict = v;
  p->reason = r;
  p->retry_after_ms = retry_ms < 0 ? 0 : retry_ms;
  free(p->message);
  p->message = m;
}

void pl_finish(pl_out *o, sq_plan_reason converged_reason, const char *converged_msg) {
  sq_plan *p = o->p;
  if(o->stopped && !p->n_steps)
    return;
  free(p->message);
  p->message = NULL;
  p->retry_after_ms = 0;
  if(p->n_steps) {
    p->verdict = SQ_PLAN_PROGRESSING;
    p->reason = SQ_REASON_PROGRESSING;
    if(asprintf(&p->message, "%zu step(s) to apply; next: %s", p->n_steps,
                p->steps[0].description) < 0) {
      p->message = NULL;
      o->oom = 1;
    }
    return;
  }
  p->verdict = SQ_PLAN_CONVERGED;
  p->reason = converged_reason;
  p->message = pl_dup(o, converged_msg);
}

/* ---- gates ------------------------------------------------------------------ */

static void perms_text(unsigned missing, char *out, size_t outlen) {
  if(!(missing & SQ_PERM_ALL))
    missing = SQ_PERM_ALL; /* "missing" without detail: name all three */
  snprintf(out, outlen, "%s%s%s%s%s", (missing & SQ_PERM_GET) ? "get" : "",
           (missing & SQ_PERM_GET) && (missing & (SQ_PERM_WRAP | SQ_PERM_UNWRAP)) ? ", " : "",
           (missing & SQ_PERM_WRAP) ? "wrapKey" : "",
           (missing & SQ_PERM_WRAP) && (missing & SQ_PERM_UNWRAP) ? ", " : "",
           (missing & SQ_PERM_UNWRAP) ? "unwrapKey" : "");
}

static int problem(pl_problem *pr, sq_plan_verdict v, sq_plan_reason r, int64_t retry_ms,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int problem(pl_problem *pr, sq_plan_verdict v, sq_plan_reason r, int64_t retry_ms,
                   const char *fmt, ...) {
  pr->verdict = v;
  pr->reason = r;
  pr->retry_ms = retry_ms;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pr->msg, sizeof pr->msg, fmt, ap);
  va_end(ap);
  return 0;
}

int pl_key_check(pl_out *o, const sq_plan_facts *f, int64_t now, const char *uri,
                 const char *identity, pl_problem *pr) {
  char k[160], id[160];
  pl_short_key(uri, k, sizeof k);
  pl_short_id(identity, id, sizeof id);
  const sq_plan_key_fact *kf = sq_plan_facts_key(f, uri);
  if(!kf)
    return problem(pr, SQ_PLAN_WAITING, SQ_REASON_KEY_NOT_OBSERVED, PL_OBSERVE_MS,
                   "key %s has not been observed in Key Vault yet", k);
  if(!kf->exists)
    return problem(pr, SQ_PLAN_WAITING, SQ_REASON_KEY_NOT_FOUND, PL_RECHECK_MS,
                   "key %s was not found in Key Vault (AkvKeyDeleted); waiting for it to exist", k);
  if(!kf->enabled)
    return problem(pr, SQ_PLAN_WAITING, SQ_REASON_KEY_DISABLED, PL_RECHECK_MS,
                   "key %s is disabled; Azure SQL refuses disabled keys (AzureKeyVaultKeyDisabled)",
                   k);
  if(kf->exp_s && now >= kf->exp_s)
    return problem(pr, SQ_PLAN_WAITING, SQ_REASON_KEY_EXPIRED, PL_RECHECK_MS,
                   "key %s has expired; Azure SQL needs a key whose exp is in the future", k);
  if(kf->nbf_s && now < kf->nbf_s) {
    int64_t wait = pl_ms(pl_sub(kf->nbf_s, now));
    if(wait > PL_RECHECK_MS)
      wait = PL_RECHECK_MS;
    return problem(pr, SQ_PLAN_WAITING, SQ_REASON_KEY_NOT_YET_VALID, wait,
                   "key %s is not valid yet (nbf in the future)", k);
  }
  const sq_plan_access *a = identity ? sq_plan_facts_access(f, uri, identity) : NULL;
  if(!a || a->state == SQ_ACCESS_UNKNOWN) {
    pl_finding(o, SQ_REASON_ACCESS_UNVERIFIED,
               "access of identity %s to key %s is not verified (not checked yet, or in another "
               "tenant); Azure will check it",
               id, k);
    return 1;
  }
  if(a->state == SQ_ACCESS_MISSING) {
    char perms[40];
    perms_text(a->missing, perms, sizeof perms);
    return problem(pr, SQ_PLAN_REFUSED, SQ_REASON_IDENTITY_MISSING_PERMISSIONS, PL_RECHECK_MS,
                   "identity %s lacks %s on key %s; grant get, wrapKey and unwrapKey (access "
                   "policy) or the role Key Vault Crypto Service Encryption User (RBAC)",
                   id, perms, k);
  }
  if(a->granted_s) {
    int64_t age = pl_sub(now, a->granted_s);
    if(age < SQ_PLAN_GRANT_DELAY_S) {
      int64_t wait = age < 0 ? SQ_PLAN_GRANT_DELAY_S : SQ_PLAN_GRANT_DELAY_S - age;
      return problem(pr, SQ_PLAN_WAITING, SQ_REASON_PERMISSION_PENDING, pl_ms(wait),
                     "access of identity %s to key %s was granted %llds ago; Azure SQL applies "
                     "Key Vault permission changes about 10 minutes later",
                     id, k, (long long)(age < 0 ? 0 : age));
    }
  }
  return 1;
}

int pl_gate_key(pl_out *o, const sq_plan_facts *f, int64_t now, const char *uri,
                const char *identity, const char *what) {
  pl_problem pr;
  if(pl_key_check(o, f, now, uri, identity, &pr))
    return 1;
  pl_stop(o, pr.verdict, pr.reason, pr.retry_ms, "%s: %s", what, pr.msg);
  return 0;
}

int pl_protector_matches(pl_out *o, const sq_plan_facts *f, int64_t now, const char *have,
                         int have_auto, const char *want, int want_auto, const char *who) {
  if(sq_plan_uri_eq(have, want))
    return 1;
  if(!have || !want || !want_auto || !have_auto || !sq_plan_same_key(have, want))
    return 0;
  /* Azure moves an auto-rotating protector to the newest version on its own
   * (within 24 h): writing it ourselves would be a wasted ARM write. */
  const sq_plan_key_fact *wf = sq_plan_facts_key(f, want);
  const sq_plan_key_fact *hf = sq_plan_facts_key(f, have);
  if(wf && wf->created_s && (!hf || !hf->created_s || wf->created_s > hf->created_s) &&
     pl_sub(now, wf->created_s) > SQ_PLAN_AUTOROTATE_S) {
    char hk[160], wk[160];
    pl_short_key(have, hk, sizeof hk);
    pl_short_key(want, wk, sizeof wk);
    pl_finding(o, SQ_REASON_AUTO_ROTATION_OVERDUE,
               "%s still uses %s although %s was created more than 24 h ago; Azure's "
               "auto-rotation should have moved it",
               who, hk, wk);
  }
  return 1;
}

int64_t pl_rotation_wait_ms(const sq_plan_failure *f, const char *server_id, int64_t now) {
  if(!f->code || strcmp(f->code, SQ_PLAN_ROTATION_BLOCKED_CODE) ||
     !sq_plan_uri_eq(f->server_id, server_id))
    return 0;
  unsigned attempts = f->attempts ? f->attempts : 1;
  int64_t delay = sq_backoff_ms(SQ_PLAN_ROTATION_BACKOFF_BASE_MS, SQ_PLAN_ROTATION_BACKOFF_MAX_MS,
                                attempts - 1);
  int64_t elapsed = pl_ms(pl_sub(now, f->at_s));
  if(elapsed < 0) /* clock went back: count from now */
    elapsed = 0;
  return elapsed >= delay ? 0 : delay - elapsed;
}
