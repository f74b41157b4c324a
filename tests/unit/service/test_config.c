/*
 * Unit tests of the service configuration loader (bridge/service/dw_config.c):
 * one test per validation rule, each asserting the file and the JSON path in
 * the message, plus defaults, ${ENV} expansion, *_file secrets, paths
 * relative to the configuration file, and that no secret ever appears in a
 * message.  Every error output is also checked for the message style: one
 * line "FILE: /path: message", lowercase start, no final period.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge/service/dw_config.h"
#include "tests/unit/common/dw_cunit.h"

static char tmp[256];
static char cfgpath[512];

static const char *write_file(const char *name, const char *text)
{
    static char path[4][512];
    static int next;
    char *p = path[next];
    FILE *f;

    next = (next + 1) % 4;
    snprintf(p, sizeof(path[0]), "%s/%s", tmp, name);
    f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Every line: "FILE: /path: message" or "FILE:L:C: message", lowercase, no final period. */
static void check_style(const char *errors, const char *file)
{
    const char *line = errors;

    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t) (nl - line) : strlen(line);
        size_t flen = strlen(file);
        const char *msg;

        CU_ASSERT(n > flen && strncmp(line, file, flen) == 0);
        if (n > flen && line[flen] == ':' && line[flen + 1] == ' ' && line[flen + 2] == '/') {
            msg = strstr(line + flen + 2, ": ");
            CU_ASSERT_PTR_NOT_NULL(msg);
            if (msg && msg < line + n) {
                char c = msg[2];

                CU_ASSERT(!(c >= 'A' && c <= 'Z'));
            }
        }
        CU_ASSERT(line[n - 1] != '.');
        if (line[n - 1] == '.')
            fprintf(stderr, "\n    line ends with a period: %.*s\n", (int) n, line);
        line = nl ? nl + 1 : NULL;
    }
}

