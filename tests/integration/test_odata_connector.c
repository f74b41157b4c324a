/*
 * The odata connector against a real OData v4 server: SAP CAP on SQLite from
 * tests/fixtures/odataserver, bootstrapped to behave like Dataverse (ordered,
 * atomic changesets; PATCH as upsert; 400 for constraint errors; a bearer
 * token; faults on request through its /dw-fixture control endpoints).
 *
 * Covers the settings checks, the catalog checks from $metadata, upserts that
 * create and update, deletes (also of entities that are not there), composite
 * keys, every EDM type there and back, keys that need escaping, a rejected
 * changeset leaving nothing behind with the service's code and message, 401
 * and 403, 429 and 503 with Retry-After, 5xx, timeouts, truncated, garbled
 * and dropped answers, a 200-operation batch, a token file changing under a
 * live session, and what goes on the wire.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bridge/common/dw_json.h"
#include "bridge/common/dw_log.h"
#include "connectors/dw_connector.h"
#include "tests/fixtures/dw_fixture.h"
#include "tests/unit/common/dw_cunit.h"

#define TOKEN "tok-main-0123456789"

static const struct dw_connector_ops *od;
static char script[1024];
static char serverdir[512];
static char base[256];     /* http://127.0.0.1:PORT */
static char root[320];     /* base + /api/data/v9.2/ */
static struct dw_arena arena;

/* ---------------------------------------------------------------- fixture */

static bool find_script(void)
{
    const char *env = getenv("DW_ODATASERVER");
    const char *src = getenv("DW_SOURCE_ROOT");

    if (env && *env)
        snprintf(script, sizeof(script), "%s", env);
    else if (src)
        snprintf(script, sizeof(script), "%s/tests/fixtures/odataserver", src);
    else
        return false;
    return access(script, X_OK) == 0;
}

static bool start_server(void)
{
    char cmd[2048], out[64] = "", pidfile[600];
    FILE *p;
    int status, port = 0;

    snprintf(serverdir, sizeof(serverdir), "%s/odata", dw_fixture_tmpdir());
    snprintf(cmd, sizeof(cmd), "'%s' start '%s' --token %s --owner %d", script, serverdir, TOKEN,
             (int) getpid());
    p = popen(cmd, "r");
    if (!p)
        return false;
    if (!fgets(out, sizeof(out), p))
        out[0] = '\0';
    status = pclose(p);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        fprintf(stderr, "SKIP: node and npm are needed for the OData test server\n");
        exit(77);
    }
    snprintf(pidfile, sizeof(pidfile), "%s/pid", serverdir);
    p = fopen(pidfile, "r");
    if (p) {
        int pid = 0;

        if (fscanf(p, "%d", &pid) == 1 && pid > 0)
            dw_fixture_track_pid((pid_t) pid);
        fclose(p);
    }
    if (status != 0 || sscanf(out, "%d", &port) != 1 || port <= 0) {
        fprintf(stderr, "could not start the OData test server (%s)\n", out);
        return false;
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    snprintf(root, sizeof(root), "%s/api/data/v9.2/", base);
    return true;
}

static void stop_server(void)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd), "'%s' stop '%s'", script, serverdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not stop the OData test server\n");
}

/* ---------------------------------------------------------------- our own HTTP client */

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    dw_buf_append(arg, data, size * n);
    return size * n;
}

/* method url with an optional body of content_type; returns the status, *out the body (static). */
static long http_as(const char *method, const char *url, const char *content_type,
                    const char *json, const char **out)
{
    static struct dw_buf body;
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    char ct[200];
    long status = 0;

    dw_buf_reset(&body);
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
    h = curl_slist_append(h, "Authorization: Bearer " TOKEN);
    h = curl_slist_append(h, ct);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    dw_buf_putc(&body, '\0');
    body.len--;
    if (out)
        *out = body.data ? body.data : "";
    return status;
}

static long http(const char *method, const char *url, const char *json, const char **out)
{
    return http_as(method, url, "application/json", json, out);
}

static void control(const char *method, const char *path, const char *json)
{
    char url[512];

    snprintf(url, sizeof(url), "%s/dw-fixture/%s", base, path);
    CU_ASSERT_EQUAL(http(method, url, json, NULL), 204);
}

static void fault(const char *json)
{
    control("POST", "faults", json);
}

static void tokens(const char *json)
{
    control("PUT", "tokens", json);
}

