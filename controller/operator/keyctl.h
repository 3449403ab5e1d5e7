/* keyctl.h — private helpers shared by the KeyVault, VaultKey and
 * ManagedIdentity controllers (controller/operator/{keyvault,vaultkey,
 * identity}.c): reconcile results, verdict -> kstatus, InvalidSpec, Events on
 * condition transitions, cache listings. Not a public header: the decisions
 * live in include/sqltde/operator/keypolicy.h, these are the I/O edges. */
#ifndef SQLTDE_OPERATOR_KEYCTL_H
#define SQLTDE_OPERATOR_KEYCTL_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/err.h"
#include "sqltde/kube/manager.h"
#include "sqltde/operator/keypolicy.h"
#include "sqltde/operator/op.h"
#include "sqltde/operator/status.h"
#include "sqltde/operator/validate.h"

/* Condition types besides the kstatus trio. */
#define KC_COND_INVALID_SPEC "InvalidSpec"
#define KC_COND_REPLICATED "Replicated"
#define KC_COND_EXPIRING "ExpiringSoon"
#define KC_COND_EXPIRED "Expired"
#define KC_COND_DISABLED "Disabled"
#define KC_COND_PERMISSION_PENDING "PermissionPending"
#define KC_COND_DELETION_BLOCKED "DeletionBlocked"

/* Result constructors for the engine's switch. */
sq_reconcile_result sq_kc_after(int64_t ms);   /* success, come back after ms (0: done) */
sq_reconcile_result sq_kc_error(sq_code c);    /* rate-limited requeue */
sq_reconcile_result sq_kc_terminal(sq_code c); /* no requeue: needs a spec change */

/* Wall-clock seconds from op's clock. */
int64_t sq_kc_now(const sq_op *op);

/* Applies a verdict's kstatus to the draft. */
sq_code sq_kc_apply_verdict(sq_status_draft *d, const sq_verdict *v);

/* InvalidSpec: condition InvalidSpec=True (reason = rule) and Stalled with
 * reason InvalidSpec naming the field and the rule. */
sq_code sq_kc_set_invalid(sq_status_draft *d, const char *rule, const char *message);
/* Removes the InvalidSpec condition (spec is valid now). */
void sq_kc_clear_condition(sq_status_draft *d, const char *type);
/* Sets type True with reason/message when on, removes it otherwise. */
sq_code sq_kc_flag_condition(sq_status_draft *d, const char *type, int on, const char *reason,
                          const char *message);

/* Emits one Event per condition whose status or reason differs between the
 * object as read (d->obj) and the draft: Ready, Replicated, ExpiringSoon,
 * Expired, Disabled, PermissionPending, DeletionBlocked, InvalidSpec. Call
 * before sq_status_commit (which frees the draft). Repeated passes in the
 * same state emit nothing. */
void sq_kc_transition_events(sq_op *op, const sq_status_draft *d);

/* Commits the draft; a failed status write is logged and returned. */
sq_code sq_kc_commit(sq_op *op, const sq_kube_gvr *gvr, sq_status_draft *d, const char *ctl);

/* Every cached object of gvr in namespace ns (a new array; never NULL unless
 * out of memory). The informer must have been created at registration. */
json_t *sq_kc_list(sq_op *op, const sq_kube_gvr *gvr, const char *ns);

/* "reason: message" (or the code name) of an error, for conditions. */
void sq_kc_errstr(const sq_err *e, sq_code rc, char *out, size_t outlen);

/* Reads a duration field ("5m") with a default; invalid values give def
 * (validation has refused them already). */
int64_t sq_kc_duration_ms(const json_t *obj, const char *path, int64_t def_ms);

/* The kstatus of another object: READY / STALLED / WAITING from its Ready and
 * Stalled conditions (MISSING when obj is NULL); reason gets Ready's reason. */
sq_vault_state sq_kc_object_state(const json_t *obj, char *reason, size_t reason_len);

#endif
