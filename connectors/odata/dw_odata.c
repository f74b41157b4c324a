/*
 * The odata connector's sessions: checking the settings, opening and closing
 * a session, the service's data model ($metadata) shared by every session of
 * a service root in the process, and the catalog checks made at startup.
 *
 * A session is a libcurl handle plus the bearer token; opening one makes sure
 * the service answers and the token is accepted by getting the model, which
 * only the first session of a service root fetches.  $metadata can be large
 * (Dataverse's runs to tens of megabytes), so it is fetched once, parsed into
 * a compact read-only model and shared; it is fetched again only when a batch
 * or a check names an entity set or property the model lacks and the model
 * is more than a minute old (a column added on the service since).
 */
#include "connectors/odata/dw_odata.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"
#include "connectors/odata/dw_odata_int.h"

/* A model younger than this is not fetched again for a missing name. */
#define MODEL_REFRESH_MS 60000
/* $metadata may take a while on a big service: at least this long. */
#define METADATA_MIN_TIMEOUT_MS 120000

static const char *const odata_settings[] = {"url", "token", "token_file", "ca_file", NULL};

static const char *conn_name(const struct odata_session *s)
{
    return s->base.config && s->base.config->name ? s->base.config->name : "?";
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- settings */

static bool is_loopback(const char *host)
{
    struct in_addr a4;

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, "::1") == 0)
        return true;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* The URL for messages, or a placeholder when it came from a secret. */
static const char *shown_url(const struct dw_connector_config *cfg, const char *url)
{
    return dw_connector_setting_secret(cfg, "url") ? "(from the environment or a file)" : url;
}

static dw_errcode check_url(const struct dw_connector_config *cfg, const char *url,
                            struct dw_error *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL, *query = NULL,
         *fragment = NULL;
    dw_errcode rc = DW_OK;

    if (!u)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"url\" %s is not a valid URL",
                          shown_url(cfg, url));
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
    if (user || password) {
        /* do not show it: it holds a credential */
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"url\" must not hold a user name or password");
        dw_error_hint(err, "Give the service's bearer token in \"token\" or \"token_file\".");
    } else if (!scheme || (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0)) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"url\" %s must use https", shown_url(cfg, url));
    } else if (!host || !host[0]) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"url\" %s has no host", shown_url(cfg, url));
    } else if (strcasecmp(scheme, "http") == 0 && !is_loopback(host)) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"url\" %s must use https: plain http is allowed "
                          "only to a loopback host (localhost, 127.0.0.0/8, [::1]), because the "
                          "bearer token and the rows would cross the network in clear text",
                          shown_url(cfg, url));
    } else if (query || fragment) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"url\" %s must not have a query or a fragment: "
                          "it is the service root", shown_url(cfg, url));
    } else if (url[strlen(url) - 1] != '/') {
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"url\" %s must end with \"/\": it is the service "
                          "root, and entity set names are appended to it", shown_url(cfg, url));
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(query);
    curl_free(fragment);
    curl_url_cleanup(u);
    return rc;
}

static dw_errcode odata_check(const struct dw_connector_config *cfg, struct dw_error *err)
{
    const char *url = dw_connector_setting(cfg, "url");
    const char *token = dw_connector_setting(cfg, "token");
    const char *token_file = dw_connector_setting(cfg, "token_file");
    const char *ca = dw_connector_setting(cfg, "ca_file");
    dw_errcode rc;

    if (!url || !*url)
        return dw_error_set(err, DW_ERR_CONFIG, "\"url\" is required for type \"odata\"");
    if ((rc = check_url(cfg, url, err)) != DW_OK)
        return rc;
    if (cfg->commit == DW_COMMIT_TWO_PHASE) {
        dw_error_set(err, DW_ERR_CONFIG, "cannot use commit \"two-phase\" with type \"odata\": "
                     "OData services have no prepare");
        dw_error_hint(err, "Use commit \"one-phase\" or \"auto\".");
        return DW_ERR_CONFIG;
    }
    if (token_file && token_file[0] != '/')
        return dw_error_set(err, DW_ERR_CONFIG, "\"token_file\" must be an absolute path: the "
                            "connector reads it again whenever it changes");
    if (!token_file && token) {
        for (const char *p = token; *p; p++)
            if ((unsigned char) *p < 0x21 || (unsigned char) *p > 0x7e)
                return dw_error_set(err, DW_ERR_CONFIG, "\"token\" has characters a bearer token "
                                    "cannot have (spaces, line breaks or non-ASCII)");
        if (!*token)
            return dw_error_set(err, DW_ERR_CONFIG, "\"token\" is empty");
    }
    if (ca && access(ca, R_OK) != 0)
        return dw_error_set(err, DW_ERR_CONFIG, "could not read \"ca_file\" \"%s\"", ca);
    return DW_OK;
}