/* Load text as FILE=tmp/dualwrite.json; returns the error lines (or NULL) and sets *out. */
static char *load_text(const char *text, struct dw_config **out)
{
    struct dw_error err;
    char *errors = NULL;
    dw_errcode rc;

    snprintf(cfgpath, sizeof(cfgpath), "%s", write_file("dualwrite.json", text));
    dw_error_clear(&err);
    *out = NULL;
    rc = dw_config_load(cfgpath, out, &errors, &err);
    if (rc == DW_OK) {
        CU_ASSERT_PTR_NOT_NULL(*out);
        CU_ASSERT_PTR_NULL(errors);
        return NULL;
    }
    CU_ASSERT_EQUAL(rc, DW_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(*out);
    CU_ASSERT_PTR_NOT_NULL(errors);
    DW_ASSERT_CONTAINS(err.message, cfgpath);
    if (errors)
        check_style(errors, cfgpath);
    return errors;
}

/* Expect the load to fail with a line containing "FILE: where: what". */
static void expect_error(const char *text, const char *where, const char *what)
{
    struct dw_config *cfg;
    char *errors = load_text(text, &cfg);
    char prefix[700];

    snprintf(prefix, sizeof(prefix), "%s: %s: ", cfgpath, where);
    DW_ASSERT_CONTAINS(errors, prefix);
    DW_ASSERT_CONTAINS(errors, what);
    free(errors);
    dw_config_free(cfg);
}

static struct dw_config *expect_ok(const char *text)
{
    struct dw_config *cfg;
    char *errors = load_text(text, &cfg);

    if (errors)
        fprintf(stderr, "\n    unexpected errors:\n%s", errors);
    CU_ASSERT_PTR_NULL(errors);
    free(errors);
    return cfg;
}

#define SOURCE "\"source\": {\"conninfo\": \"dbname=erp\"}"
#define MAPS "\"maps\": \"maps\""
#define TARGET "\"connectors\": {\"target\": {\"type\": \"pg\", \"conninfo\": \"dbname=crm\"}}"
#define BASE SOURCE ", " MAPS ", " TARGET

/* ---- valid files ---- */

static void test_minimal_defaults(void)
{
    struct dw_config *cfg = expect_ok("{" BASE "}");
    const struct dw_connector_entry *e;
    char want[600];

    if (!cfg)
        return;
    DW_ASSERT_STREQ(cfg->file, cfgpath);
    DW_ASSERT_STREQ(cfg->listen_unix, "/run/dualwrite/bridge.sock");
    CU_ASSERT_PTR_NULL(cfg->listen_tcp);
    CU_ASSERT_PTR_NULL(cfg->token);
    DW_ASSERT_STREQ(cfg->source_conninfo, "dbname=erp");
    CU_ASSERT_PTR_NULL(cfg->source_system);
    CU_ASSERT_EQUAL(cfg->nmap_paths, 1);
    snprintf(want, sizeof(want), "%s/maps", tmp);
    DW_ASSERT_STREQ(cfg->map_paths[0], want);
    CU_ASSERT_EQUAL(cfg->resolver_interval_ms, 1000);
    CU_ASSERT_EQUAL(cfg->resolver_grace_ms, 5000);
    CU_ASSERT_EQUAL(cfg->max_body_bytes, 64L * 1024 * 1024);
    CU_ASSERT_EQUAL(cfg->max_json_depth, 64);
    DW_ASSERT_STREQ(cfg->log_level, "info");
    CU_ASSERT_EQUAL(cfg->nconnectors, 1);
    e = dw_config_connector(cfg, "target");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NULL(dw_config_connector(cfg, "other"));
    DW_ASSERT_STREQ(e->cfg.name, "target");
    DW_ASSERT_STREQ(e->cfg.type, "pg");
    CU_ASSERT_EQUAL(e->cfg.commit, DW_COMMIT_AUTO);
    CU_ASSERT_EQUAL(e->cfg.timeout_ms, 30000);
    CU_ASSERT_EQUAL(e->pool_size, 8);
    CU_ASSERT_EQUAL(e->limits.records_per_transaction, 1000);
    CU_ASSERT_EQUAL(e->limits.bytes_per_batch, 0);
    CU_ASSERT_EQUAL(e->limits.requests_per_window, 6000);
    CU_ASSERT_EQUAL(e->limits.window_s, 300);
    CU_ASSERT_EQUAL(e->limits.execution_s_per_window, 1200);
    CU_ASSERT_EQUAL(e->limits.concurrent, 52);
    DW_ASSERT_STREQ(dw_connector_setting(&e->cfg, "conninfo"), "dbname=crm");
    CU_ASSERT_FALSE(dw_connector_setting_secret(&e->cfg, "conninfo"));
    CU_ASSERT_PTR_NULL(dw_connector_setting(&e->cfg, "url"));
    dw_config_free(cfg);
}

static void test_full_file(void)
{
    struct dw_config *cfg = expect_ok(
        "{\"// what\": \"comments are keys starting with //\",\n"
        " \"listen\": {\"unix\": \"run/bridge.sock\", \"tcp\": \"127.0.0.1:7480\",\n"
        "            \"token\": \"0123456789abcdef0123\"},\n"
        " \"source\": {\"conninfo\": \"dbname=erp\", \"system\": \"7301234567890123456\"},\n"
        " \"maps\": [\"maps\", \"/tmp\"],\n"
        " \"connectors\": {\n"
        "   \"a\": {\"type\": \"pg\", \"conninfo\": \"dbname=a\", \"commit\": \"two-phase\",\n"
        "         \"pool_size\": 3, \"timeout_ms\": 0,\n"
        "         \"limits\": {\"records_per_transaction\": 10, \"bytes_per_batch\": 1000000,\n"
        "                    \"requests_per_window\": 5, \"window_s\": 60,\n"
        "                    \"execution_s_per_window\": 30, \"concurrent\": 4}},\n"
        "   \"b\": {\"type\": \"pg\", \"conninfo\": \"dbname=b\", \"commit\": \"one-phase\"},\n"
        "   \"c\": {\"type\": \"pg\", \"conninfo\": \"dbname=c\", \"commit\": \"auto\"}},\n"
        " \"resolver\": {\"interval_ms\": 250, \"grace_ms\": 0},\n"
        " \"limits\": {\"max_body_bytes\": 1048576, \"max_json_depth\": 32},\n"
        " \"log_level\": \"debug\"}");
    const struct dw_connector_entry *a;
    char want[600];

    if (!cfg)
        return;
    snprintf(want, sizeof(want), "%s/run/bridge.sock", tmp);
    DW_ASSERT_STREQ(cfg->listen_unix, want);
    DW_ASSERT_STREQ(cfg->listen_tcp, "127.0.0.1:7480");
    DW_ASSERT_STREQ(cfg->token, "0123456789abcdef0123");
    DW_ASSERT_STREQ(cfg->source_system, "7301234567890123456");
    CU_ASSERT_EQUAL(cfg->nmap_paths, 2);
    DW_ASSERT_STREQ(cfg->map_paths[1], "/tmp");
    CU_ASSERT_EQUAL(cfg->nconnectors, 3);
    a = dw_config_connector(cfg, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->cfg.commit, DW_COMMIT_TWO_PHASE);
    CU_ASSERT_EQUAL(a->pool_size, 3);
    CU_ASSERT_EQUAL(a->cfg.timeout_ms, 0);
    CU_ASSERT_EQUAL(a->limits.records_per_transaction, 10);
    CU_ASSERT_EQUAL(a->limits.bytes_per_batch, 1000000);
    CU_ASSERT_EQUAL(a->limits.requests_per_window, 5);
    CU_ASSERT_EQUAL(a->limits.window_s, 60);
    CU_ASSERT_EQUAL(a->limits.execution_s_per_window, 30);
    CU_ASSERT_EQUAL(a->limits.concurrent, 4);
    CU_ASSERT_EQUAL(dw_config_connector(cfg, "b")->cfg.commit, DW_COMMIT_ONE_PHASE);
    CU_ASSERT_EQUAL(dw_config_connector(cfg, "c")->cfg.commit, DW_COMMIT_AUTO);
    CU_ASSERT_EQUAL(cfg->resolver_interval_ms, 250);
    CU_ASSERT_EQUAL(cfg->resolver_grace_ms, 0);
    CU_ASSERT_EQUAL(cfg->max_body_bytes, 1048576);
    CU_ASSERT_EQUAL(cfg->max_json_depth, 32);
    DW_ASSERT_STREQ(cfg->log_level, "debug");
    dw_config_free(cfg);
}

static void test_example_file(void)
{
    const char *src = getenv("DW_SOURCE_ROOT");
    char path[700];
    struct dw_config *cfg = NULL;
    struct dw_error err;
    char *errors = NULL;

    if (!src)
        return;
    snprintf(path, sizeof(path), "%s/bridge/service/dualwrite.example.json", src);
    setenv("DW_TARGET_PASSWORD", "example-secret", 1);
    setenv("DW_BRIDGE_TOKEN", "example-token-0123456789", 1);
    dw_error_clear(&err);
    if (dw_config_load(path, &cfg, &errors, &err) != DW_OK)
        fprintf(stderr, "\n    %s\n%s", err.message, errors ? errors : "");
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (cfg) {
        CU_ASSERT_PTR_NOT_NULL(dw_config_connector(cfg, "target"));
        CU_ASSERT_TRUE(cfg->nmap_paths >= 1);
    }
    free(errors);
    dw_config_free(cfg);
    unsetenv("DW_TARGET_PASSWORD");
    unsetenv("DW_BRIDGE_TOKEN");
}

/* ---- structure ---- */

static void test_syntax_error(void)
{
    struct dw_config *cfg;
    char *errors = load_text("{\n  \"source\": {,\n}", &cfg);
    char want[600];

    snprintf(want, sizeof(want), "%s:2:", cfgpath);
    DW_ASSERT_CONTAINS(errors, want);
    DW_ASSERT_CONTAINS(errors, "invalid JSON");
    free(errors);
}

static void test_missing_file(void)
{
    struct dw_config *cfg = NULL;
    struct dw_error err;
    char *errors = NULL;
    char path[400];

    snprintf(path, sizeof(path), "%s/nope.json", tmp);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_config_load(path, &cfg, &errors, &err), DW_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(cfg);
    DW_ASSERT_CONTAINS(errors, path);
    DW_ASSERT_CONTAINS(errors, "No such file");
    free(errors);
}

static void test_root_not_object(void)
{
    expect_error("[1, 2]", "/", "expected an object, found an array");
}

static void test_unknown_key_top(void)
{
    expect_error("{" BASE ", \"bogus\": 1}", "/",
                 "unknown key \"bogus\"; valid keys are \"listen\", \"source\", \"maps\", "
                 "\"connectors\", \"resolver\", \"limits\", \"log_level\"");
}

static void test_unknown_key_connector_lists_settings(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"dbname=x\", \"url\": \"http://x\"}}}",
                 "/connectors/t",
                 "unknown key \"url\"; valid keys are \"type\", \"commit\", \"limits\", "
                 "\"pool_size\", \"timeout_ms\", \"conninfo\", \"conninfo_file\"");
}

