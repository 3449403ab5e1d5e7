/* operator/controllers.h — the per-kind controllers, registered with the
 * manager of an initialised sq_op (operator/op.h).
 *
 * Call after sq_op_init and before sq_manager_run. Each register function
 * adds the controller for its kind with `workers` workers (1..64) and the
 * watches of the secondary kinds it depends on, so every informer exists
 * before the manager starts. op is borrowed and must outlive the manager.
 * Errors: SQ_EINVAL (workers), SQ_ESTATE (too many controllers/informers),
 * SQ_ENOMEM.
 *
 * Key management (controller/operator/{keyvault,vaultkey,identity}.c):
 *   KeyVault         probes each vault (ARM resource + data plane), records
 *                    reachable / soft delete / purge protection / RBAC; Ready
 *                    only when Azure SQL could use it.
 *   VaultKey         creates, imports or adopts a key, replicates its
 *                    material to every listed vault, tracks versions and
 *                    thumbprints, rotates, warns before expiry; its finalizer
 *                    never deletes key material.
 *   ManagedIdentity  checks through ARM that the identity holds get/wrapKey/
 *                    unwrapKey on every key used with it, naming what is
 *                    missing and reporting fresh grants as pending.
 * Keys ("ns/name") of their secondary kinds wake them: a KeyVault's readiness
 * change its VaultKeys; a SqlServer/SqlDatabase change the identity it names
 * and the VaultKeys it references while they are being deleted. */
#ifndef SQLTDE_OPERATOR_CONTROLLERS_H
#define SQLTDE_OPERATOR_CONTROLLERS_H

#include "sqltde/err.h"
#include "sqltde/operator/op.h"

sq_code sq_keyvault_controller_register(sq_op *op, int workers, sq_err *err);
sq_code sq_vaultkey_controller_register(sq_op *op, int workers, sq_err *err);
sq_code sq_identity_controller_register(sq_op *op, int workers, sq_err *err);

/* The three above, in dependency order (vaults, keys, identities). */
sq_code sq_key_controllers_register(sq_op *op, int workers, sq_err *err);

/* SqlServer and SqlDatabase (controller/operator/{sqlserver,sqldatabase}.c):
 * gather (operator/gather.h) -> pure planner (plan/plan.h) -> execute the
 * steps (operator/execute.h) -> status -> requeue. SqlServer is woken by its
 * VaultKey and ManagedIdentity; SqlDatabase by its SqlServer, VaultKeys and
 * ManagedIdentity. */
sq_code sq_sqlserver_controller_register(sq_op *op, int workers, sq_err *err);
sq_code sq_sqldatabase_controller_register(sq_op *op, int workers, sq_err *err);

#endif
