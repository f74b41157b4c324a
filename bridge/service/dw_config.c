/*
 * Loading the service configuration (dualwrite.json, DESIGN.md section 5).
 *
 * The file is parsed with cJSON and walked once, table-driven where the
 * shape allows, into struct dw_config; the cJSON tree is deleted before
 * returning.  Validation never stops at the first problem: each one becomes a
 * line "FILE: /json/path: message" and the load fails only at the end, so a
 * user fixes everything in one go.  Syntax errors say "FILE:LINE:COLUMN:".
 *
 * This file knows the sections and their rules; dw_config_value.c has the
 * plumbing (JSON paths, error lines, typed reads, ${ENV} and *_file secrets).
 * Keys starting with "//" are comments.
 */
#include "bridge/service/dw_config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"
#include "bridge/common/dw_utf8.h"

#define MIN_TOKEN_CHARS 16
#define DEFAULT_UNIX_SOCKET "/run/dualwrite/bridge.sock"

/* Connector types of the design, built or not, to tell "not in this build" from a typo. */
static const char *const known_types[] = {"pg", "odbc", "odata", NULL};

/* ---------------------------------------------------------------- values */

/* ---------------------------------------------------------------- sections */

/* Is host (from "host:port") a loopback address? */
static bool is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}

/* Check "host:port" / "[v6]:port"; returns false (reported) when malformed. */
static bool check_tcp(struct dw_config_loader *ld, const char *raw, const char *addr,
                      bool allow_remote)
{
    char host[256];
    const char *colon, *port;
    size_t hlen;
    long p;
    char *end;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');

        if (!close || close[1] != ':')
            goto bad;
        hlen = (size_t) (close - addr - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            goto bad;
        memcpy(host, addr + 1, hlen);
        port = close + 2;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || colon == addr || memchr(addr, ':', (size_t) (colon - addr)))
            goto bad;
        hlen = (size_t) (colon - addr);
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, addr, hlen);
        port = colon + 1;
    }
    host[hlen] = '\0';
    errno = 0;
    p = strtol(port, &end, 10);
    if (!*port || *end || errno || p < 1 || p > 65535 || port[0] == '+' || port[0] == '-')
        goto bad;
    if (!is_loopback(host) && !allow_remote) {
        dw_config_err(ld, "address %s is not a loopback address; set \"allow_remote\": true",
                      dw_config_quote(ld, raw));
        return false;
    }
    return true;
bad:
    dw_config_err(ld, "invalid address %s (expected \"host:port\" or \"[ipv6]:port\")",
                  dw_config_quote(ld, raw));
    return false;
}