static void test_unknown_key_nested(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"dbname=x\", \"limits\": {\"records\": 5}}}}",
                 "/connectors/t/limits", "unknown key \"records\"; valid keys are "
                 "\"records_per_transaction\"");
    expect_error("{" BASE ", \"listen\": {\"unix\": \"/s\", \"port\": 1}}", "/listen",
                 "unknown key \"port\"");
    expect_error("{" BASE ", \"resolver\": {\"every\": 1}}", "/resolver",
                 "unknown key \"every\"; valid keys are \"interval_ms\", \"grace_ms\"");
    expect_error("{" BASE ", \"limits\": {\"body\": 1}}", "/limits",
                 "unknown key \"body\"; valid keys are \"max_body_bytes\", \"max_json_depth\"");
    expect_error("{\"source\": {\"conninfo\": \"x\", \"host\": 1}, " MAPS ", " TARGET "}",
                 "/source", "unknown key \"host\"");
}

static void test_duplicate_key(void)
{
    expect_error("{" BASE ", \"log_level\": \"info\", \"log_level\": \"debug\"}", "/",
                 "duplicate key \"log_level\"");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {"
                 "\"t\": {\"type\": \"pg\", \"conninfo\": \"a\"}, "
                 "\"t\": {\"type\": \"pg\", \"conninfo\": \"b\"}}}",
                 "/connectors", "duplicate key \"t\"");
}