/* ---------------------------------------------------------------- the shared model */

struct cache_entry {
    char *root;
    struct odata_model *model;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t fetch_lock = PTHREAD_MUTEX_INITIALIZER;   /* one $metadata download at a time */
static struct cache_entry *cache;
static size_t ncache, cachecap;

static void model_release(struct odata_model *m)
{
    bool last;

    if (!m)
        return;
    pthread_mutex_lock(&cache_lock);
    last = --m->refs == 0;
    pthread_mutex_unlock(&cache_lock);
    if (last) {
        dw_odata_metadata_free(m->meta);
        free(m);
    }
}

/* Under cache_lock: the entry of root, or NULL. */
static struct cache_entry *cache_find(const char *root)
{
    for (size_t i = 0; i < ncache; i++)
        if (strcmp(cache[i].root, root) == 0)
            return &cache[i];
    return NULL;
}

/*
 * The cached model of s's root if it is newer than what s has (or s has
 * none), with a reference for s; NULL otherwise.
 */
static struct odata_model *cache_take_newer(struct odata_session *s)
{
    struct odata_model *m = NULL;
    struct cache_entry *e;

    pthread_mutex_lock(&cache_lock);
    e = cache_find(s->root);
    if (e && e->model != s->model &&
        (!s->model || e->model->fetched_ms > s->model->fetched_ms)) {
        m = e->model;
        m->refs++;
    }
    pthread_mutex_unlock(&cache_lock);
    return m;
}

/* Put m in the cache for s's root (the cache takes one reference). */
static bool cache_put(struct odata_session *s, struct odata_model *m)
{
    struct odata_model *old = NULL;
    struct cache_entry *e;
    bool ok = true;

    pthread_mutex_lock(&cache_lock);
    e = cache_find(s->root);
    if (!e) {
        if (ncache == cachecap) {
            size_t cap = cachecap ? cachecap * 2 : 4;
            struct cache_entry *p = realloc(cache, cap * sizeof(*p));

            if (p) {
                cache = p;
                cachecap = cap;
            }
        }
        if (ncache < cachecap && (cache[ncache].root = strdup(s->root))) {
            e = &cache[ncache++];
            e->model = NULL;
        } else {
            ok = false;
        }
    }
    if (e) {
        old = e->model;
        e->model = m;
        m->refs++;
    }
    pthread_mutex_unlock(&cache_lock);
    model_release(old);
    return ok;
}

static dw_errcode fetch_model(struct odata_session *s, struct odata_model **out,
                              struct dw_error *err)
{
    const struct dw_connector_config *cfg = s->base.config;
    struct odata_model *m;
    struct dw_odata_metadata *meta;
    struct dw_buf url;
    dw_errcode rc;
    long timeout = cfg->timeout_ms;

    *out = NULL;
    dw_buf_init(&url);
    dw_buf_printf(&url, "%s$metadata", s->root);
    if (dw_buf_failed(&url))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    if (timeout > 0 && timeout < METADATA_MIN_TIMEOUT_MS) {
        curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long) METADATA_MIN_TIMEOUT_MS);
        s->timeout_ms = METADATA_MIN_TIMEOUT_MS;
    }
    rc = dw_odata_http(s, url.data, NULL, NULL, 0, "application/xml", NULL, ODATA_MAX_METADATA,
                       "reading $metadata", err);
    if (timeout > 0 && timeout < METADATA_MIN_TIMEOUT_MS) {
        curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, timeout);
        s->timeout_ms = timeout;
    }
    dw_buf_cleanup(&url);
    if (rc == DW_OK && s->resp.status != 200) {
        if (s->resp.status >= 200 && s->resp.status < 300)
            rc = dw_error_set(err, DW_ERR_PROTOCOL, "the OData service answered $metadata with "
                              "HTTP %ld, not 200", s->resp.status);
        else
            rc = dw_odata_status_error(s, s->resp.status, s->resp.retry_after, s->resp.body.data,
                                       s->resp.body.len, NULL, 0, err);
    }
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not read the $metadata of connector \"%s\"", conn_name(s));
        return rc;
    }
    rc = dw_odata_metadata_parse(s->resp.body.data ? s->resp.body.data : "", s->resp.body.len,
                                 &meta, err);
    /* the document can be big: do not keep its buffer around */
    dw_buf_cleanup(&s->resp.body);
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not read the $metadata of connector \"%s\"", conn_name(s));
        return rc;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        dw_odata_metadata_free(meta);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    m->meta = meta;
    m->fetched_ms = now_ms();
    m->refs = 1;
    dw_debug("connector \"%s\": $metadata has %zu entity sets", conn_name(s), meta->nsets);
    *out = m;
    return DW_OK;
}

