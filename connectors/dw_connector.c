/*
 * The connector registry: one table of the target kinds this build has, and
 * the few helpers every backend and the service share (setting lookup, freeing
 * a list of prepared-transaction ids).
 *
 * A kind joins the registry by adding its ops to the table below, guarded by
 * the build option that compiles it (odbc and odata come later).
 */
#include "connectors/dw_connector.h"

#include <stdlib.h>
#include <string.h>

#include "connectors/odata/dw_odata.h"
#include "connectors/odbc/dw_odbc.h"
#include "connectors/pg/dw_pg.h"

static const struct dw_connector_ops *const registry[] = {
    &dw_pg_connector,
    &dw_odbc_connector,
    &dw_odata_connector,
};

#define NREGISTRY (sizeof(registry) / sizeof(registry[0]))

/* The registry's types in the same order, for messages (test_pg_connector checks they agree). */
static const char *const type_names[NREGISTRY + 1] = {
    "pg",
    "odbc",
    "odata",
    NULL,
};

const struct dw_connector_ops *dw_connector_find(const char *type)
{
    if (!type)
        return NULL;
    for (size_t i = 0; i < NREGISTRY; i++) {
        if (strcmp(registry[i]->type, type) == 0)
            return registry[i];
    }
    return NULL;
}

const char *const *dw_connector_types(void)
{
    return type_names;
}

const char *dw_connector_setting(const struct dw_connector_config *cfg, const char *key)
{
    if (!cfg || !key)
        return NULL;
    for (size_t i = 0; i < cfg->nsettings; i++) {
        if (cfg->settings[i].key && strcmp(cfg->settings[i].key, key) == 0)
            return cfg->settings[i].value;
    }
    return NULL;
}

bool dw_connector_setting_secret(const struct dw_connector_config *cfg, const char *key)
{
    if (!cfg || !key)
        return false;
    for (size_t i = 0; i < cfg->nsettings; i++) {
        if (cfg->settings[i].key && strcmp(cfg->settings[i].key, key) == 0)
            return cfg->settings[i].secret;
    }
    return false;
}

const char *dw_commit_mode_name(dw_commit_mode mode)
{
    switch (mode) {
    case DW_COMMIT_AUTO: return "auto";
    case DW_COMMIT_TWO_PHASE: return "two-phase";
    case DW_COMMIT_ONE_PHASE: return "one-phase";
    }
    return "unknown";
}

bool dw_commit_mode_parse(const char *name, dw_commit_mode *out)
{
    static const dw_commit_mode modes[] = {DW_COMMIT_AUTO, DW_COMMIT_TWO_PHASE,
                                           DW_COMMIT_ONE_PHASE};

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(name, dw_commit_mode_name(modes[i])) == 0) {
            *out = modes[i];
            return true;
        }
    }
    return false;
}

void dw_connector_free_gids(char **gids, size_t n)
{
    if (!gids)
        return;
    for (size_t i = 0; i < n; i++)
        free(gids[i]);
    free(gids);
}