static void test_type_errors(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\", \"pool_size\": \"8\"}}}",
                 "/connectors/t/pool_size", "expected an integer, found a string");
    expect_error("{" BASE ", \"log_level\": 3}", "/log_level", "expected a string, found a number");
    expect_error("{" BASE ", \"resolver\": {\"interval_ms\": 2.5}}", "/resolver/interval_ms",
                 "expected an integer, found a fraction");
    expect_error("{" BASE ", \"listen\": \"/s\"}", "/listen", "expected an object, found a string");
    expect_error("{" BASE ", \"listen\": {\"unix\": \"/s\", \"allow_remote\": \"yes\"}}",
                 "/listen/allow_remote", "expected a boolean, found a string");
    expect_error("{" SOURCE ", \"maps\": 5, " TARGET "}", "/maps",
                 "expected a string or an array of strings, found a number");
    expect_error("{" SOURCE ", \"maps\": [\"maps\", true], " TARGET "}", "/maps/1",
                 "expected a string, found a boolean");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": 5}}}", "/connectors/t/conninfo", "expected a string, found a number");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": 1}}", "/connectors/t",
                 "expected an object, found a number");
}

static void test_ranges(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\", \"pool_size\": 0}}}",
                 "/connectors/t/pool_size", "must be between 1 and 1024");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\", \"timeout_ms\": -1}}}",
                 "/connectors/t/timeout_ms", "must be between 0 and");
    expect_error("{" BASE ", \"limits\": {\"max_body_bytes\": 10}}", "/limits/max_body_bytes",
                 "must be between 1024 and");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\", \"limits\": {\"window_s\": 0}}}}",
                 "/connectors/t/limits/window_s", "must be above zero while");
}

static void test_required_keys(void)
{
    expect_error("{" MAPS ", " TARGET "}", "/", "missing required key \"source\"");
    expect_error("{" SOURCE ", " TARGET "}", "/", "missing required key \"maps\"");
    expect_error("{" SOURCE ", " MAPS "}", "/", "missing required key \"connectors\"");
    expect_error("{\"source\": {}, " MAPS ", " TARGET "}", "/source",
                 "missing required key \"conninfo\"");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"conninfo\": \"x\"}}}",
                 "/connectors/t", "missing required key \"type\"");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\"}}}",
                 "/connectors/t", "\"conninfo\" is required for type \"pg\"");
    expect_error("{" SOURCE ", \"maps\": [], " TARGET "}", "/maps", "expected at least one path");
}