/* GET root + path as JSON (parsed into arena); NULL on 404. */
static const struct dw_json *get(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const struct dw_json *get(const char *fmt, ...)
{
    char url[1024], path[700];
    const char *text;
    struct dw_json *j = NULL;
    struct dw_error err;
    va_list ap;
    long st;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    snprintf(url, sizeof(url), "%s%s", root, path);
    st = http("GET", url, NULL, &text);
    if (st == 404)
        return NULL;
    if (st != 200)
        fprintf(stderr, "\n    GET %s: %ld %s\n", path, st, text);
    CU_ASSERT_EQUAL_FATAL(st, 200);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(dw_json_parse(text, strlen(text), NULL, &arena, &j, &err), DW_OK);
    return j;
}

/* A member of an entity as text: strings as they are, numbers as written, "null", "true". */
static const char *field(const struct dw_json *e, const char *name)
{
    const struct dw_json *v = e ? dw_json_find(e, name) : NULL;

    if (!v)
        return "(absent)";
    switch (v->type) {
    case DW_JSON_STRING: return v->u.string;
    case DW_JSON_NUMBER: return v->u.number;
    case DW_JSON_BOOL: return v->u.boolean ? "true" : "false";
    case DW_JSON_NULL: return "null";
    default: return "(structured)";
    }
}

static long count(const char *set)
{
    const struct dw_json *j = get("%s?$count=true&$top=0", set);
    int64_t n = -1;

    CU_ASSERT_TRUE(dw_json_get_int64(dw_json_find(j, "@odata.count"), &n));
    return (long) n;
}

/* The last $batch request the server saw: its headers and body. */
static const struct dw_json *last_request(void)
{
    char url[512];
    const char *text;
    struct dw_json *j = NULL;
    struct dw_error err;

    snprintf(url, sizeof(url), "%s/dw-fixture/requests", base);
    CU_ASSERT_EQUAL_FATAL(http("GET", url, NULL, &text), 200);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(dw_json_parse(text, strlen(text), NULL, &arena, &j, &err), DW_OK);
    CU_ASSERT_FATAL(j->type == DW_JSON_ARRAY && j->len > 0);
    return &j->u.items[j->len - 1];
}

/* How many $batch ("batch") or $metadata ("metadata") requests the server has seen. */
static long seen(const char *what)
{
    char url[512];
    const char *text;
    struct dw_json *j = NULL;
    struct dw_error err;
    int64_t n = -1;

    snprintf(url, sizeof(url), "%s/dw-fixture/stats", base);
    CU_ASSERT_EQUAL_FATAL(http("GET", url, NULL, &text), 200);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(dw_json_parse(text, strlen(text), NULL, &arena, &j, &err), DW_OK);
    CU_ASSERT_TRUE(dw_json_get_int64(dw_json_find(j, what), &n));
    return (long) n;
}

static long batches_seen(void)
{
    return seen("batch");
}

/* ---------------------------------------------------------------- connector helpers */

struct conn_cfg {
    struct dw_setting settings[4];
    struct dw_connector_config cfg;
};

static struct dw_connector_config *make_cfg(struct conn_cfg *c, const char *url, const char *token,
                                            const char *token_file, long timeout_ms)
{
    size_t n = 0;

    memset(c, 0, sizeof(*c));
    c->settings[n++] = (struct dw_setting) {"url", url, false};
    if (token)
        c->settings[n++] = (struct dw_setting) {"token", token, true};
    if (token_file)
        c->settings[n++] = (struct dw_setting) {"token_file", token_file, false};
    c->cfg.name = "crm";
    c->cfg.type = "odata";
    c->cfg.commit = DW_COMMIT_AUTO;
    c->cfg.nsettings = n;
    c->cfg.settings = c->settings;
    c->cfg.timeout_ms = timeout_ms;
    return &c->cfg;
}

static void print_err(const char *what, const struct dw_error *err)
{
    fprintf(stderr, "\n    %s: [%s] %s (detail: %s) (hint: %s) (context: %s)\n", what,
            dw_errcode_name(err->code), err->message, err->detail, err->hint, err->context);
}

static struct dw_session *open_with(struct conn_cfg *c, const char *token, const char *token_file,
                                    long timeout_ms)
{
    struct dw_session *s = NULL;
    struct dw_error err;

    dw_error_clear(&err);
    if (od->open(make_cfg(c, root, token, token_file, timeout_ms), &s, &err) != DW_OK)
        print_err("open", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FALSE(s->two_phase);
    return s;
}

static struct dw_session *open_session(struct conn_cfg *c)
{
    return open_with(c, TOKEN, NULL, 30000);
}

static dw_errcode run_batch(struct dw_session *s, const struct dw_target_op *ops, size_t n,
                            struct dw_error *err)
{
    dw_errcode rc;

    dw_error_clear(err);
    rc = od->begin(s, "pg1:16384:4242", err);
    if (rc == DW_OK)
        rc = od->apply(s, ops, n, err);
    if (rc == DW_OK)
        rc = od->commit(s, err);
    if (rc != DW_OK)
        od->rollback(s);
    return rc;
}

static void expect_ok(struct dw_session *s, const struct dw_target_op *ops, size_t n)
{
    struct dw_error err;
    dw_errcode rc = run_batch(s, ops, n, &err);

    if (rc != DW_OK)
        print_err("batch", &err);
    CU_ASSERT_EQUAL(rc, DW_OK);
    CU_ASSERT_EQUAL(s->failed_op, -1);
}

#define OP(kind_, table_, nkey_, cols_, vals_)                                            \
    {.kind = (kind_), .connector = "crm", .table = (table_), .nkey = (nkey_),              \
     .ncolumns = sizeof(cols_) / sizeof((cols_)[0]), .columns = (cols_), .values = (vals_), \
     .map = "test"}
#define DEL(table_, nkey_, cols_, vals_)                                                   \
    {.kind = DW_OP_DELETE, .connector = "crm", .table = (table_), .nkey = (nkey_),          \
     .ncolumns = (nkey_), .columns = (cols_), .values = (vals_), .map = "test"}

static const char *const acc_cols[] = {"account_no", "name", "credit"};
static const char *const ord_cols[] = {"ID", "status", "amount", "parent_account_no"};
static const char *const line_cols[] = {"order_ID", "line_code", "qty", "note"};

/* ---------------------------------------------------------------- tests */

static void test_registry_and_settings(void)
{
    struct conn_cfg c;
    struct dw_error err;
    static const struct {
        const char *url;
        const char *token;
        const char *token_file;
        dw_commit_mode commit;
        const char *needle;   /* NULL: valid */
    } cases[] = {
        {"https://org.crm.dynamics.com/api/data/v9.2/", "t", NULL, DW_COMMIT_AUTO, NULL},
        {"http://127.0.0.1:8080/api/", "t", NULL, DW_COMMIT_ONE_PHASE, NULL},
        {"http://127.8.9.10/odata/", NULL, NULL, DW_COMMIT_AUTO, NULL},
        {"http://localhost/odata/", NULL, "/run/secrets/token", DW_COMMIT_AUTO, NULL},
        {"http://[::1]:81/odata/", NULL, NULL, DW_COMMIT_AUTO, NULL},
        {"http://org.example.com/api/", "t", NULL, DW_COMMIT_AUTO, "plain http is allowed only to a loopback host"},
        {"http://10.0.0.1/api/", "t", NULL, DW_COMMIT_AUTO, "must use https"},
        {"https://h/api", "t", NULL, DW_COMMIT_AUTO, "must end with \"/\""},
        {"https://h/api/?x=1", "t", NULL, DW_COMMIT_AUTO, "query or a fragment"},
        {"https://u:p@h/api/", "t", NULL, DW_COMMIT_AUTO, "must not hold a user name or password"},
        {"ftp://h/api/", "t", NULL, DW_COMMIT_AUTO, "must use https"},
        {"not a url", "t", NULL, DW_COMMIT_AUTO, "not a valid URL"},
        {"", "t", NULL, DW_COMMIT_AUTO, "\"url\" is required"},
        {"https://h/api/", "t", NULL, DW_COMMIT_TWO_PHASE, "OData services have no prepare"},
        {"https://h/api/", NULL, "relative/token", DW_COMMIT_AUTO, "must be an absolute path"},
        {"https://h/api/", "two words", NULL, DW_COMMIT_AUTO, "characters a bearer token cannot have"},
    };

    CU_ASSERT_PTR_NOT_NULL_FATAL(od);
    DW_ASSERT_STREQ(od->type, "odata");
    DW_ASSERT_STREQ(od->settings[0], "url");
    CU_ASSERT_PTR_NULL(od->prepare);
    CU_ASSERT_PTR_NULL(od->resolve_prepared);
    CU_ASSERT_PTR_NOT_NULL(od->check_key);
    {
        bool listed = false;

        for (const char *const *t = dw_connector_types(); *t; t++)
            listed = listed || strcmp(*t, "odata") == 0;
        CU_ASSERT_TRUE(listed);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dw_connector_config *cfg = make_cfg(&c, cases[i].url, cases[i].token,
                                                   cases[i].token_file, 1000);
        dw_errcode rc;

        cfg->commit = cases[i].commit;
        dw_error_clear(&err);
        rc = od->check(cfg, &err);
        if (!cases[i].needle) {
            if (rc != DW_OK)
                print_err(cases[i].url, &err);
            CU_ASSERT_EQUAL(rc, DW_OK);
        } else {
            CU_ASSERT_EQUAL(rc, DW_ERR_CONFIG);
            DW_ASSERT_CONTAINS(err.message, cases[i].needle);
        }
    }
    /* a credential in the URL is never echoed */
    make_cfg(&c, "https://user:secret@h/api/", "t", NULL, 1000);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(od->check(&c.cfg, &err), DW_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(strstr(err.message, "secret"));
}

static void test_catalog_checks(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    struct dw_error err;
    const char *cols_ok[] = {"ID", "status", "amount", "parent_account_no", "parent@odata.bind"};
    const char *cols_bad[] = {"ID", "Status", "nope", "nav@odata.bind"};
    const char *key_ok[] = {"account_no"};
    const char *key_lines[] = {"line_code", "order_ID"};
    const char *key_bad[] = {"name"};

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(od->check_table(s, "Orders", cols_ok, 5, &err), DW_OK);
    CU_ASSERT_EQUAL(od->check_table(s, "orders", cols_ok, 1, &err), DW_ERR_CONFIG);
    DW_ASSERT_CONTAINS(err.message, "entity set \"orders\" does not exist");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(od->check_table(s, "Orders", cols_bad, 4, &err), DW_ERR_CONFIG);
    DW_ASSERT_CONTAINS(err.message, "has no properties \"Status\", \"nope\", \"nav@odata.bind\"");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(od->check_key(s, "Accounts", key_ok, 1, &err), DW_OK);
    CU_ASSERT_EQUAL(od->check_key(s, "Lines", key_lines, 2, &err), DW_OK);
    CU_ASSERT_EQUAL(od->check_key(s, "Lines", key_lines, 1, &err), DW_ERR_CONFIG);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(od->check_key(s, "Accounts", key_bad, 1, &err), DW_ERR_CONFIG);
    DW_ASSERT_CONTAINS(err.message, "the key (\"name\") is neither the key (\"account_no\") nor "
                       "an alternate key of entity set \"Accounts\"");
    CU_ASSERT_FALSE(s->broken);
    od->close(s);
}

static void test_upsert_create_update(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    const char *a1[] = {"A1", "Alpha", "100.50"};
    const char *o1[] = {"1", "new", "10.00", "A1"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a1),
                                 OP(DW_OP_UPSERT, "Orders", 1, ord_cols, o1)};
    const struct dw_json *e, *req, *h;

    expect_ok(s, ops, 2);
    e = get("Accounts('A1')");
    DW_ASSERT_STREQ(field(e, "name"), "Alpha");
    DW_ASSERT_STREQ(field(e, "credit"), "100.5");
    e = get("Orders(1)");
    DW_ASSERT_STREQ(field(e, "status"), "new");
    DW_ASSERT_STREQ(field(e, "parent_account_no"), "A1");
    /* again: PATCH on an existing entity updates it; NULL clears a property */
    a1[1] = "Alpha Two";
    a1[2] = NULL;
    o1[1] = "confirmed";
    expect_ok(s, ops, 2);
    e = get("Accounts('A1')");
    DW_ASSERT_STREQ(field(e, "name"), "Alpha Two");
    DW_ASSERT_STREQ(field(e, "credit"), "null");
    DW_ASSERT_STREQ(field(get("Orders(1)"), "status"), "confirmed");

    /* what went on the wire: one POST $batch, one changeset, our headers */
    req = last_request();
    h = dw_json_find(req, "headers");
    DW_ASSERT_STREQ(field(h, "x-dualwrite-batch"), "pg1:16384:4242");
    DW_ASSERT_STREQ(field(h, "odata-version"), "4.0");
    DW_ASSERT_STREQ(field(h, "authorization"), "Bearer " TOKEN);
    DW_ASSERT_CONTAINS(field(h, "content-type"), "multipart/mixed; boundary=batch_");
    CU_ASSERT_PTR_NULL(strchr(field(h, "content-type"), '"'));   /* unquoted */
    {
        const char *body = field(req, "body");

        DW_ASSERT_CONTAINS(body, "Content-Type: multipart/mixed; boundary=changeset_");
        DW_ASSERT_CONTAINS(body, "\r\nContent-ID: 1\r\n\r\nPATCH Accounts('A1') HTTP/1.1\r\n"
                           "Content-Type: application/json\r\nPrefer: return=minimal\r\n\r\n"
                           "{\"name\":\"Alpha Two\",\"credit\":null}\r\n--changeset_");
        DW_ASSERT_CONTAINS(body, "\r\nContent-ID: 2\r\n\r\nPATCH Orders(1) HTTP/1.1\r\n");
        CU_ASSERT_PTR_NULL(strstr(body, "If-Match"));
        /* CRLF everywhere: no LF without its CR */
        for (const char *p = strchr(body, '\n'); p; p = strchr(p + 1, '\n'))
            CU_ASSERT_EQUAL(p[-1], '\r');
    }
    od->close(s);
}

static void test_deletes_and_order(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    const char *a[] = {"D1", "to delete", "1"};
    const char *gone[] = {"never-there"};
    const char *o[] = {"50", "first", "1", NULL};
    const char *o2[] = {"50", "third", "3", NULL};
    struct dw_target_op setup[] = {OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a)};
    /* in one changeset: create, delete, create again: the service must run them in order */
    struct dw_target_op ordered[] = {OP(DW_OP_UPSERT, "Orders", 1, ord_cols, o),
                                     DEL("Orders", 1, ord_cols, o),
                                     OP(DW_OP_UPSERT, "Orders", 1, ord_cols, o2)};
    /* a delete of an entity that is not there is no change, like DELETE ... WHERE in SQL */
    struct dw_target_op dels[] = {DEL("Accounts", 1, acc_cols, gone),
                                  DEL("Accounts", 1, acc_cols, a),
                                  DEL("Orders", 1, ord_cols, gone + 0)};
    const char *no_order[] = {"999999"};

    expect_ok(s, setup, 1);
    CU_ASSERT_PTR_NOT_NULL(get("Accounts('D1')"));
    expect_ok(s, ordered, 3);
    DW_ASSERT_STREQ(field(get("Orders(50)"), "status"), "third");
    dels[2].values = no_order;
    expect_ok(s, dels, 3);
    CU_ASSERT_PTR_NULL(get("Accounts('D1')"));
    /* only deletes of missing entities: nothing left to send is still a success */
    expect_ok(s, dels, 1);
    od->close(s);
}

static void test_composite_keys(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    const char *l1[] = {"7", "L'1 a/b", "3", "first"};
    const char *l2[] = {"7", "L2", "4", NULL};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "Lines", 2, line_cols, l1),
                                 OP(DW_OP_UPSERT, "Lines", 2, line_cols, l2)};
    struct dw_target_op del = DEL("Lines", 2, line_cols, l1);
    /* the key columns in another order than the entity's */
    const char *const swapped_cols[] = {"line_code", "order_ID", "qty"};
    const char *swapped[] = {"L2", "7", "40"};
    struct dw_target_op upd = OP(DW_OP_UPSERT, "Lines", 2, swapped_cols, swapped);

    expect_ok(s, ops, 2);
    DW_ASSERT_STREQ(field(get("Lines(order_ID=7,line_code='L''1%%20a%%2Fb')"), "note"), "first");
    expect_ok(s, &upd, 1);
    DW_ASSERT_STREQ(field(get("Lines(order_ID=7,line_code='L2')"), "qty"), "40");
    expect_ok(s, &del, 1);
    CU_ASSERT_PTR_NULL(get("Lines(order_ID=7,line_code='L''1%%20a%%2Fb')"));
    CU_ASSERT_PTR_NOT_NULL(get("Lines(order_ID=7,line_code='L2')"));
    od->close(s);
}