dw_errcode dw_odata_model(struct odata_session *s, bool refresh, struct dw_error *err)
{
    struct odata_model *m;
    dw_errcode rc;

    if (s->model && (!refresh || now_ms() - s->model->fetched_ms < MODEL_REFRESH_MS))
        return DW_OK;
    if ((m = cache_take_newer(s)) != NULL)
        goto adopt;
    pthread_mutex_lock(&fetch_lock);
    /* another session may have fetched it while we waited */
    if ((m = cache_take_newer(s)) == NULL) {
        rc = fetch_model(s, &m, err);
        if (rc != DW_OK) {
            pthread_mutex_unlock(&fetch_lock);
            return rc;
        }
        if (!cache_put(s, m))
            dw_debug("connector \"%s\": $metadata not cached (out of memory)", conn_name(s));
    }
    pthread_mutex_unlock(&fetch_lock);
adopt:
    model_release(s->model);
    s->model = m;
    return DW_OK;
}

/* ---------------------------------------------------------------- sessions */

static void odata_close(struct dw_session *base)
{
    struct odata_session *s = (struct odata_session *) base;

    if (!s)
        return;
    dw_odata_batch_cleanup(s);
    if (s->curl)
        curl_easy_cleanup(s->curl);
    model_release(s->model);
    if (s->token) {
        memset(s->token, 0, strlen(s->token));
        free(s->token);
    }
    dw_buf_cleanup(&s->req);
    dw_buf_cleanup(&s->resp.body);
    dw_arena_cleanup(&s->arena);
    free(s->root);
    free(s);
}

static dw_errcode odata_open(const struct dw_connector_config *cfg, struct dw_session **out,
                             struct dw_error *err)
{
    const char *url = dw_connector_setting(cfg, "url");
    const char *token_file = dw_connector_setting(cfg, "token_file");
    const char *token = dw_connector_setting(cfg, "token");
    struct odata_session *s;
    dw_errcode rc;

    *out = NULL;
    if ((rc = odata_check(cfg, err)) != DW_OK)
        return rc;
    s = calloc(1, sizeof(*s));
    if (!s)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    s->base.ops = &dw_odata_connector;
    s->base.config = cfg;
    s->base.failed_op = -1;
    s->base.two_phase = false;
    dw_buf_init(&s->parts);
    dw_buf_init(&s->req);
    dw_buf_init(&s->resp.body);
    dw_arena_init(&s->arena, 16 * 1024);
    s->root = strdup(url);
    /* with token_file, "token" holds the file's contents at config load: the file wins */
    s->token_file = token_file;
    if (!token_file && token)
        s->token = strdup(token);
    if (!s->root || (!token_file && token && !s->token)) {
        odata_close(&s->base);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    rc = dw_odata_http_init(s, err);
    if (rc == DW_OK)
        rc = dw_odata_model(s, false, err);
    if (rc != DW_OK) {
        odata_close(&s->base);
        return rc;
    }
    s->base.broken = false;
    *out = &s->base;
    return DW_OK;
}

/* ---------------------------------------------------------------- catalog checks */

static dw_errcode find_set(struct odata_session *s, const char *table,
                           const struct dw_odata_set **out, struct dw_error *err)
{
    dw_errcode rc;

    *out = NULL;
    if (s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot check a table while a batch is in "
                            "progress");
    for (int attempt = 0; attempt < 2 && !*out; attempt++) {
        if ((rc = dw_odata_model(s, attempt > 0, err)) != DW_OK)
            return rc;
        *out = dw_odata_metadata_set(s->model->meta, table);
    }
    if (!*out) {
        dw_error_set(err, DW_ERR_CONFIG, "entity set \"%s\" does not exist in the OData service",
                     table);
        dw_error_hint(err, "Entity set names are case-sensitive; the service's $metadata lists "
                      "them (Dataverse uses the plural, lowercase \"EntitySetName\").");
        return DW_ERR_CONFIG;
    }
    return DW_OK;
}

static dw_errcode odata_check_table(struct dw_session *base, const char *table,
                                    const char *const *columns, size_t ncolumns,
                                    struct dw_error *err)
{
    struct odata_session *s = (struct odata_session *) base;
    const struct dw_odata_set *set;
    struct dw_buf missing, unsupported;
    struct dw_error local;
    size_t nmissing = 0, nunsupported = 0;
    dw_errcode rc;