static void test_at_least_one_connector(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {}}", "/connectors",
                 "expected at least one connector");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"// c\": \"only a comment\"}}",
                 "/connectors", "expected at least one connector");
}

static void test_connector_name(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"a b\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\"}}}", "/connectors/a b",
                 "connector name \"a b\" must be 1 to 63 letters");
    /* a "/" in a key is written as "~1" in the JSON path */
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"a/b\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\"}}}", "/connectors/a~1b", "connector name \"a/b\"");
}

static void test_connector_type(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"oracle\", "
                 "\"conninfo\": \"x\"}}}", "/connectors/t/type",
                 "unknown connector type \"oracle\"; valid types are \"pg\"");
    /* a built type validates its own settings */
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"odata\", "
                 "\"url\": \"x\"}}}", "/connectors/t", "\"url\" x is not a valid URL");
}

static void test_commit_mode(void)
{
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\", \"commit\": \"2pc\"}}}", "/connectors/t/commit",
                 "invalid commit mode \"2pc\"; valid modes are \"two-phase\", \"one-phase\", "
                 "\"auto\"");
}

static void test_connector_check(void)
{
    /* the type's own check runs at load: a conninfo libpq cannot parse */
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"bogus_option=1\"}}}", "/connectors/t",
                 "\"conninfo\" is not a valid connection string: invalid connection option "
                 "\"bogus_option\"");
}

static void test_log_level(void)
{
    expect_error("{" BASE ", \"log_level\": \"loud\"}", "/log_level",
                 "invalid log level \"loud\"; valid levels are \"debug\", \"info\"");
}

static void test_source_system(void)
{
    expect_error("{\"source\": {\"conninfo\": \"x\", \"system\": 7301234567890123456}, " MAPS
                 ", " TARGET "}", "/source/system", "quote it");
    expect_error("{\"source\": {\"conninfo\": \"x\", \"system\": \"abc\"}, " MAPS ", " TARGET "}",
                 "/source/system", "expected a database system identifier");
}

/* ---- listening ---- */

static void test_tcp_needs_token(void)
{
    expect_error("{" BASE ", \"listen\": {\"tcp\": \"127.0.0.1:7480\"}}", "/listen",
                 "\"tcp\" needs a bearer token: add \"token\" or \"token_file\"");
}

static void test_token_rules(void)
{
    expect_error("{" BASE ", \"listen\": {\"tcp\": \"127.0.0.1:1\", \"token\": \"short\"}}",
                 "/listen/token", "the token must have at least 16 characters");
    expect_error("{" BASE ", \"listen\": {\"unix\": \"/s\", \"token\": \"0123456789abcdef\"}}",
                 "/listen", "\"token\" is only used with \"tcp\"");
    expect_error("{" BASE ", \"listen\": {\"tcp\": \"127.0.0.1:1\", \"token\": "
                 "\"0123456789abcdef\", \"token_file\": \"t\"}}",
                 "/listen", "give either \"token\" or \"token_file\", not both");
}

static void test_tcp_loopback_only(void)
{
    struct dw_config *cfg;

    expect_error("{" BASE ", \"listen\": {\"tcp\": \"0.0.0.0:7480\", \"token\": "
                 "\"0123456789abcdef\"}}", "/listen/tcp",
                 "address \"0.0.0.0:7480\" is not a loopback address; set \"allow_remote\": true");
    expect_error("{" BASE ", \"listen\": {\"tcp\": \"bridge.example.com:7480\", \"token\": "
                 "\"0123456789abcdef\"}}", "/listen/tcp", "is not a loopback address");
    cfg = expect_ok("{" BASE ", \"listen\": {\"tcp\": \"0.0.0.0:7480\", \"allow_remote\": true, "
                    "\"token\": \"0123456789abcdef\"}}");
    CU_ASSERT_PTR_NULL(cfg ? cfg->listen_unix : "x");
    dw_config_free(cfg);
    cfg = expect_ok("{" BASE ", \"listen\": {\"tcp\": \"[::1]:7480\", \"token\": "
                    "\"0123456789abcdef\"}}");
    dw_config_free(cfg);
    cfg = expect_ok("{" BASE ", \"listen\": {\"tcp\": \"localhost:7480\", \"token\": "
                    "\"0123456789abcdef\"}}");
    dw_config_free(cfg);
}

