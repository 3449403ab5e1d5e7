/* operator/register.h — registers every controller of the operator with the
 * manager, in one place (main calls it; e2e tests run the real binary). */
#ifndef SQLTDE_OPERATOR_REGISTER_H
#define SQLTDE_OPERATOR_REGISTER_H

#include "sqltde/err.h"
#include "sqltde/operator/op.h"

/* workers: per controller (--max-concurrent-reconciles). */
sq_code sq_register_controllers(sq_op *op, int workers, sq_err *err);

#endif
