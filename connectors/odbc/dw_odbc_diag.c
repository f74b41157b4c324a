/*
 * The ODBC connector's diagnostics and connection strings.
 *
 * Every failed ODBC call is turned into a dw_error here: all diagnostic
 * records are read (SQLGetDiagRec), the first one gives the SQLSTATE, the
 * messages are joined without the vendor prefixes ("[unixODBC][Driver
 * Manager]", "[ma-3.1.15][10.11.19-MariaDB]"), and the records decide the
 * class: a lost connection (08xxx, MariaDB's "server has gone away" and
 * friends) breaks the session, a statement or lock timeout is DW_ERR_TIMEOUT,
 * anything else is the target's rejection.
 *
 * Connection strings hold passwords.  They are never put into a message, and
 * whatever a driver echoes back is masked (PWD=, PASSWORD= and the password
 * itself) before it reaches a dw_error.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/odbc/dw_odbc_int.h"

#define MAX_RECORDS 16

struct diag {
    char state[6];
    SQLINTEGER native;
    char origin[96];          /* the first record's vendor prefixes */
    char message[256];        /* first lines of the records, joined */
    char detail[512];         /* further lines (PostgreSQL's DETAIL: ...) */
    int nrec;
    bool lost;
    bool timeout;
};

/* ---------------------------------------------------------------- masking */

static bool key_at(const char *p, const char *key)
{
    size_t n = strlen(key);

    return strncasecmp(p, key, n) == 0;
}

/* Length of a connection-string value starting at p (braced or up to a separator). */
static size_t value_span(const char *p)
{
    size_t n = 0;

    if (*p == '{') {
        for (n = 1; p[n]; n++) {
            if (p[n] == '}') {
                if (p[n + 1] == '}') {
                    n++;
                    continue;
                }
                return n + 1;
            }
        }
        return n;
    }
    while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\'' && p[n] != '"' && p[n] != ',' &&
           p[n] != '\n')
        n++;
    return n;
}