static void test_listen_group(void)
{
    struct dw_config *cfg;

    expect_error("{" BASE ", \"listen\": {\"unix\": \"/s\", \"group\": \"no-such-group-dw\"}}",
                 "/listen/group", "unknown group \"no-such-group-dw\"");
    cfg = expect_ok("{" BASE ", \"listen\": {\"unix\": \"/s\", \"group\": \"root\"}}");
    CU_ASSERT_EQUAL(cfg ? cfg->listen_gid : -1, 0);
    CU_ASSERT_STRING_EQUAL(cfg && cfg->listen_group ? cfg->listen_group : "", "root");
    dw_config_free(cfg);
    cfg = expect_ok("{" BASE ", \"listen\": {\"unix\": \"/s\"}}");
    CU_ASSERT_EQUAL(cfg ? cfg->listen_gid : 0, -1);
    dw_config_free(cfg);
}

static void test_tcp_address_syntax(void)
{
    const char *bad[] = {"7480", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x",
                         "::1:7480", "[::1]7480"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];

        snprintf(text, sizeof(text), "{" BASE ", \"listen\": {\"tcp\": \"%s\", \"token\": "
                 "\"0123456789abcdef\"}}", bad[i]);
        expect_error(text, "/listen/tcp", "invalid address");
    }
}

/* ---- ${ENV}, files, secrets ---- */

static void test_env_expansion(void)
{
    struct dw_config *cfg;
    const struct dw_connector_entry *e;

    setenv("DW_TEST_PASSWORD", "s3cret-pw", 1);
    setenv("DW_TEST_DB", "crm", 1);
    cfg = expect_ok("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                    "\"conninfo\": \"dbname=${DW_TEST_DB} password=${DW_TEST_PASSWORD} "
                    "application_name=$${x}\"}}}");
    if (cfg) {
        e = dw_config_connector(cfg, "t");
        DW_ASSERT_STREQ(dw_connector_setting(&e->cfg, "conninfo"),
                        "dbname=crm password=s3cret-pw application_name=${x}");
        CU_ASSERT_TRUE(dw_connector_setting_secret(&e->cfg, "conninfo"));
    }
    dw_config_free(cfg);
    unsetenv("DW_TEST_PASSWORD");
    unsetenv("DW_TEST_DB");
}

static void test_env_missing(void)
{
    unsetenv("DW_TEST_NOT_SET");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"password=${DW_TEST_NOT_SET}\"}}}", "/connectors/t/conninfo",
                 "environment variable \"DW_TEST_NOT_SET\" is not set");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"password=${DW_TEST\"}}}", "/connectors/t/conninfo",
                 "unterminated \"${\"");
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"password=${A-B}\"}}}", "/connectors/t/conninfo",
                 "invalid environment variable reference");
}

/* No message ever shows a value that came from the environment or a file. */
static void test_secrets_never_in_messages(void)
{
    struct dw_config *cfg;
    char *errors;
    const char *tokfile = write_file("short.token", "tok-FILE-SECRET\n");
    char text[2048];

    setenv("DW_TEST_SECRET", "env-SECRET-value", 1);
    snprintf(text, sizeof(text),
             "{\"source\": {\"conninfo\": \"x\"}, " MAPS ", "
             "\"listen\": {\"tcp\": \"127.0.0.1:1\", \"token_file\": \"%s\"},"
             "\"connectors\": {"
             " \"a\": {\"type\": \"pg\", \"conninfo\": \"bad ${DW_TEST_SECRET}\"},"
             " \"b\": {\"type\": \"pg\", \"conninfo\": \"x\", \"commit\": \"${DW_TEST_SECRET}\"}},"
             "\"log_level\": \"${DW_TEST_SECRET}\"}", tokfile);
    errors = load_text(text, &cfg);
    CU_ASSERT_PTR_NOT_NULL(errors);
    CU_ASSERT_PTR_NULL(strstr(errors ? errors : "", "SECRET"));
    if (errors && strstr(errors, "SECRET"))
        fprintf(stderr, "\n    secret in:\n%s", errors);
    /* but the errors are there */
    DW_ASSERT_CONTAINS(errors, "/listen/token_file: the token must have at least 16 characters");
    DW_ASSERT_CONTAINS(errors, "/connectors/a: \"conninfo\" is not a valid connection string");
    DW_ASSERT_CONTAINS(errors, "/connectors/b/commit: invalid commit mode (from the environment)");
    DW_ASSERT_CONTAINS(errors, "/log_level: invalid log level (from the environment)");
    free(errors);
    unsetenv("DW_TEST_SECRET");
}