static void test_types_round_trip(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    static const char *const cols[] = {"id", "i32", "i64", "dec", "dbl", "flag", "day", "at",
                                       "stamp", "tod", "uid", "txt"};
    const char *v[] = {"T1", "-2147483648", "9007199254740991", "-1234.5678", "0.1", "t",
                       "2024-02-29", "2024-06-01 12:34:56+00", "2024-06-01 12:34:56.123+02",
                       "23:59:58", "0123ABCD-89AB-CDEF-0123-456789ABCDEF",
                       "quote \" backslash \\ newline \n tab \t unicode é€😀"};
    const char *n[] = {"T2", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const char *big[] = {"T3", "7", "9007199254740993", "12345678901234.5678", "1e300", "f",
                         "2000-01-01", "2024-06-01", "2024-06-01 00:00:00-07", "00:00", NULL, ""};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "Typed", 1, cols, v),
                                 OP(DW_OP_UPSERT, "Typed", 1, cols, n),
                                 OP(DW_OP_UPSERT, "Typed", 1, cols, big)};
    const struct dw_json *e;

    expect_ok(s, ops, 3);
    e = get("Typed('T1')");
    DW_ASSERT_STREQ(field(e, "i32"), "-2147483648");
    DW_ASSERT_STREQ(field(e, "i64"), "9007199254740991");
    DW_ASSERT_STREQ(field(e, "dec"), "-1234.5678");
    DW_ASSERT_STREQ(field(e, "dbl"), "0.1");
    DW_ASSERT_STREQ(field(e, "flag"), "true");
    DW_ASSERT_STREQ(field(e, "day"), "2024-02-29");
    DW_ASSERT_STREQ(field(e, "at"), "2024-06-01T12:34:56Z");
    DW_ASSERT_STREQ(field(e, "stamp"), "2024-06-01T10:34:56.123Z");   /* the service keeps UTC */
    DW_ASSERT_STREQ(field(e, "tod"), "23:59:58");
    DW_ASSERT_STREQ(field(e, "uid"), "0123abcd-89ab-cdef-0123-456789abcdef");
    DW_ASSERT_STREQ(field(e, "txt"), v[11]);
    e = get("Typed('T2')");
    for (size_t i = 1; i < sizeof(cols) / sizeof(cols[0]); i++)
        DW_ASSERT_STREQ(field(e, cols[i]), "null");
    e = get("Typed('T3')");
    DW_ASSERT_STREQ(field(e, "flag"), "false");
    DW_ASSERT_STREQ(field(e, "at"), "2024-06-01T00:00:00Z");
    DW_ASSERT_STREQ(field(e, "stamp"), "2024-06-01T07:00:00.000Z");
    DW_ASSERT_STREQ(field(e, "tod"), "00:00:00");
    DW_ASSERT_STREQ(field(e, "txt"), "");
    /*
     * Past 2^53 the test server (JavaScript) rounds what it reads; the wire
     * shows we sent every digit, as Dataverse (.NET decimal, long) keeps them.
     */
    {
        const char *body = field(last_request(), "body");

        DW_ASSERT_CONTAINS(body, "\"i64\":9007199254740993,");
        DW_ASSERT_CONTAINS(body, "\"dec\":12345678901234.5678,");
        DW_ASSERT_CONTAINS(body, "\"dbl\":1e300,");
        DW_ASSERT_CONTAINS(body, "\"stamp\":\"2024-06-01T00:00:00-07:00\"");
    }
    od->close(s);
}