void dw_odbc_mask(char *text, size_t size, const char *password)
{
    char out[1024];
    size_t o = 0, plen = password ? strlen(password) : 0;
    const char *p = text;

    if (!text || size == 0)
        return;
    while (*p && o + 4 < sizeof(out)) {
        /* "...PWD=value" and "...PASSWORD=value" (TLSKEYPWD= too) */
        if ((key_at(p, "pwd") || key_at(p, "password"))) {
            size_t k = key_at(p, "password") ? 8 : 3, sp = k;

            while (p[sp] == ' ')
                sp++;
            if (p[sp] == '=') {
                size_t v = sp + 1;

                while (p[v] == ' ')
                    v++;
                if (o + v + 3 < sizeof(out)) {
                    memcpy(out + o, p, v);
                    o += v;
                    memcpy(out + o, "***", 3);
                    o += 3;
                }
                p += v + value_span(p + v);
                continue;
            }
        }
        /* the password itself, when it is long enough not to hit ordinary words */
        if (plen >= 4 && strncmp(p, password, plen) == 0) {
            memcpy(out + o, "***", 3);
            o += 3;
            p += plen;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
    snprintf(text, size, "%s", out);
}

/* ---------------------------------------------------------------- records */

/* Lower-case substring test. */
static bool contains_ci(const char *hay, const char *needle)
{
    return strcasestr(hay, needle) != NULL;
}

static bool is_mysql(const struct odbc_session *s)
{
    return s && (s->family == ODBC_FAMILY_MARIADB || s->family == ODBC_FAMILY_MYSQL);
}

static bool record_lost(const struct odbc_session *s, const char *state, SQLINTEGER native,
                        const char *msg)
{
    if (strncmp(state, "08", 2) == 0)
        return true;
    if (is_mysql(s)) {
        /* server shutdown, killed connection, can't connect, gone away, lost, idle timeout */
        static const SQLINTEGER codes[] = {1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031};

        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
            if (native == codes[i])
                return true;
        }
    }
    if (s && s->family == ODBC_FAMILY_POSTGRESQL &&
        (strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
         strcmp(state, "57P03") == 0))
        return true;
    return contains_ci(msg, "server has gone away") || contains_ci(msg, "lost connection") ||
           contains_ci(msg, "connection to the server was lost") ||
           contains_ci(msg, "communication link failure");
}

static bool record_timeout(const struct odbc_session *s, const char *state, SQLINTEGER native,
                           const char *msg)
{
    if (strcmp(state, "HYT00") == 0 || strcmp(state, "HYT01") == 0)
        return true;
    /* max_statement_time exceeded, lock wait timeout */
    if (is_mysql(s) && (native == 1969 || native == 1205 || native == 3024))
        return true;
    if (s && s->family == ODBC_FAMILY_POSTGRESQL && strcmp(state, "57014") == 0)
        return true;
    /* SQLite's busy timeout */
    return s && s->family == ODBC_FAMILY_SQLITE && contains_ci(msg, "database is locked");
}

static void append(char *dst, size_t size, const char *sep, const char *text)
{
    size_t n = strlen(dst);

    if (!*text || n + 1 >= size)
        return;
    snprintf(dst + n, size - n, "%s%s", n ? sep : "", text);
}

/* Move p past the vendor prefixes "[...][...]", copying them into origin. */
static const char *strip_prefixes(const char *p, char *origin, size_t osize)
{
    while (*p == '[') {
        const char *end = strchr(p, ']');

        if (!end)
            break;
        if (origin && strlen(origin) + (size_t) (end - p) + 2 < osize)
            strncat(origin, p, (size_t) (end - p) + 1);
        p = end + 1;
    }
    while (*p == ' ')
        p++;
    return p;
}

static void read_diag(const struct odbc_session *s, SQLSMALLINT htype, SQLHANDLE h,
                      struct diag *d)
{
    memset(d, 0, sizeof(*d));
    for (SQLSMALLINT i = 1; i <= MAX_RECORDS; i++) {
        SQLCHAR state[6], msg[1024];
        SQLINTEGER native = 0;
        SQLSMALLINT len = 0;
        SQLRETURN r = SQLGetDiagRec(htype, h, i, state, &native, msg, sizeof(msg), &len);
        char line[1024], *nl;
        const char *text;

        if (r != SQL_SUCCESS && r != SQL_SUCCESS_WITH_INFO)
            break;
        msg[sizeof(msg) - 1] = '\0';
        state[5] = '\0';
        /* informational records ride along with errors; they are not the reason */
        if (strcmp((char *) state, "00000") == 0 || strncmp((char *) state, "01", 2) == 0)
            continue;
        text = strip_prefixes((char *) msg, d->nrec == 0 ? d->origin : NULL, sizeof(d->origin));
        snprintf(line, sizeof(line), "%s", text);
        d->lost = d->lost || record_lost(s, (char *) state, native, line);
        d->timeout = d->timeout || record_timeout(s, (char *) state, native, line);
        if (d->nrec == 0) {
            memcpy(d->state, state, 6);
            d->native = native;
        }
        d->nrec++;
        /* the first line is the message; the others (DETAIL: ...) are detail */
        nl = strchr(line, '\n');
        if (nl) {
            char *rest = nl + 1;
            size_t n;

            *nl = '\0';
            while (*rest == ' ' || *rest == '\t')
                rest++;
            n = strlen(rest);
            while (n > 0 && (rest[n - 1] == '\n' || rest[n - 1] == ' ' || rest[n - 1] == ';'))
                rest[--n] = '\0';
            for (char *c = rest; *c; c++) {
                if (*c == '\n')
                    *c = ' ';
            }
            append(d->detail, sizeof(d->detail), " ", rest);
        }
        {
            size_t n = strlen(line);

            while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == ';' || line[n - 1] == '\r'))
                line[--n] = '\0';
        }
        if (!strstr(d->message, line))
            append(d->message, sizeof(d->message), "; ", line);
    }
    dw_odbc_mask(d->message, sizeof(d->message), s ? s->password : NULL);
    dw_odbc_mask(d->detail, sizeof(d->detail), s ? s->password : NULL);
    dw_odbc_mask(d->origin, sizeof(d->origin), s ? s->password : NULL);
}