static void test_token_file(void)
{
    struct dw_config *cfg;
    char text[1024];

    write_file("bridge.token", "0123456789abcdef-from-file\n");
    /* relative to the configuration file */
    cfg = expect_ok("{" BASE ", \"listen\": {\"tcp\": \"127.0.0.1:7480\", "
                    "\"token_file\": \"bridge.token\"}}");
    if (cfg)
        DW_ASSERT_STREQ(cfg->token, "0123456789abcdef-from-file");
    dw_config_free(cfg);

    write_file("crlf.token", "0123456789abcdef-crlf\r\n");
    snprintf(text, sizeof(text), "{" BASE ", \"listen\": {\"tcp\": \"127.0.0.1:7480\", "
             "\"token_file\": \"%s/crlf.token\"}}", tmp);
    cfg = expect_ok(text);
    if (cfg)
        DW_ASSERT_STREQ(cfg->token, "0123456789abcdef-crlf");
    dw_config_free(cfg);

    expect_error("{" BASE ", \"listen\": {\"tcp\": \"127.0.0.1:7480\", "
                 "\"token_file\": \"missing.token\"}}", "/listen/token_file",
                 "could not open file \"missing.token\": No such file or directory");
    write_file("empty.token", "\n");
    expect_error("{" BASE ", \"listen\": {\"tcp\": \"127.0.0.1:7480\", "
                 "\"token_file\": \"empty.token\"}}", "/listen/token_file",
                 "file \"empty.token\" is empty");
}

static void test_setting_file(void)
{
    struct dw_config *cfg;
    const struct dw_connector_entry *e;

    write_file("crm.conninfo", "dbname=crm password=from-file\n");
    write_file("erp.conninfo", "dbname=erp\n");
    cfg = expect_ok("{\"source\": {\"conninfo_file\": \"erp.conninfo\"}, " MAPS ", "
                    "\"connectors\": {\"t\": {\"type\": \"pg\", "
                    "\"conninfo_file\": \"crm.conninfo\"}}}");
    if (cfg) {
        DW_ASSERT_STREQ(cfg->source_conninfo, "dbname=erp");
        e = dw_config_connector(cfg, "t");
        DW_ASSERT_STREQ(dw_connector_setting(&e->cfg, "conninfo"), "dbname=crm password=from-file");
        CU_ASSERT_TRUE(dw_connector_setting_secret(&e->cfg, "conninfo"));
    }
    dw_config_free(cfg);
    expect_error("{" SOURCE ", " MAPS ", \"connectors\": {\"t\": {\"type\": \"pg\", "
                 "\"conninfo\": \"x\", \"conninfo_file\": \"crm.conninfo\"}}}", "/connectors/t",
                 "give either \"conninfo\" or \"conninfo_file\", not both");
}

/* ---- paths ---- */

static void test_relative_paths(void)
{
    struct dw_config *cfg;
    char cwd[512], want[600];

    /* relative to the file, not to the working directory */
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    CU_ASSERT_EQUAL_FATAL(chdir("/"), 0);
    cfg = expect_ok("{" SOURCE ", \"maps\": [\"maps\", \"maps/../maps\"], " TARGET ", "
                    "\"listen\": {\"unix\": \"bridge.sock\"}}");
    if (cfg) {
        snprintf(want, sizeof(want), "%s/maps", tmp);
        DW_ASSERT_STREQ(cfg->map_paths[0], want);
        snprintf(want, sizeof(want), "%s/bridge.sock", tmp);
        DW_ASSERT_STREQ(cfg->listen_unix, want);
    }
    dw_config_free(cfg);
    expect_error("{" SOURCE ", \"maps\": [\"maps\", \"nowhere\"], " TARGET "}", "/maps/1",
                 "could not access \"nowhere\": No such file or directory");
    CU_ASSERT_EQUAL(chdir(cwd), 0);
}