/* A column "nav@odata.bind" is an instance annotation, sent as given: how a child names its parent. */
static void test_bind_annotation(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    static const char *const pcols[] = {"account_no", "name"};
    static const char *const cols[] = {"ID", "status", "parent@odata.bind"};
    const char *p[] = {"B1", "parent"};
    const char *v[] = {"80", "bound", "Accounts('B1')"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "Accounts", 1, pcols, p),
                                 OP(DW_OP_UPSERT, "Orders", 1, cols, v)};

    expect_ok(s, ops, 2);
    DW_ASSERT_STREQ(field(get("Orders(80)"), "parent_account_no"), "B1");
    DW_ASSERT_CONTAINS(field(last_request(), "body"), "{\"status\":\"bound\",\"parent@odata.bind\":"
                       "\"Accounts('B1')\"}");
    od->close(s);
}

static void test_other_key_types(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    static const char *const ccols[] = {"id", "note"};
    static const char *const tcols[] = {"ID", "note"};
    const char *cv[] = {"9007199254740991", "int64 key"};
    const char *tv[] = {"11111111-2222-3333-4444-555555555555", "guid key"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "Counters", 1, ccols, cv),
                                 OP(DW_OP_UPSERT, "Things", 1, tcols, tv)};

    expect_ok(s, ops, 2);
    DW_ASSERT_STREQ(field(get("Counters(9007199254740991)"), "note"), "int64 key");
    DW_ASSERT_STREQ(field(get("Things(11111111-2222-3333-4444-555555555555)"), "note"), "guid key");
    od->close(s);
}