static void fill_detail(const struct diag *d, struct dw_error *err)
{
    if (d->detail[0])
        dw_error_detail(err, "%s", d->detail);
    else if (d->nrec)
        dw_error_detail(err, "The driver %sreported SQLSTATE %s, native error %ld.", d->origin,
                        d->state, (long) d->native);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dw_odbc_call_start(struct odbc_session *s)
{
    s->call_ms = now_ms();
}

static bool waited_too_long(const struct odbc_session *s)
{
    long limit = s->base.config ? s->base.config->timeout_ms : 0;

    return limit > 0 && s->call_ms > 0 && now_ms() - s->call_ms >= limit;
}

dw_errcode dw_odbc_error(struct odbc_session *s, SQLSMALLINT htype, SQLHANDLE h, SQLRETURN rc,
                         const char *what, struct dw_error *err)
{
    struct diag d;
    dw_errcode code;

    if (rc == SQL_INVALID_HANDLE || !h)
        return dw_error_set(err, DW_ERR_INTERNAL, "invalid ODBC handle while %s", what);
    read_diag(s, htype, h, &d);
    if (d.nrec == 0)
        return dw_error_set(err, DW_ERR_TARGET,
                            "the ODBC driver failed while %s and gave no reason", what);
    if (d.lost && waited_too_long(s)) {
        /* the driver's read timeout: the target stopped answering */
        s->base.broken = true;
        code = dw_error_set(err, DW_ERR_TIMEOUT, "the target did not answer within %ld ms: %s",
                            s->base.config->timeout_ms, d.message);
    } else if (d.lost) {
        s->base.broken = true;
        code = dw_error_set(err, DW_ERR_CONNECT, "lost the connection to the target while %s: %s",
                            what, d.message);
    } else if (is_mysql(s) && d.native == 1242) {
        /*
         * Our MariaDB upsert fails this way on purpose when the new row collides
         * with another row on a unique key that is not the map's key (see the
         * upsert in dw_odbc_stmt.c); say so, with the SQLSTATE of a unique violation.
         */
        code = dw_error_set(err, DW_ERR_TARGET,
                             "duplicate key value: the row conflicts with another row on a unique "
                             "key other than the target key");
        dw_error_sqlstate(err, "23000");
    } else {
        code = dw_error_set(err, d.timeout ? DW_ERR_TIMEOUT : DW_ERR_TARGET, "%s", d.message);
    }
    dw_error_sqlstate(err, d.state);
    fill_detail(&d, err);
    return code;
}

dw_errcode dw_odbc_error_as(struct odbc_session *s, SQLSMALLINT htype, SQLHANDLE h,
                            dw_errcode code, const char *prefix, struct dw_error *err)
{
    struct diag d;

    read_diag(s, htype, h, &d);
    dw_error_set(err, code, "%s: %s", prefix, d.nrec ? d.message : "the driver gave no reason");
    dw_error_sqlstate(err, d.state);
    fill_detail(&d, err);
    return code;
}

dw_errcode dw_odbc_lost(struct odbc_session *s, const char *what, struct dw_error *err)
{
    s->base.broken = true;
    return dw_error_set(err, DW_ERR_CONNECT, "lost the connection to the target while %s", what);
}

/* ---------------------------------------------------------------- connection strings */

/*
 * Connection strings ("key=value;key={value};...").  Each pair in turn:
 * returns 1 for a pair, 0 at the end, -1 for an unterminated brace; *next
 * continues after the pair.  A value in braces comes without them (with "}}"
 * still doubled).
 */
struct odbc_pair {
    const char *key;
    size_t keylen;
    const char *value;
    size_t valuelen;
    bool has_value;     /* there was an "=" */
    bool braced;
};

static int next_pair(const char **next, struct odbc_pair *pair)
{
    const char *p = *next;

    while (*p == ';' || *p == ' ' || *p == '\t')
        p++;
    if (!*p) {
        *next = p;
        return 0;
    }
    memset(pair, 0, sizeof(*pair));
    pair->key = p;
    while (*p && *p != '=' && *p != ';')
        p++;
    pair->keylen = (size_t) (p - pair->key);
    while (pair->keylen > 0 && pair->key[pair->keylen - 1] == ' ')
        pair->keylen--;
    if (*p != '=') {
        pair->value = p;
        *next = p;
        return 1;
    }
    pair->has_value = true;
    p++;
    while (*p == ' ')
        p++;
    if (*p == '{') {
        pair->braced = true;
        pair->value = ++p;
        for (;;) {
            if (!*p) {
                pair->valuelen = (size_t) (p - pair->value);
                *next = p;
                return -1;
            }
            if (*p == '}') {
                if (p[1] == '}') {
                    p += 2;
                    continue;
                }
                break;
            }
            p++;
        }
        pair->valuelen = (size_t) (p - pair->value);
        p++;
        while (*p == ' ')
            p++;
    } else {
        pair->value = p;
        while (*p && *p != ';')
            p++;
        pair->valuelen = (size_t) (p - pair->value);
        while (pair->valuelen > 0 && pair->value[pair->valuelen - 1] == ' ')
            pair->valuelen--;
    }
    *next = p;
    return 1;
}

static bool pair_is(const struct odbc_pair *pair, const char *key)
{
    return pair->keylen == strlen(key) && strncasecmp(pair->key, key, pair->keylen) == 0;
}

bool dw_odbc_connstr_valid(const char *connstr, char *msg, size_t size)
{
    const char *next = connstr;
    struct odbc_pair pair;
    bool target = false;
    int rc;

    while ((rc = next_pair(&next, &pair)) == 1) {
        if (pair.keylen == 0) {
            snprintf(msg, size, "a part has no key before \"=\"");
            return false;
        }
        if (pair_is(&pair, "DRIVER") || pair_is(&pair, "DSN") || pair_is(&pair, "FILEDSN"))
            target = target || pair.valuelen > 0;
    }
    if (rc < 0) {
        /* the key is safe to show, the value is not */
        snprintf(msg, size, "the value of \"%.*s\" opens a \"{\" that is never closed",
                 (int) (pair.keylen < 40 ? pair.keylen : 40), pair.key);
        return false;
    }
    if (!target) {
        snprintf(msg, size, "it names neither a DRIVER nor a DSN");
        return false;
    }
    return true;
}

char *dw_odbc_connstr_get(const char *connstr, const char *key)
{
    const char *next = connstr;
    struct odbc_pair pair;

    while (next_pair(&next, &pair) == 1) {
        if (pair_is(&pair, key)) {
            char *v = malloc(pair.valuelen + 1);
            size_t o = 0;

            if (!v)
                return NULL;
            for (size_t i = 0; i < pair.valuelen; i++) {
                v[o++] = pair.value[i];
                if (pair.braced && pair.value[i] == '}' && i + 1 < pair.valuelen &&
                    pair.value[i + 1] == '}')
                    i++;
            }
            v[o] = '\0';
            return v;
        }
    }
    return NULL;
}

char *dw_odbc_connstr_with_multi_statements(const char *connstr)
{
    const char *next = connstr;
    struct odbc_pair pair;
    struct dw_buf b;
    bool found = false;

    dw_buf_init(&b);
    while (next_pair(&next, &pair) == 1) {
        if (b.len)
            dw_buf_putc(&b, ';');
        if (!found && (pair_is(&pair, "OPTION") || pair_is(&pair, "OPTIONS"))) {
            char num[32];
            unsigned long v;

            snprintf(num, sizeof(num), "%.*s", (int) (pair.valuelen < 31 ? pair.valuelen : 31),
                     pair.value);
            v = strtoul(num, NULL, 10) | ODBC_MYSQL_FLAG_MULTI_STATEMENTS;
            dw_buf_printf(&b, "%.*s=%lu", (int) pair.keylen, pair.key, v);
            found = true;
            continue;
        }
        dw_buf_append(&b, pair.key, pair.keylen);
        if (pair.has_value) {
            dw_buf_putc(&b, '=');
            if (pair.braced)
                dw_buf_putc(&b, '{');
            dw_buf_append(&b, pair.value, pair.valuelen);
            if (pair.braced)
                dw_buf_putc(&b, '}');
        }
    }
    if (!found)
        dw_buf_printf(&b, "%sOPTION=%lu", b.len ? ";" : "", ODBC_MYSQL_FLAG_MULTI_STATEMENTS);
    if (dw_buf_failed(&b)) {
        dw_buf_cleanup(&b);
        return NULL;
    }
    return dw_buf_take(&b);
}

char *dw_odbc_connstr_with_timeouts(const char *connstr, long connect_s, long read_s)
{
    char *driver = dw_odbc_connstr_get(connstr, "DRIVER");
    bool mysql = driver && (strcasestr(driver, "mariadb") || strcasestr(driver, "mysql"));
    static const char *const keys[] = {"CONN_TIMEOUT", "READ_TIMEOUT", "WRITE_TIMEOUT"};
    struct dw_buf b;

    free(driver);
    dw_buf_init(&b);
    dw_buf_puts(&b, connstr);
    if (mysql && connect_s > 0) {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            char *have = dw_odbc_connstr_get(connstr, keys[i]);

            if (!have) {
                size_t n = b.len;

                while (n > 0 && (b.data[n - 1] == ' ' || b.data[n - 1] == ';'))
                    n--;
                b.len = n;
                b.data[n] = '\0';
                dw_buf_printf(&b, ";%s=%ld", keys[i], i == 0 ? connect_s : read_s);
            }
            free(have);
        }
    }
    if (dw_buf_failed(&b)) {
        dw_buf_cleanup(&b);
        return NULL;
    }
    return dw_buf_take(&b);
}