static void parse_listen(struct dw_config_loader *ld, const cJSON *root)
{
    static const char *const keys[] = {"unix", "group", "tcp", "token", "token_file", "allow_remote", NULL};
    const cJSON *obj = dw_config_get_object(ld, root, "listen");
    struct dw_config *cfg = ld->cfg;
    struct dw_config_str s_unix, s_tcp, s_token, s_group;
    bool allow_remote = false;
    size_t old;

    if (!obj) {
        if (!dw_config_get(root, "listen"))
            cfg->listen_unix = strdup(DEFAULT_UNIX_SOCKET);
        return;
    }
    old = dw_config_push(ld, "listen");
    dw_config_check_keys(ld, obj, keys);
    dw_config_get_bool(ld, obj, "allow_remote", &allow_remote);
    if (dw_config_get_string(ld, obj, "unix", false, &s_unix) && s_unix.value) {
        if (!s_unix.value[0])
            dw_config_err_at(ld, "unix", "must not be empty");
        else if (!(cfg->listen_unix = dw_config_absolute(ld, s_unix.value)))
            dw_config_err(ld, "out of memory");
    }
    if (dw_config_get_string(ld, obj, "group", false, &s_group) && s_group.value) {
        /* The source's server user must be able to connect: 0660 plus this group. */
        struct group *gr = getgrnam(s_group.value);

        if (!gr)
            dw_config_err_at(ld, "group", "unknown group %s", dw_config_quote(ld, s_group.raw));
        else if (!(cfg->listen_group = strdup(s_group.value)))
            dw_config_err(ld, "out of memory");
        else
            cfg->listen_gid = (long) gr->gr_gid;
    }
    free(s_group.value);
    if (dw_config_get_string(ld, obj, "tcp", false, &s_tcp) && s_tcp.value) {
        size_t o = dw_config_push(ld, "tcp");

        if (check_tcp(ld, s_tcp.raw, s_tcp.value, allow_remote))
            cfg->listen_tcp = strdup(s_tcp.value);
        dw_config_pop(ld, o);
    }
    if (dw_config_get_secret(ld, obj, "token", &s_token) && s_token.value) {
        if (!dw_config_get(obj, "tcp"))
            dw_config_err(ld, "\"%s\" is only used with \"tcp\"",
                          dw_config_get(obj, "token") ? "token" : "token_file");
        else if (strlen(s_token.value) < MIN_TOKEN_CHARS)
            dw_config_err_at(ld, dw_config_get(obj, "token") ? "token" : "token_file",
                             "the token must have at least %d characters", MIN_TOKEN_CHARS);
        else {
            cfg->token = s_token.value;
            s_token.value = NULL;
        }
    } else if (dw_config_get(obj, "tcp") && !dw_config_get(obj, "token") &&
               !dw_config_get(obj, "token_file")) {
        dw_config_err(ld, "\"tcp\" needs a bearer token: add \"token\" or \"token_file\"");
    }
    if (!dw_config_get(obj, "unix") && !dw_config_get(obj, "tcp"))
        cfg->listen_unix = strdup(DEFAULT_UNIX_SOCKET);
    free(s_unix.value);
    free(s_tcp.value);
    free(s_token.value);
    dw_config_pop(ld, old);
}

static void parse_source(struct dw_config_loader *ld, const cJSON *root)
{
    static const char *const keys[] = {"conninfo", "conninfo_file", "system", NULL};
    const cJSON *obj = dw_config_get_object(ld, root, "source"), *sys;
    struct dw_config_str conninfo, system;
    size_t old;

    if (!obj) {
        if (!dw_config_get(root, "source"))
            dw_config_err(ld, "missing required key \"source\"");
        return;
    }
    old = dw_config_push(ld, "source");
    dw_config_check_keys(ld, obj, keys);
    if (dw_config_get_secret(ld, obj, "conninfo", &conninfo)) {
        if (!conninfo.value && !dw_config_get(obj, "conninfo_file"))
            dw_config_err(ld, "missing required key \"conninfo\"");
        ld->cfg->source_conninfo = conninfo.value;
    }
    sys = dw_config_get(obj, "system");
    if (sys && cJSON_IsNumber(sys)) {
        dw_config_err_at(ld, "system",
                         "expected a string, found a number (a system identifier does not "
                         "fit in a JSON number: quote it)");
    } else if (dw_config_get_string(ld, obj, "system", false, &system) && system.value) {
        if (!system.value[0] || strspn(system.value, "0123456789") != strlen(system.value) ||
            strlen(system.value) > 20)
            dw_config_err_at(ld, "system",
                             "expected a database system identifier (digits, as "
                             "pg_control_system() shows it)");
        else {
            ld->cfg->source_system = system.value;
            system.value = NULL;
        }
        free(system.value);
    }
    dw_config_pop(ld, old);
}

static void add_map_path(struct dw_config_loader *ld, const cJSON *j)
{
    struct dw_config *cfg = ld->cfg;
    struct dw_config_str s;
    struct stat st;
    char *abs;

    if (!dw_config_read_string(ld, j, &s))
        return;
    if (!s.value[0]) {
        dw_config_err(ld, "must not be empty");
        free(s.value);
        return;
    }
    abs = dw_config_absolute(ld, s.value);
    free(s.value);
    if (!abs) {
        dw_config_err(ld, "out of memory");
        return;
    }
    if (stat(abs, &st) != 0) {
        dw_config_err(ld, "could not access %s: %s", dw_config_quote(ld, s.raw), strerror(errno));
        free(abs);
        return;
    }
    cfg->map_paths[cfg->nmap_paths++] = abs;
}