static void test_escaped_string_keys(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    static const char *const keys[] = {"O'Brien", "a b", "x/y", "é€ 😀", "100%", "a?b#c&d=e+f",
                                       "(x,y)", "''", " lead and trail ", "back\\slash", "semi;colon"};
    enum { N = sizeof(keys) / sizeof(keys[0]) };
    const char *rows[N][3];
    struct dw_target_op ops[N], dels[N];
    const struct dw_json *all;

    for (size_t i = 0; i < N; i++) {
        rows[i][0] = keys[i];
        rows[i][1] = "escaped";
        rows[i][2] = NULL;
        ops[i] = (struct dw_target_op) OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, rows[i]);
        dels[i] = (struct dw_target_op) DEL("Accounts", 1, acc_cols, rows[i]);
    }
    expect_ok(s, ops, N);
    all = dw_json_find(get("Accounts?$filter=name%%20eq%%20'escaped'"), "value");
    CU_ASSERT_EQUAL_FATAL(all->len, N);
    for (size_t i = 0; i < N; i++) {
        bool found = false;

        for (size_t k = 0; k < all->len; k++)
            found = found || strcmp(field(&all->u.items[k], "account_no"), keys[i]) == 0;
        if (!found)
            fprintf(stderr, "\n    key not found: [%s]\n", keys[i]);
        CU_ASSERT_TRUE(found);
    }
    /* a second upsert hits the same entities (the key round-trips through the URL) */
    expect_ok(s, ops, N);
    CU_ASSERT_EQUAL(dw_json_find(get("Accounts?$filter=name%%20eq%%20'escaped'"), "value")->len, N);
    expect_ok(s, dels, N);
    CU_ASSERT_EQUAL(dw_json_find(get("Accounts?$filter=name%%20eq%%20'escaped'"), "value")->len, 0);
    od->close(s);
}

static void test_rejected_changeset(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    const char *a[] = {"R1", "kept?", NULL};
    const char *o_ok[] = {"60", "ok", "5", "R1"};
    const char *o_bad[] = {"61", "bad", "-5", NULL};
    const char *a_noname[] = {"R2", NULL, "1"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a),
                                 OP(DW_OP_UPSERT, "Orders", 1, ord_cols, o_ok),
                                 OP(DW_OP_UPSERT, "Orders", 1, ord_cols, o_bad)};
    struct dw_target_op notnull = OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a_noname);
    struct dw_error err;

    CU_ASSERT_EQUAL(run_batch(s, ops, 3, &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "NEGATIVE_AMOUNT: order 61: amount must not be negative");
    DW_ASSERT_CONTAINS(err.detail, "HTTP 400 Bad Request");
    DW_ASSERT_CONTAINS(err.detail, "amount");
    DW_ASSERT_STREQ(err.context, "operation 2: upsert into entity set \"Orders\"");
    DW_ASSERT_STREQ(err.sqlstate, "");
    CU_ASSERT_EQUAL(s->failed_op, 2);
    CU_ASSERT_FALSE(s->broken);
    /* atomic: nothing of the changeset stayed */
    CU_ASSERT_PTR_NULL(get("Accounts('R1')"));
    CU_ASSERT_PTR_NULL(get("Orders(60)"));

    /* a database constraint (NOT NULL) is a rejection too, with the service's code */
    CU_ASSERT_EQUAL(run_batch(s, &notnull, 1, &err), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "SQLITE_CONSTRAINT_NOTNULL: NOT NULL constraint failed");
    CU_ASSERT_EQUAL(s->failed_op, 0);

    /* the session goes on */
    expect_ok(s, ops, 2);
    CU_ASSERT_PTR_NOT_NULL(get("Accounts('R1')"));
    od->close(s);
}