    if ((rc = find_set(s, table, &set, err)) != DW_OK)
        return rc;
    dw_buf_init(&missing);
    dw_buf_init(&unsupported);
    for (int attempt = 0; attempt < 2; attempt++) {
        dw_buf_reset(&missing);
        dw_buf_reset(&unsupported);
        nmissing = nunsupported = 0;
        for (size_t i = 0; i < ncolumns; i++) {
            const char *at = strchr(columns[i], '@');
            const struct dw_odata_property *p = at ? NULL : dw_odata_set_property(set, columns[i]);

            if (at) {
                /* an instance annotation of a navigation property ("parent@odata.bind") */
                char nav[256];

                snprintf(nav, sizeof(nav), "%.*s", (int) (at - columns[i]), columns[i]);
                if (!nav[0] || dw_odata_set_has_nav(set, nav))
                    continue;
            }
            if (!p) {
                dw_buf_printf(&missing, "%s\"%s\"", nmissing++ ? ", " : "", columns[i]);
            } else if (p->kind == DW_ODATA_OTHER) {
                dw_buf_printf(&unsupported, "%s\"%s\" (%s)", nunsupported++ ? ", " : "",
                              p->name, p->type);
            }
        }
        if (!nmissing || attempt > 0)
            break;
        /* a column added since we read $metadata?  (if that fails, say what is missing) */
        dw_error_clear(&local);
        if (dw_odata_model(s, true, &local) != DW_OK ||
            !(set = dw_odata_metadata_set(s->model->meta, table)))
            break;
    }
    if (dw_buf_failed(&missing) || dw_buf_failed(&unsupported)) {
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    } else if (nmissing) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "entity set \"%s\" has no propert%s %s", table,
                          nmissing > 1 ? "ies" : "y", missing.data);
        dw_error_hint(err, "Property names are case-sensitive; a navigation property is written "
                      "as \"name@odata.bind\".");
    } else if (nunsupported) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "entity set \"%s\" has propert%s of a type the "
                          "odata connector cannot write: %s", table,
                          nunsupported > 1 ? "ies" : "y", unsupported.data);
    }
    dw_buf_cleanup(&missing);
    dw_buf_cleanup(&unsupported);
    return rc;
}

static dw_errcode odata_check_key(struct dw_session *base, const char *table,
                                  const char *const *key, size_t nkey, struct dw_error *err)
{
    struct odata_session *s = (struct odata_session *) base;
    const struct dw_odata_set *set;
    const struct dw_odata_altkey *alt;
    struct dw_buf want, have;
    dw_errcode rc;

    if ((rc = find_set(s, table, &set, err)) != DW_OK)
        return rc;
    if (dw_odata_key_match(set, key, nkey, &alt) != 0) {
        for (size_t i = 0; i < nkey; i++) {
            const struct dw_odata_property *p = dw_odata_set_property(set, key[i]);

            if (p && (p->kind == DW_ODATA_OTHER || p->kind == DW_ODATA_ENUM))
                return dw_error_set(err, DW_ERR_CONFIG, "key property \"%s\" of entity set "
                                    "\"%s\" has type \"%s\", which the odata connector cannot "
                                    "write in a URL", p->name, table, p->type);
        }
        return DW_OK;
    }
    dw_buf_init(&want);
    dw_buf_init(&have);
    for (size_t i = 0; i < nkey; i++)
        dw_buf_printf(&want, "%s\"%s\"", i ? ", " : "", key[i]);
    for (size_t i = 0; i < set->nkey; i++)
        dw_buf_printf(&have, "%s\"%s\"", i ? ", " : "", set->key[i]->name);
    if (dw_buf_failed(&want) || dw_buf_failed(&have)) {
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    } else {
        rc = dw_error_set(err, DW_ERR_CONFIG, "the key (%s) is neither the key (%s) nor an "
                          "alternate key of entity set \"%s\"", want.data ? want.data : "",
                          have.data ? have.data : "none", table);
        dw_error_hint(err, "Entities are addressed by key in the URL (PATCH %s(key)); an "
                      "alternate key must be declared by the service (Core.AlternateKeys).",
                      table);
    }
    dw_buf_cleanup(&want);
    dw_buf_cleanup(&have);
    return rc;
}

const struct dw_connector_ops dw_odata_connector = {
    .type = "odata",
    .settings = odata_settings,
    .check = odata_check,
    .open = odata_open,
    .check_table = odata_check_table,
    .begin = dw_odata_begin,
    .apply = dw_odata_apply,
    .commit = dw_odata_commit,
    .rollback = dw_odata_rollback,
    .close = odata_close,
    .check_key = odata_check_key,
};