static void parse_maps(struct dw_config_loader *ld, const cJSON *root)
{
    const cJSON *j = dw_config_get(root, "maps");
    size_t old, n;

    if (!j) {
        dw_config_err(ld, "missing required key \"maps\"");
        return;
    }
    old = dw_config_push(ld, "maps");
    n = cJSON_IsArray(j) ? (size_t) cJSON_GetArraySize(j) : 1;
    if (!cJSON_IsString(j) && !cJSON_IsArray(j)) {
        dw_config_err(ld, "expected a string or an array of strings, found %s", dw_config_jtype(j));
    } else if (n == 0) {
        dw_config_err(ld, "expected at least one path");
    } else if (!(ld->cfg->map_paths = calloc(n, sizeof(char *)))) {
        dw_config_err(ld, "out of memory");
    } else if (cJSON_IsString(j)) {
        add_map_path(ld, j);
    } else {
        size_t i = 0;

        for (const cJSON *item = j->child; item; item = item->next, i++) {
            size_t o = dw_config_push_index(ld, i);

            add_map_path(ld, item);
            dw_config_pop(ld, o);
        }
    }
    dw_config_pop(ld, old);
}

static void parse_limits(struct dw_config_loader *ld, const cJSON *obj, struct dw_limits *lim)
{
    static const char *const keys[] = {"records_per_transaction",
                                       "bytes_per_batch",
                                       "requests_per_window",
                                       "window_s",
                                       "execution_s_per_window",
                                       "concurrent",
                                       NULL};
    const cJSON *l = dw_config_get_object(ld, obj, "limits");
    size_t old;

    if (!l)
        return;
    old = dw_config_push(ld, "limits");
    dw_config_check_keys(ld, l, keys);
    dw_config_get_int(ld, l, "records_per_transaction", 0, 10000000, &lim->records_per_transaction);
    dw_config_get_int(ld, l, "bytes_per_batch", 0, 1L << 40, &lim->bytes_per_batch);
    dw_config_get_int(ld, l, "requests_per_window", 0, INT_MAX, &lim->requests_per_window);
    dw_config_get_int(ld, l, "window_s", 0, 86400, &lim->window_s);
    dw_config_get_int(ld, l, "execution_s_per_window", 0, INT_MAX, &lim->execution_s_per_window);
    dw_config_get_int(ld, l, "concurrent", 0, 100000, &lim->concurrent);
    if (lim->window_s == 0 && (lim->requests_per_window > 0 || lim->execution_s_per_window > 0))
        dw_config_err_at(ld, "window_s",
                         "must be above zero while \"requests_per_window\" or "
                         "\"execution_s_per_window\" is set");
    dw_config_pop(ld, old);
}

#define MAX_TYPE_SETTINGS 16

/* The keys a connector of this type accepts: common ones, then its settings and their _file forms.
 */
struct connector_keys {
    const char *keys[5 + 2 * MAX_TYPE_SETTINGS + 1];
    char files[MAX_TYPE_SETTINGS][64];
};