static void test_bad_values_fail_before_sending(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    static const char *const cols[] = {"id", "i32"};
    const char *ok[] = {"V1", "1"};
    const char *bad[] = {"V2", "twelve"};
    const char *pcols_v[] = {"V3", "x"};
    static const char *const pcols[] = {"id", "no_such_property"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "Typed", 1, cols, ok),
                                 OP(DW_OP_UPSERT, "Typed", 1, cols, bad)};
    struct dw_target_op unknown_set = OP(DW_OP_UPSERT, "Nope", 1, cols, ok);
    struct dw_target_op unknown_prop = OP(DW_OP_UPSERT, "Typed", 1, pcols, pcols_v);
    struct dw_error err;
    long before = batches_seen();

    CU_ASSERT_EQUAL(run_batch(s, ops, 2, &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "value of property \"i32\" is not a valid Edm.Int32: expected an "
                    "integer");
    DW_ASSERT_STREQ(err.context, "operation 1: upsert into entity set \"Typed\"");
    CU_ASSERT_EQUAL(s->failed_op, 1);
    CU_ASSERT_EQUAL(run_batch(s, &unknown_set, 1, &err), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "entity set \"Nope\" does not exist");
    CU_ASSERT_EQUAL(run_batch(s, &unknown_prop, 1, &err), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "has no property \"no_such_property\"");
    CU_ASSERT_EQUAL(batches_seen(), before);   /* nothing was sent */
    CU_ASSERT_PTR_NULL(get("Typed('V1')"));
    /* an empty batch sends nothing and succeeds */
    expect_ok(s, NULL, 0);
    CU_ASSERT_EQUAL(batches_seen(), before);
    od->close(s);
}

static void test_auth_failures(void)
{
    struct conn_cfg c, c2;
    struct dw_session *good = open_session(&c);   /* the model is cached: open needs no request */
    struct dw_session *s = open_with(&c2, "wrong-token", NULL, 30000);
    const char *a[] = {"U1", "unauthorized", NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a);
    struct dw_error err;

    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.message, "the OData service refused the bearer token of connector \"crm\" "
                    "(HTTP 401 Unauthorized)");
    DW_ASSERT_CONTAINS(err.detail, "invalid_token");
    DW_ASSERT_CONTAINS(err.hint, "token_file");
    CU_ASSERT_EQUAL(s->failed_op, -1);
    CU_ASSERT_FALSE(s->broken);
    od->close(s);

    tokens("{\"accept\": [\"" TOKEN "\"], \"forbid\": [\"reader-token\"]}");
    s = open_with(&c2, "reader-token", NULL, 30000);
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "denied connector \"crm\" access (HTTP 403 Forbidden): "
                       "0x80040220: Principal user is missing");
    CU_ASSERT_EQUAL(s->failed_op, -1);
    od->close(s);
    tokens("{\"accept\": [\"" TOKEN "\"]}");
    CU_ASSERT_PTR_NULL(get("Accounts('U1')"));
    expect_ok(good, &op, 1);
    od->close(good);
}

