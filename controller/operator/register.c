/* register.c — every controller, in dependency order; see
 * include/sqltde/operator/register.h. */
#include "sqltde/operator/register.h"

#include "sqltde/operator/controllers.h"

sq_code sq_register_controllers(sq_op *op, int workers, sq_err *err) {
  sq_code rc = sq_key_controllers_register(op, workers, err);
  if(!rc)
    rc = sq_sqlserver_controller_register(op, workers, err);
  if(!rc)
    rc = sq_sqldatabase_controller_register(op, workers, err);
  return rc;
}