static void connector_keys(const struct dw_connector_ops *ops, struct connector_keys *ck)
{
    static const char *const common[] = {"type", "commit", "limits", "pool_size", "timeout_ms"};
    size_t n = 0;

    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
        ck->keys[n++] = common[i];
    for (size_t i = 0; ops->settings && ops->settings[i] && i < MAX_TYPE_SETTINGS; i++) {
        snprintf(ck->files[i], sizeof(ck->files[i]), "%s_file", ops->settings[i]);
        ck->keys[n++] = ops->settings[i];
        ck->keys[n++] = ck->files[i];
    }
    ck->keys[n] = NULL;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= 63 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static void parse_connector(struct dw_config_loader *ld, const char *name, const cJSON *obj,
                            struct dw_connector_entry *e)
{
    const struct dw_connector_ops *ops = NULL;
    struct dw_setting *settings;
    struct dw_config_str type, commit;
    struct connector_keys ck;
    size_t before = ld->nerrors, nset = 0;

    e->cfg.name = strdup(name);
    e->cfg.commit = DW_COMMIT_AUTO;
    e->cfg.timeout_ms = 30000;
    e->pool_size = 8;
    e->limits.records_per_transaction = 1000;
    e->limits.requests_per_window = 6000;
    e->limits.window_s = 300;
    e->limits.execution_s_per_window = 1200;
    e->limits.concurrent = 52;
    if (!valid_name(name))
        dw_config_err(ld,
                      "connector name %s must be 1 to 63 letters, digits, \"_\", \".\" or \"-\"",
                      dw_config_quote(ld, name));
    if (!cJSON_IsObject(obj)) {
        dw_config_err(ld, "expected an object, found %s", dw_config_jtype(obj));
        return;
    }
    if (dw_config_get_string(ld, obj, "type", true, &type) && type.value) {
        e->cfg.type = type.value;
        ops = dw_connector_find(type.value);
        if (!ops) {
            struct dw_buf b;
            bool designed = false;

            for (size_t i = 0; known_types[i]; i++)
                designed = designed || strcmp(known_types[i], type.value) == 0;
            dw_buf_init(&b);
            dw_config_list_quoted(&b, dw_connector_types());
            if (designed)
                dw_config_err_at(ld, "type",
                                 "connector type %s is not in this build (this build has %s)",
                                 dw_config_quote(ld, type.raw), b.data ? b.data : "none");
            else
                dw_config_err_at(ld, "type", "unknown connector type %s; valid types are %s",
                                 type.secret ? "(from the environment)"
                                             : dw_config_quote(ld, type.raw),
                                 b.data ? b.data : "none");
            dw_buf_cleanup(&b);
        }
    }
    if (dw_config_get_string(ld, obj, "commit", false, &commit) && commit.value) {
        if (!dw_commit_mode_parse(commit.value, &e->cfg.commit))
            dw_config_err_at(ld, "commit",
                             "invalid commit mode %s; valid modes are \"two-phase\", "
                             "\"one-phase\", \"auto\"",
                             commit.secret ? "(from the environment)"
                                           : dw_config_quote(ld, commit.raw));
        free(commit.value);
    }
    parse_limits(ld, obj, &e->limits);
    {
        long pool = e->pool_size;

        dw_config_get_int(ld, obj, "pool_size", 1, 1024, &pool);
        e->pool_size = (int) pool;
    }
    dw_config_get_int(ld, obj, "timeout_ms", 0, 3600000, &e->cfg.timeout_ms);
    if (!ops)
        return; /* without a type, the other keys cannot be judged */

    connector_keys(ops, &ck);
    dw_config_check_keys(ld, obj, ck.keys);

    /* the type's own settings, each a string, an ${ENV} string, or a _file */
    for (size_t i = 0; ops->settings && ops->settings[i] && i < MAX_TYPE_SETTINGS; i++)
        nset++;
    settings = calloc(nset ? nset : 1, sizeof(*settings));
    if (!settings) {
        dw_config_err(ld, "out of memory");
        return;
    }
    e->cfg.settings = settings;
    for (size_t i = 0; i < nset; i++) {
        struct dw_config_str v;

        if (!dw_config_get_secret(ld, obj, ops->settings[i], &v) || !v.value)
            continue;
        settings[e->cfg.nsettings].key = strdup(ops->settings[i]);
        settings[e->cfg.nsettings].value = v.value;
        settings[e->cfg.nsettings].secret = v.secret;
        if (!settings[e->cfg.nsettings].key)
            dw_config_err(ld, "out of memory");
        e->cfg.nsettings++;
    }
    if (ld->nerrors == before && ops->check) {
        struct dw_error ce;

        dw_error_clear(&ce);
        if (ops->check(&e->cfg, &ce) != DW_OK)
            dw_config_err(ld, "%s", ce.message);
    }
}

static void parse_connectors(struct dw_config_loader *ld, const cJSON *root)
{
    const cJSON *obj = dw_config_get_object(ld, root, "connectors");
    struct dw_config *cfg = ld->cfg;
    size_t old, n = 0;

    if (!obj) {
        if (!dw_config_get(root, "connectors"))
            dw_config_err(ld, "missing required key \"connectors\"");
        return;
    }
    old = dw_config_push(ld, "connectors");
    for (const cJSON *c = obj->child; c; c = c->next)
        n += !dw_config_is_comment(c->string);
    if (n == 0) {
        dw_config_err(ld, "expected at least one connector");
    } else if (!(cfg->connectors = calloc(n, sizeof(*cfg->connectors)))) {
        dw_config_err(ld, "out of memory");
    } else {
        for (const cJSON *c = obj->child; c; c = c->next) {
            size_t o;
            bool dup = false;

            if (dw_config_is_comment(c->string))
                continue;
            for (const cJSON *p = obj->child; p != c && !dup; p = p->next)
                dup = strcmp(p->string, c->string) == 0;
            if (dup) {
                dw_config_err(ld, "duplicate key %s", dw_config_quote(ld, c->string));
                continue;
            }
            o = dw_config_push(ld, c->string);
            parse_connector(ld, c->string, c, &cfg->connectors[cfg->nconnectors++]);
            dw_config_pop(ld, o);
        }
    }
    dw_config_pop(ld, old);
}

static void parse_resolver(struct dw_config_loader *ld, const cJSON *root)
{
    static const char *const keys[] = {"interval_ms", "grace_ms", NULL};
    const cJSON *obj = dw_config_get_object(ld, root, "resolver");
    size_t old;

    if (!obj)
        return;
    old = dw_config_push(ld, "resolver");
    dw_config_check_keys(ld, obj, keys);
    dw_config_get_int(ld, obj, "interval_ms", 10, 3600000, &ld->cfg->resolver_interval_ms);
    dw_config_get_int(ld, obj, "grace_ms", 0, 86400000, &ld->cfg->resolver_grace_ms);
    dw_config_pop(ld, old);
}

static void parse_service_limits(struct dw_config_loader *ld, const cJSON *root)
{
    static const char *const keys[] = {"max_body_bytes", "max_json_depth", NULL};
    const cJSON *obj = dw_config_get_object(ld, root, "limits");
    size_t old;

    if (!obj)
        return;
    old = dw_config_push(ld, "limits");
    dw_config_check_keys(ld, obj, keys);
    dw_config_get_int(ld, obj, "max_body_bytes", 1024, 1L << 30, &ld->cfg->max_body_bytes);
    dw_config_get_int(ld, obj, "max_json_depth", 2, 1000, &ld->cfg->max_json_depth);
    dw_config_pop(ld, old);
}

static void parse_log_level(struct dw_config_loader *ld, const cJSON *root)
{
    struct dw_config_str s;
    dw_log_level level;

    if (!dw_config_get_string(ld, root, "log_level", false, &s) || !s.value)
        return;
    if (!dw_log_parse_level(s.value, &level)) {
        dw_config_err_at(ld, "log_level",
                         "invalid log level %s; valid levels are \"debug\", \"info\", "
                         "\"warning\", \"error\"",
                         s.secret ? "(from the environment)" : dw_config_quote(ld, s.raw));
        free(s.value);
        return;
    }
    free(ld->cfg->log_level);
    ld->cfg->log_level = s.value;
}

/* ---------------------------------------------------------------- loading */

static void set_defaults(struct dw_config *cfg)
{
    cfg->listen_gid = -1;
    cfg->resolver_interval_ms = 1000;
    cfg->resolver_grace_ms = 5000;
    cfg->max_body_bytes = 64L * 1024 * 1024;
    cfg->max_json_depth = 64;
    cfg->log_level = strdup("info");
}

static void parse_root(struct dw_config_loader *ld, const cJSON *root)
{
    static const char *const keys[] = {"listen",   "source", "maps",      "connectors",
                                       "resolver", "limits", "log_level", NULL};

    if (!cJSON_IsObject(root)) {
        dw_config_err(ld, "expected an object, found %s", dw_config_jtype(root));
        return;
    }
    dw_config_check_keys(ld, root, keys);
    parse_listen(ld, root);
    parse_source(ld, root);
    parse_maps(ld, root);
    parse_connectors(ld, root);
    parse_resolver(ld, root);
    parse_service_limits(ld, root);
    parse_log_level(ld, root);
}

/* Absolute path of the file and its folder (the file need not be canonical). */
static bool locate(struct dw_config_loader *ld, const char *path)
{
    char cwd[PATH_MAX];
    char *abs, *slash;

    if (path[0] == '/') {
        abs = strdup(path);
    } else {
        if (!getcwd(cwd, sizeof(cwd)))
            return false;
        abs = malloc(strlen(cwd) + strlen(path) + 2);
        if (abs)
            sprintf(abs, "%s/%s", cwd, path);
    }
    if (!abs)
        return false;
    ld->cfg->file = abs;
    ld->dir = strdup(abs);
    if (!ld->dir)
        return false;
    slash = strrchr(ld->dir, '/');
    if (slash == ld->dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return true;
}

dw_errcode dw_config_load(const char *path, struct dw_config **out, char **errors,
                          struct dw_error *err)
{
    struct dw_config_loader ld;
    const char *end = NULL;
    cJSON *root = NULL;
    char *data = NULL;
    size_t len = 0, bad;

    *out = NULL;
    *errors = NULL;
    memset(&ld, 0, sizeof(ld));
    ld.display = path;
    dw_buf_init(&ld.errors);
    ld.cfg = calloc(1, sizeof(*ld.cfg));
    if (!ld.cfg || !locate(&ld, path)) {
        dw_config_free(ld.cfg);
        free(ld.dir);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    set_defaults(ld.cfg);

    data = dw_config_read_file(&ld, path, &len);
    if (!data)
        goto done;
    if (strlen(data) != len) {
        dw_config_syntax_error(&ld, data, strlen(data), "the file contains a NUL byte");
        goto done;
    }
    if (dw_utf8_validate(data, len, &bad) != DW_UTF8_OK) {
        dw_config_syntax_error(&ld, data, bad, "invalid UTF-8");
        goto done;
    }
    /* the length includes the NUL: cJSON checks for it after the value */
    root = cJSON_ParseWithLengthOpts(data, len + 1, &end, true);
    if (!root) {
        size_t pos = end && end >= data && end <= data + len ? (size_t) (end - data) : len;

        dw_config_syntax_error(&ld, data, pos, "invalid JSON");
        goto done;
    }
    parse_root(&ld, root);

done:
    cJSON_Delete(root);
    free(data);
    free(ld.dir);
    if (dw_buf_failed(&ld.errors)) {
        dw_buf_cleanup(&ld.errors);
        dw_config_free(ld.cfg);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    if (ld.nerrors) {
        dw_config_free(ld.cfg);
        *errors = dw_buf_take(&ld.errors);
        return dw_error_set(err, DW_ERR_CONFIG, "%s: the configuration has %zu error%s", path,
                            ld.nerrors, ld.nerrors == 1 ? "" : "s");
    }
    dw_buf_cleanup(&ld.errors);
    if (!ld.cfg->log_level || (!ld.cfg->listen_unix && !ld.cfg->listen_tcp)) {
        dw_config_free(ld.cfg);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    *out = ld.cfg;
    return DW_OK;
}

void dw_config_free(struct dw_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->file);
    free(cfg->listen_unix);
    free(cfg->listen_tcp);
    free(cfg->listen_group);
    free(cfg->token);
    free(cfg->source_conninfo);
    free(cfg->source_system);
    for (size_t i = 0; i < cfg->nmap_paths; i++)
        free(cfg->map_paths[i]);
    free(cfg->map_paths);
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        struct dw_connector_entry *e = &cfg->connectors[i];

        /* the entry owns its strings; the public struct shows them const */
        free((void *) e->cfg.name);
        free((void *) e->cfg.type);
        for (size_t s = 0; s < e->cfg.nsettings; s++) {
            free((void *) e->cfg.settings[s].key);
            free((void *) e->cfg.settings[s].value);
        }
        free((void *) e->cfg.settings);
    }
    free(cfg->connectors);
    free(cfg->log_level);
    free(cfg);
}

const struct dw_connector_entry *dw_config_connector(const struct dw_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        if (cfg->connectors[i].cfg.name && strcmp(cfg->connectors[i].cfg.name, name) == 0)
            return &cfg->connectors[i];
    }
    return NULL;
}