static void test_relative_config_path(void)
{
    struct dw_config *cfg = NULL;
    struct dw_error err;
    char *errors = NULL;
    char cwd[512], want[600];

    write_file("rel.json", "{" BASE "}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    CU_ASSERT_EQUAL_FATAL(chdir(tmp), 0);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_config_load("rel.json", &cfg, &errors, &err), DW_OK);
    if (cfg) {
        snprintf(want, sizeof(want), "%s/rel.json", tmp);
        DW_ASSERT_STREQ(cfg->file, want);
        snprintf(want, sizeof(want), "%s/maps", tmp);
        DW_ASSERT_STREQ(cfg->map_paths[0], want);
    }
    dw_config_free(cfg);
    free(errors);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
}

/* ---- all errors, not the first ---- */

static void test_all_errors_collected(void)
{
    struct dw_config *cfg;
    char *errors = load_text("{\"source\": {\"conninfo\": 1}, \"maps\": \"nowhere\", "
                             "\"connectors\": {\"a\": {\"type\": \"pg\", \"conninfo\": \"x\", "
                             "\"pool_size\": -5}, \"b\": {\"type\": \"nope\"}}, "
                             "\"log_level\": \"shout\", \"extra\": true}", &cfg);
    size_t lines = 0;

    for (const char *p = errors; p && *p; p++)
        lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 6);
    DW_ASSERT_CONTAINS(errors, "/source/conninfo: ");
    DW_ASSERT_CONTAINS(errors, "/maps: ");
    DW_ASSERT_CONTAINS(errors, "/connectors/a/pool_size: ");
    DW_ASSERT_CONTAINS(errors, "/connectors/b/type: ");
    DW_ASSERT_CONTAINS(errors, "/log_level: ");
    DW_ASSERT_CONTAINS(errors, "unknown key \"extra\"");
    free(errors);
}

static const struct dw_cunit_test tests[] = {
    {"minimal file and defaults", test_minimal_defaults},
    {"every key", test_full_file},
    {"the example configuration loads", test_example_file},
    {"syntax error has line and column", test_syntax_error},
    {"missing file", test_missing_file},
    {"root must be an object", test_root_not_object},
    {"unknown top-level key lists valid keys", test_unknown_key_top},
    {"unknown connector key lists the type's settings", test_unknown_key_connector_lists_settings},
    {"unknown nested keys", test_unknown_key_nested},
    {"duplicate keys", test_duplicate_key},
    {"type errors", test_type_errors},
    {"ranges", test_ranges},
    {"required keys", test_required_keys},
    {"at least one connector", test_at_least_one_connector},
    {"connector names", test_connector_name},
    {"connector types", test_connector_type},
    {"commit modes", test_commit_mode},
    {"the type's own check", test_connector_check},
    {"log level", test_log_level},
    {"source system identifier", test_source_system},
    {"tcp needs a token", test_tcp_needs_token},
    {"token rules", test_token_rules},
    {"tcp is loopback unless allow_remote", test_tcp_loopback_only},
    {"listen group resolved at load", test_listen_group},
    {"tcp address syntax", test_tcp_address_syntax},
    {"${ENV} expansion", test_env_expansion},
    {"${ENV} errors", test_env_missing},
    {"secrets never in messages", test_secrets_never_in_messages},
    {"token_file", test_token_file},
    {"setting_file", test_setting_file},
    {"paths relative to the file", test_relative_paths},
    {"relative configuration path", test_relative_config_path},
    {"all errors are collected", test_all_errors_collected},
};

int main(void)
{
    char cmd[300];
    int rc;

    snprintf(tmp, sizeof(tmp), "/tmp/dw-config-test.XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cmd, sizeof(cmd), "%s/maps", tmp);
    if (mkdir(cmd, 0755) != 0) {
        perror("mkdir");
        return 1;
    }
    rc = dw_cunit_run("config", tests, sizeof(tests) / sizeof(tests[0]));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return rc;
}