static void test_throttling(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    const char *a[] = {"TH1", "throttled", NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a);
    struct dw_error err;

    fault("{\"status\": 429, \"retry_after\": \"7\"}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(s->retry_after_ms, 7000);
    DW_ASSERT_CONTAINS(err.message, "throttling requests (HTTP 429 Too Many Requests), retry "
                       "after 7.000 s: 0x80072322: Number of requests exceeded the limit");
    DW_ASSERT_CONTAINS(err.detail, "not applied");
    CU_ASSERT_FALSE(s->broken);
    CU_ASSERT_PTR_NULL(get("Accounts('TH1')"));

    fault("{\"status\": 503, \"retry_after\": \"2\"}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(s->retry_after_ms, 2000);

    /* 429 without Retry-After: still throttled, the wait unknown */
    fault("{\"status\": 429}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(s->retry_after_ms, 0);

    /* 503 without Retry-After and other 5xx: unavailable */
    fault("{\"status\": 503}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_CONNECT);
    DW_ASSERT_CONTAINS(err.message, "the OData service is unavailable (HTTP 503 Service "
                       "Unavailable)");
    fault("{\"status\": 500, \"body\": {\"error\": {\"code\": \"X1\", \"message\": \"boom\"}}}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_CONNECT);
    DW_ASSERT_CONTAINS(err.message, "(HTTP 500 Internal Server Error): X1: boom");
    CU_ASSERT_PTR_NULL(get("Accounts('TH1')"));

    /* and then the service lets it through; begin reset retry_after_ms */
    expect_ok(s, &op, 1);
    CU_ASSERT_EQUAL(s->retry_after_ms, 0);
    CU_ASSERT_PTR_NOT_NULL(get("Accounts('TH1')"));
    od->close(s);
}

static void test_malformed_answers(void)
{
    struct conn_cfg c;
    struct dw_session *s;
    const char *a[] = {"M1", "first", NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a);
    struct dw_error err;

    /*
     * The service applies the changeset but the answer is cut: we cannot
     * tell, so it is never a commit (the one-phase window: README.md).
     */
    s = open_session(&c);
    fault("{\"mode\": \"truncate\", \"keep\": 0.6}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "malformed $batch response");
    DW_ASSERT_CONTAINS(err.detail, "may or may not have been applied");
    CU_ASSERT_TRUE(s->broken);
    od->close(s);
    CU_ASSERT_PTR_NOT_NULL(get("Accounts('M1')"));

    s = open_session(&c);
    fault("{\"mode\": \"replace\", \"content_type\": \"multipart/mixed; boundary=zz\", "
          "\"text\": \"--zz\\r\\nContent-Type: application/http\\r\\n\\r\\nHTTP/1.1 204 No "
          "Content\\r\\n\\r\\n\\r\\n--zz--\\r\\n\"}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "a single response of HTTP 204, not by a changeset");
    od->close(s);

    s = open_session(&c);
    fault("{\"mode\": \"replace\", \"content_type\": \"application/json\", \"text\": \"{}\"}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "is not multipart/mixed");
    od->close(s);

    /* a changeset answer with fewer responses than requests */
    s = open_session(&c);
    {
        struct dw_target_op two[] = {op, op};

        fault("{\"mode\": \"replace\", \"content_type\": \"multipart/mixed; boundary=zz\", "
              "\"text\": \"--zz\\r\\nContent-Type: multipart/mixed; boundary=cs\\r\\n\\r\\n--cs"
              "\\r\\nContent-Type: application/http\\r\\n\\r\\nHTTP/1.1 204 No Content\\r\\n\\r\\n"
              "\\r\\n--cs--\\r\\n--zz--\\r\\n\"}");
        CU_ASSERT_EQUAL(run_batch(s, two, 2, &err), DW_ERR_PROTOCOL);
        DW_ASSERT_CONTAINS(err.message, "1 responses for 2 requests");
    }
    od->close(s);

    /* the connection drops after the service applied the batch */
    s = open_session(&c);
    fault("{\"mode\": \"reset\"}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_CONNECT);
    DW_ASSERT_CONTAINS(err.message, "lost the connection to the OData service while sending the "
                       "batch");
    DW_ASSERT_CONTAINS(err.detail, "may have applied it");
    CU_ASSERT_TRUE(s->broken);
    od->close(s);

    /* the service takes longer than timeout_ms */
    s = open_with(&c, TOKEN, NULL, 1500);
    fault("{\"mode\": \"delay\", \"delay_ms\": 5000}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_TIMEOUT);
    DW_ASSERT_CONTAINS(err.message, "did not answer within 1500 ms while sending the batch");
    CU_ASSERT_TRUE(s->broken);
    od->close(s);

    /* the batch's own deadline is shorter than timeout_ms: it bounds the request */
    s = open_with(&c, TOKEN, NULL, 30000);
    fault("{\"mode\": \"delay\", \"delay_ms\": 5000}");
    {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        s->deadline_ms = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 800;
    }
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_TIMEOUT);
    DW_ASSERT_CONTAINS(err.message, "while sending the batch");
    CU_ASSERT_PTR_NULL(strstr(err.message, "30000 ms"));
    od->close(s);
    control("DELETE", "faults", NULL);
}

static void test_unreachable(void)
{
    struct conn_cfg c;
    struct dw_session *s = NULL;
    struct dw_error err;
    char url[512];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/data/v9.2/", dw_fixture_free_port());
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(od->open(make_cfg(&c, url, TOKEN, NULL, 5000), &s, &err), DW_ERR_CONNECT);
    CU_ASSERT_PTR_NULL(s);
    DW_ASSERT_CONTAINS(err.message, "could not read the $metadata of connector \"crm\": could not "
                       "reach the OData service at");
    /* a wrong path: $metadata answers 404 */
    snprintf(url, sizeof(url), "%s/nowhere/", base);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(od->open(make_cfg(&c, url, TOKEN, NULL, 5000), &s, &err), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "could not read the $metadata");
}

static void test_two_hundred_ops(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c);
    enum { N = 200 };
    static char ids[N][16], codes[N][24];
    static const char *orows[N][4], *lrows[N][4];
    static struct dw_target_op ops[N], dels[N];
    long orders_before = count("Orders"), lines_before = count("Lines");

    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", 1000 + i / 2);
        snprintf(codes[i], sizeof(codes[i]), "bulk line %d", i);
        orows[i][0] = ids[i];
        orows[i][1] = "bulk";
        orows[i][2] = "1.25";
        orows[i][3] = NULL;
        lrows[i][0] = ids[i];
        lrows[i][1] = codes[i];
        lrows[i][2] = "2";
        lrows[i][3] = "a somewhat longer note, to make the batch bigger than a socket buffer";
        if (i % 2 == 0)
            ops[i] = (struct dw_target_op) OP(DW_OP_UPSERT, "Orders", 1, ord_cols, orows[i]);
        else
            ops[i] = (struct dw_target_op) OP(DW_OP_UPSERT, "Lines", 2, line_cols, lrows[i]);
        dels[i] = i % 2 == 0 ? (struct dw_target_op) DEL("Orders", 1, ord_cols, orows[i])
                             : (struct dw_target_op) DEL("Lines", 2, line_cols, lrows[i]);
    }
    expect_ok(s, ops, N);
    CU_ASSERT_EQUAL(count("Orders"), orders_before + N / 2);
    CU_ASSERT_EQUAL(count("Lines"), lines_before + N / 2);
    expect_ok(s, dels, N);
    CU_ASSERT_EQUAL(count("Orders"), orders_before);
    CU_ASSERT_EQUAL(count("Lines"), lines_before);
    od->close(s);
}


static void test_token_file(void)
{
    struct conn_cfg c;
    struct dw_session *s;
    char path[600];
    const char *a[] = {"TF1", "token file", NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, a);
    struct dw_error err;

    snprintf(path, sizeof(path), "%s/odata-token", dw_fixture_tmpdir());
    dw_fixture_write_file(path, "%s", TOKEN "\n");
    s = open_with(&c, NULL, path, 30000);
    expect_ok(s, &op, 1);

    /* the service rotates its token: the old one is refused... */
    tokens("{\"accept\": [\"tok-rotated-abcdef\"]}");
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "HTTP 401");
    /* ...until the file holds the new one, which the live session reads at once */
    dw_fixture_write_file(path, "%s", "tok-rotated-abcdef\r\n");
    a[1] = "rotated";
    expect_ok(s, &op, 1);
    DW_ASSERT_STREQ(field(dw_json_find(last_request(), "headers"), "authorization"),
                    "Bearer tok-rotated-abcdef");
    /* a file halfway through being written (empty) keeps the last good token */
    dw_fixture_write_file(path, "%s", "");
    expect_ok(s, &op, 1);
    /* a file that is gone is an error that names it */
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, &err), DW_ERR_CONFIG);
    DW_ASSERT_CONTAINS(err.message, "could not read token file");
    od->close(s);
    tokens("{\"accept\": [\"" TOKEN "\"]}");
    {
        const char *got;
        char url[512];

        snprintf(url, sizeof(url), "%sAccounts('TF1')", root);
        CU_ASSERT_EQUAL(http("GET", url, NULL, &got), 200);
        DW_ASSERT_CONTAINS(got, "\"name\":\"rotated\"");
    }
}

/*
 * The test server's own fixes, seen from a client other than ours: a quoted
 * changeset boundary is still a changeset (atomic), and two changesets that
 * reuse one boundary name stay two (the second fails alone).
 */
static void test_server_changesets(void)
{
#define PART(id, line, json) \
    "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: " id \
    "\r\n\r\n" line " HTTP/1.1\r\nContent-Type: application/json\r\n\r\n" json "\r\n"
    static const char quoted[] =
        "--b\r\nContent-Type: multipart/mixed; boundary=\"cs q\"\r\n\r\n"
        "--cs q\r\n" PART("1", "PATCH Orders(70)", "{\"status\":\"q\"}")
        "--cs q\r\n" PART("2", "PATCH Orders(71)", "{\"amount\":-1}")
        "--cs q--\r\n--b--\r\n";
    static const char reused[] =
        "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
        "--cs\r\n" PART("1", "PATCH /api/data/v9.2/Orders(72)", "{\"status\":\"kept\"}")
        "--cs--\r\n"
        "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
        "--cs\r\n" PART("2", "PATCH Orders(73)", "{\"amount\":-1}")
        "--cs--\r\n--b--\r\n";
#undef PART
    char url[512];
    const char *out;

    snprintf(url, sizeof(url), "%s$batch", root);
    CU_ASSERT_EQUAL(http_as("POST", url, "multipart/mixed; boundary=b", quoted, &out), 200);
    DW_ASSERT_CONTAINS(out, "NEGATIVE_AMOUNT");
    CU_ASSERT_PTR_NULL(get("Orders(70)"));   /* atomic although the boundary was quoted */
    CU_ASSERT_EQUAL(http_as("POST", url, "multipart/mixed; boundary=b", reused, &out), 200);
    DW_ASSERT_CONTAINS(out, "NEGATIVE_AMOUNT");
    DW_ASSERT_STREQ(field(get("Orders(72)"), "status"), "kept");   /* its own changeset */
    CU_ASSERT_PTR_NULL(get("Orders(73)"));
}

/* ---- sessions on several threads ---- */

enum { NTHREADS = 4, NBATCHES = 10 };

struct worker {
    char url[400];
    int id;
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct conn_cfg c;
    struct dw_session *s = NULL;
    struct dw_error err;
    char keys[NBATCHES][32];
    const char *rows[NBATCHES][3];

    dw_error_clear(&err);
    if (od->open(make_cfg(&c, w->url, TOKEN, NULL, 60000), &s, &err) != DW_OK) {
        w->failures++;
        return NULL;
    }
    for (int b = 0; b < NBATCHES; b++) {
        struct dw_target_op op;

        snprintf(keys[b], sizeof(keys[b]), "W%d-%d", w->id, b);
        rows[b][0] = keys[b];
        rows[b][1] = "threaded";
        rows[b][2] = "1";
        op = (struct dw_target_op) OP(DW_OP_UPSERT, "Accounts", 1, acc_cols, rows[b]);
        if (run_batch(s, &op, 1, &err) != DW_OK)
            w->failures++;
    }
    od->close(s);
    return NULL;
}

static void test_threads_share_the_model(void)
{
    static struct worker workers[NTHREADS];
    pthread_t th[NTHREADS];
    long fetched = seen("metadata");
    const struct dw_json *all;

    for (int i = 0; i < NTHREADS; i++) {
        /* another spelling of the root: a model of its own, fetched once for all threads */
        snprintf(workers[i].url, sizeof(workers[i].url), "http://localhost%s",
                 root + strlen("http://127.0.0.1"));
        workers[i].id = i;
        workers[i].failures = 0;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, work, &workers[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(workers[i].failures, 0);
    }
    CU_ASSERT_EQUAL(seen("metadata"), fetched + 1);
    all = dw_json_find(get("Accounts?$filter=name%%20eq%%20'threaded'"), "value");
    CU_ASSERT_EQUAL(all->len, NTHREADS * NBATCHES);
}

static const struct dw_cunit_test tests[] = {
    {"registry and settings", test_registry_and_settings},
    {"check_table and check_key from $metadata", test_catalog_checks},
    {"upserts create and update (PATCH); the wire", test_upsert_create_update},
    {"deletes, missing entities, order inside a changeset", test_deletes_and_order},
    {"composite keys", test_composite_keys},
    {"every type there and back", test_types_round_trip},
    {"Int64 and Guid keys", test_other_key_types},
    {"parent@odata.bind passes through", test_bind_annotation},
    {"string keys that need escaping", test_escaped_string_keys},
    {"a rejected changeset leaves nothing", test_rejected_changeset},
    {"bad values fail before sending", test_bad_values_fail_before_sending},
    {"401 and 403", test_auth_failures},
    {"429 and 503 with Retry-After, 5xx", test_throttling},
    {"truncated, garbled, dropped, slow answers", test_malformed_answers},
    {"unreachable service", test_unreachable},
    {"200 operations in one batch", test_two_hundred_ops},
    {"token file read again when it changes", test_token_file},
    {"sessions on several threads share one $metadata", test_threads_share_the_model},
    {"the test server: quoted and reused changeset boundaries", test_server_changesets},
};

int main(void)
{
    int rc;

    if (!find_script()) {
        fprintf(stderr, "SKIP: tests/fixtures/odataserver not found (set DW_SOURCE_ROOT)\n");
        return 77;
    }
    dw_log_set_level(DW_LOG_WARNING);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dw_arena_init(&arena, 64 * 1024);
    od = dw_connector_find("odata");
    if (!od || !start_server())
        return 1;
    rc = dw_cunit_run("odata connector", tests, sizeof(tests) / sizeof(tests[0]));
    stop_server();
    dw_arena_cleanup(&arena);
    curl_global_cleanup();
    return rc;
}
