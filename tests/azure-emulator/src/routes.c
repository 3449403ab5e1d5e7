/* routes.c — the list of route tables (match order) and LRO completion
 * hooks. A new provider adds its table and hooks here, one line each. */
#include "emu.h"
#include "sql.h"

const emu_route *const emu_route_tables[] = {
    emu_control_routes,
    emu_entra_routes,
    emu_kv_routes,
    emu_arm_keyvault_routes,
    emu_sql_routes,
    NULL,
};

const emu_lro_hook *const emu_lro_hooks[] = {
    &emu_sql_lro_hook,
    NULL,
};
