/*
 * The service configuration (dualwrite.json, DESIGN.md section 5), shared by
 * dualwrited, dwctl and dw-initsync (all take it with -c).
 *
 * Loaded with cJSON into these structs and validated completely: every error
 * is one line "FILE: /json/path: message", unknown keys list the valid ones,
 * secrets come through ${ENV} or *_file settings and are never logged.
 * Relative paths are relative to the configuration file.
 *
 * Details of the rules (bridge/service/dualwrite.example.json shows them all):
 * "${NAME}" reads an environment variable ("$${" is a literal "${"); a
 * setting X of a connector, listen.token and source.conninfo may instead be
 * read from the file named by X_file (one trailing newline removed).  TCP
 * listening needs a token of at least 16 characters and a loopback address
 * unless listen.allow_remote is true.  Without "listen" the Unix socket
 * /run/dualwrite/bridge.sock is used.  Keys starting with "//" are comments.
 */
#ifndef DW_CONFIG_H
#define DW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge/common/dw_error.h"
#include "connectors/dw_connector.h"

/* Sync limits of one connector (DESIGN.md section 7); 0 means off. */
struct dw_limits {
    long records_per_transaction;
    long bytes_per_batch;
    long requests_per_window;
    long window_s;
    long execution_s_per_window;
    long concurrent;
};

struct dw_connector_entry {
    struct dw_connector_config cfg;  /* name, type, commit, settings */
    struct dw_limits limits;
    int pool_size;                   /* target sessions, default 8 */
};

struct dw_config {
    char *file;              /* absolute path of the file it came from */
    char *listen_unix;       /* socket path, NULL when not listening there */
    char *listen_tcp;        /* "host:port", NULL when off */
    char *listen_group;      /* group that owns the Unix socket, NULL = the daemon's */
    long listen_gid;         /* its id, resolved at load; -1 when not set */
    char *token;             /* bearer token for TCP (secret), NULL when no TCP */
    char *source_conninfo;   /* the source database (secret-expanded) */
    char *source_system;     /* expected source system identifier, NULL = any */
    size_t nmap_paths;
    char **map_paths;        /* absolute */
    size_t nconnectors;
    struct dw_connector_entry *connectors;
    long resolver_interval_ms;   /* default 1000 */
    long resolver_grace_ms;      /* outcome wait before asking the source; default 5000 */
    long max_body_bytes;         /* request size limit; default 64 MiB */
    long max_json_depth;         /* nesting limit of request bodies; default 64 */
    char *log_level;             /* "info" by default */
};

/*
 * Load and validate.  On failure every error line is in *errors (caller frees
 * with free()) and err summarizes; on success *out is new (dw_config_free).
 */
dw_errcode dw_config_load(const char *path, struct dw_config **out, char **errors,
                          struct dw_error *err) DW_MUST_CHECK;
void dw_config_free(struct dw_config *cfg);

/* Borrowed; NULL when absent. */
const struct dw_connector_entry *dw_config_connector(const struct dw_config *cfg,
                                                     const char *name);

#endif
