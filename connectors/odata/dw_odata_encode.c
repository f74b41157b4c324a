/*
 * Source text to OData key literals and JSON values, one normalizer per EDM
 * kind (see dw_odata_encode.h).  Each normalizer checks the text against the
 * type's grammar and writes the canonical form into a small buffer; the two
 * public functions then wrap it as a literal or as JSON.
 *
 * Numbers keep their digits: an Edm.Decimal or Edm.Int64 is sent as the JSON
 * number text it came as (never through a double), so precision is the
 * service's to keep.  Edm.Double's NaN and infinities, which JSON numbers
 * cannot carry, are the strings "NaN", "INF" and "-INF", as OData JSON says.
 */
#include "connectors/odata/dw_odata_encode.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bridge/common/dw_utf8.h"
#include "bridge/common/dw_wire.h"

/* Longest normalized non-string value (a decimal can be long: keep it generous). */
#define MAX_SCALAR 1024

static dw_errcode invalid(const struct dw_odata_property *p, const char *why,
                          struct dw_error *err)
{
    return dw_error_set(err, DW_ERR_TARGET, "value of property \"%s\" is not a valid %s: %s",
                        p->name, strncmp(p->type, "Edm.", 4) == 0 ? p->type :
                        dw_odata_kind_name(p->kind), why);
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* ---------------------------------------------------------------- numbers */

static dw_errcode norm_int(const struct dw_odata_property *p, const char *v, char *out,
                           size_t size, struct dw_error *err)
{
    const char *d = v + (*v == '-' || *v == '+');
    char *end;
    long long n;

    if (!all_digits(d, strlen(d)))
        return invalid(p, "expected an integer", err);
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno == ERANGE || *end || n < p->min || n > p->max)
        return invalid(p, "out of range", err);
    snprintf(out, size, "%lld", n);
    return DW_OK;
}

/*
 * [+-] digits [. digits] [e [+-] digits], also ".5" and "5." as PostgreSQL
 * never prints them but people type them; written as a JSON number.
 */
static bool norm_decimal_text(const char *v, char *out, size_t size)
{
    const char *p = v, *int_start, *frac_start = NULL;
    size_t int_len, frac_len = 0, o = 0;
    bool neg = false;

    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    int_start = p;
    while (*p >= '0' && *p <= '9')
        p++;
    int_len = (size_t) (p - int_start);
    if (*p == '.') {
        frac_start = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        frac_len = (size_t) (p - frac_start);
    }
    if (int_len == 0 && frac_len == 0)
        return false;
    /* drop leading zeros of the integer part, keep one */
    while (int_len > 1 && *int_start == '0') {
        int_start++;
        int_len--;
    }
    if (strlen(v) + 3 >= size)
        return false;
    if (neg)
        out[o++] = '-';
    if (int_len == 0)
        out[o++] = '0';
    memcpy(out + o, int_start, int_len);
    o += int_len;
    if (frac_len > 0) {
        out[o++] = '.';
        memcpy(out + o, frac_start, frac_len);
        o += frac_len;
    }
    if (*p == 'e' || *p == 'E') {
        const char *e = ++p;

        if (*p == '+' || *p == '-')
            p++;
        if (!all_digits(p, strlen(p)))
            return false;
        out[o++] = 'e';
        memcpy(out + o, e, strlen(e));
        o += strlen(e);
        p += strlen(p);
    }
    if (*p)
        return false;
    out[o] = '\0';
    return true;
}

/* *special: 0 for a number, else 'N' (NaN), 'I' (INF), '-' (-INF). */
static dw_errcode norm_float(const struct dw_odata_property *p, const char *v, char *out,
                             size_t size, char *special, struct dw_error *err)
{
    *special = 0;
    if (p->kind == DW_ODATA_DOUBLE) {
        if (strcasecmp(v, "NaN") == 0)
            *special = 'N';
        else if (strcasecmp(v, "Infinity") == 0 || strcasecmp(v, "INF") == 0 ||
                 strcasecmp(v, "+Infinity") == 0)
            *special = 'I';
        else if (strcasecmp(v, "-Infinity") == 0 || strcasecmp(v, "-INF") == 0)
            *special = '-';
        if (*special) {
            snprintf(out, size, "%s", *special == 'N' ? "NaN" : *special == 'I' ? "INF" : "-INF");
            return DW_OK;
        }
    }
    if (!norm_decimal_text(v, out, size))
        return invalid(p, "expected a number", err);
    return DW_OK;
}

static dw_errcode norm_bool(const struct dw_odata_property *p, const char *v, char *out,
                            size_t size, struct dw_error *err)
{
    static const char *const yes[] = {"t", "true", "y", "yes", "on", "1"};
    static const char *const no[] = {"f", "false", "n", "no", "off", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            snprintf(out, size, "true");
            return DW_OK;
        }
        if (strcasecmp(v, no[i]) == 0) {
            snprintf(out, size, "false");
            return DW_OK;
        }
    }
    return invalid(p, "expected a boolean", err);
}

/* ---------------------------------------------------------------- dates and times */

static bool valid_date(const char *v)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;

    if (!all_digits(v, 4) || v[4] != '-' || !all_digits(v + 5, 2) || v[7] != '-' ||
        !all_digits(v + 8, 2))
        return false;
    y = num2(v) * 100 + num2(v + 2);
    m = num2(v + 5);
    d = num2(v + 8);
    if (m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return false;
    return !(m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
}

/*
 * HH:MM[:SS[.fraction]] at v; *len is how much it took.  Written as
 * HH:MM:SS[.fraction] (1 to 12 fractional digits, as OData allows).
 */
static bool norm_time(const char *v, size_t *len, char *out, size_t size)
{
    size_t n = 5, frac = 0;

    if (!all_digits(v, 2) || v[2] != ':' || !all_digits(v + 3, 2) || num2(v) > 23 ||
        num2(v + 3) > 59)
        return false;
    if (v[5] == ':') {
        if (!all_digits(v + 6, 2) || num2(v + 6) > 59)
            return false;
        n = 8;
        if (v[8] == '.') {
            while (v[9 + frac] >= '0' && v[9 + frac] <= '9')
                frac++;
            if (frac == 0 || frac > 12)
                return false;
            n = 9 + frac;
        }
    }
    if (size < 22)
        return false;
    memcpy(out, v, 5);
    if (n == 5)
        memcpy(out + 5, ":00", 4);
    else
        memcpy(out + 5, v + 5, n - 5), out[n] = '\0';
    *len = n;
    return true;
}

static dw_errcode norm_date(const struct dw_odata_property *p, const char *v, char *out,
                            size_t size, struct dw_error *err)
{
    if (strlen(v) != 10 || !valid_date(v))
        return invalid(p, "expected a date as YYYY-MM-DD", err);
    snprintf(out, size, "%s", v);
    return DW_OK;
}

static dw_errcode norm_timeofday(const struct dw_odata_property *p, const char *v, char *out,
                                 size_t size, struct dw_error *err)
{
    size_t n;

    if (!norm_time(v, &n, out, size) || v[n])
        return invalid(p, "expected a time of day as HH:MM:SS", err);
    return DW_OK;
}

/*
 * YYYY-MM-DD[(T| )HH:MM[:SS[.f]]][Z|(+|-)HH[:MM]] -> YYYY-MM-DDTHH:MM:SS[.f](Z|+HH:MM).
 * No offset means UTC (the hook renders under TimeZone UTC); a date alone is
 * its midnight.
 */
static dw_errcode norm_datetimeoffset(const struct dw_odata_property *p, const char *v,
                                      char *out, size_t size, struct dw_error *err)
{
    const char *why = "expected a timestamp as YYYY-MM-DDTHH:MM:SS with an offset";
    char time[32];
    const char *q;
    size_t n, o;

    if (strlen(v) < 10 || !valid_date(v) || size < 64)
        return invalid(p, why, err);
    memcpy(out, v, 10);
    out[10] = 'T';
    o = 11;
    q = v + 10;
    if (*q == '\0') {
        memcpy(out + o, "00:00:00Z", 10);
        return DW_OK;
    }
    if (*q != 'T' && *q != 't' && *q != ' ')
        return invalid(p, why, err);
    q++;
    if (!norm_time(q, &n, time, sizeof(time)))
        return invalid(p, why, err);
    q += n;
    memcpy(out + o, time, strlen(time));
    o += strlen(time);
    if (*q == '\0' || ((*q == 'Z' || *q == 'z') && q[1] == '\0')) {
        memcpy(out + o, "Z", 2);
        return DW_OK;
    }
    if ((*q != '+' && *q != '-') || !all_digits(q + 1, 2) || num2(q + 1) > 23)
        return invalid(p, why, err);
    {
        int hh = num2(q + 1), mm = 0;

        if (q[3] == ':' && all_digits(q + 4, 2) && q[6] == '\0')
            mm = num2(q + 4);
        else if (all_digits(q + 3, 2) && q[5] == '\0')
            mm = num2(q + 3);
        else if (q[3] != '\0')
            return invalid(p, "an offset with seconds cannot be written in OData", err);
        if (mm > 59)
            return invalid(p, why, err);
        if (hh == 0 && mm == 0)
            memcpy(out + o, "Z", 2);
        else
            snprintf(out + o, size - o, "%c%02d:%02d", *q, hh, mm);
    }
    return DW_OK;
}

/* ISO 8601 duration as OData has it: [-]P[nD][T[nH][nM][n[.n]S]] */
static dw_errcode norm_duration(const struct dw_odata_property *p, const char *v, char *out,
                                size_t size, struct dw_error *err)
{
    const char *q = v + (*v == '-');
    bool any = false, in_time = false;
    const char *order = "DHMS";
    size_t next = 0;

    if (*q++ != 'P')
        goto bad;
    while (*q) {
        const char *d = q;
        const char *pos;

        if (*q == 'T' && !in_time) {
            in_time = true;
            q++;
            if (!*q)
                goto bad;
            continue;
        }
        while (*q >= '0' && *q <= '9')
            q++;
        if (q == d)
            goto bad;
        if (*q == '.') {
            q++;
            while (*q >= '0' && *q <= '9')
                q++;
            if (*q != 'S')
                goto bad;
        }
        pos = strchr(order, *q);
        if (!*q || !pos || (size_t) (pos - order) < next || (*q == 'D') == in_time)
            goto bad;
        next = (size_t) (pos - order) + 1;
        any = true;
        q++;
    }
    if (!any || strlen(v) >= size)
        goto bad;
    snprintf(out, size, "%s", v);
    return DW_OK;
bad:
    return invalid(p, "expected an ISO 8601 duration such as P1DT2H", err);
}

static dw_errcode norm_guid(const struct dw_odata_property *p, const char *v, char *out,
                            size_t size, struct dw_error *err)
{
    if (strlen(v) != 36 || size < 37)
        return invalid(p, "expected a GUID as 8-4-4-4-12 hexadecimal digits", err);
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? v[i] != '-' : !isxdigit((unsigned char) v[i]))
            return invalid(p, "expected a GUID as 8-4-4-4-12 hexadecimal digits", err);
        out[i] = (char) tolower((unsigned char) v[i]);
    }
    out[36] = '\0';
    return DW_OK;
}

/* bytea's hex output "\x0a1b" -> base64url (RFC 4648, no padding), as OData writes binary. */
static dw_errcode put_base64url(struct dw_buf *b, const struct dw_odata_property *p,
                                const char *v, struct dw_error *err)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t hex = strlen(v) >= 2 ? strlen(v) - 2 : 1;
    unsigned char chunk[3];
    size_t k = 0;

    if (v[0] != '\\' || v[1] != 'x' || hex % 2 != 0)
        return invalid(p, "expected bytea's hex form \\x...", err);
    for (size_t i = 0; i < hex; i += 2) {
        char pair[3] = {v[2 + i], v[3 + i], '\0'};

        if (!isxdigit((unsigned char) pair[0]) || !isxdigit((unsigned char) pair[1]))
            return invalid(p, "expected bytea's hex form \\x...", err);
        chunk[k++] = (unsigned char) strtoul(pair, NULL, 16);
        if (k == 3 || i + 2 == hex) {
            unsigned long w = (unsigned long) chunk[0] << 16 |
                              (unsigned long) (k > 1 ? chunk[1] : 0) << 8 | (k > 2 ? chunk[2] : 0);

            dw_buf_putc(b, alphabet[w >> 18 & 63]);
            dw_buf_putc(b, alphabet[w >> 12 & 63]);
            if (k > 1)
                dw_buf_putc(b, alphabet[w >> 6 & 63]);
            if (k > 2)
                dw_buf_putc(b, alphabet[w & 63]);
            k = 0;
        }
    }
    return DW_OK;
}

/* ---------------------------------------------------------------- scalars */

/* The normalized text of a non-string value; *special as norm_float. */
static dw_errcode normalize(const struct dw_odata_property *p, const char *v, char *out,
                            size_t size, char *special, struct dw_error *err)
{
    *special = 0;
    switch (p->kind) {
    case DW_ODATA_INT: return norm_int(p, v, out, size, err);
    case DW_ODATA_DECIMAL:
    case DW_ODATA_DOUBLE: return norm_float(p, v, out, size, special, err);
    case DW_ODATA_BOOLEAN: return norm_bool(p, v, out, size, err);
    case DW_ODATA_DATE: return norm_date(p, v, out, size, err);
    case DW_ODATA_DATETIMEOFFSET: return norm_datetimeoffset(p, v, out, size, err);
    case DW_ODATA_TIMEOFDAY: return norm_timeofday(p, v, out, size, err);
    case DW_ODATA_GUID: return norm_guid(p, v, out, size, err);
    case DW_ODATA_DURATION: return norm_duration(p, v, out, size, err);
    default: break;
    }
    return dw_error_set(err, DW_ERR_INTERNAL, "no normalizer for property \"%s\"", p->name);
}

static dw_errcode check_utf8(const struct dw_odata_property *p, const char *v,
                             struct dw_error *err)
{
    size_t at;
    dw_utf8_status st = dw_utf8_validate(v, strlen(v), &at);

    if (st != DW_UTF8_OK)
        return dw_error_set(err, DW_ERR_TARGET, "value of property \"%s\" is not valid UTF-8 "
                            "(%s at byte %zu)", p->name, dw_utf8_status_text(st), at);
    return DW_OK;
}

void dw_odata_put_pct(struct dw_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];

        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':') {
            dw_buf_putc(b, (char) c);
        } else {
            dw_buf_putc(b, '%');
            dw_buf_putc(b, hex[c >> 4]);
            dw_buf_putc(b, hex[c & 15]);
        }
    }
}

dw_errcode dw_odata_put_key_literal(struct dw_buf *b, const struct dw_odata_property *p,
                                    const char *value, struct dw_error *err)
{
    char text[MAX_SCALAR];
    char special;
    dw_errcode rc;

    if (!value)
        return dw_error_set(err, DW_ERR_TARGET, "key property \"%s\" is null", p->name);
    switch (p->kind) {
    case DW_ODATA_STRING:
        if ((rc = check_utf8(p, value, err)) != DW_OK)
            return rc;
        dw_buf_putc(b, '\'');
        for (const char *q = value; *q; q++) {
            if (*q == '\'')
                dw_buf_puts(b, "''");   /* a quote inside the literal is doubled */
            else
                dw_odata_put_pct(b, q, 1);
        }
        dw_buf_putc(b, '\'');
        return DW_OK;
    case DW_ODATA_BINARY:
        dw_buf_puts(b, "binary'");
        if ((rc = put_base64url(b, p, value, err)) != DW_OK)
            return rc;
        dw_buf_putc(b, '\'');
        return DW_OK;
    case DW_ODATA_DURATION:
        if ((rc = normalize(p, value, text, sizeof(text), &special, err)) != DW_OK)
            return rc;
        dw_buf_puts(b, "duration'");
        dw_odata_put_pct(b, text, strlen(text));
        dw_buf_putc(b, '\'');
        return DW_OK;
    case DW_ODATA_ENUM:
    case DW_ODATA_OTHER:
        return dw_error_set(err, DW_ERR_TARGET, "key property \"%s\" has type \"%s\", which the "
                            "odata connector cannot write in a URL", p->name, p->type);
    default:
        if ((rc = normalize(p, value, text, sizeof(text), &special, err)) != DW_OK)
            return rc;
        dw_odata_put_pct(b, text, strlen(text));
        return DW_OK;
    }
}

dw_errcode dw_odata_put_json_value(struct dw_buf *b, const struct dw_odata_property *p,
                                   const char *value, struct dw_error *err)
{
    char text[MAX_SCALAR];
    char special;
    dw_errcode rc;

    if (!value) {
        dw_buf_puts(b, "null");
        return DW_OK;
    }
    switch (p->kind) {
    case DW_ODATA_STRING:
    case DW_ODATA_ENUM:
        if ((rc = check_utf8(p, value, err)) != DW_OK)
            return rc;
        dw_wire_put_string(b, value, strlen(value));
        return DW_OK;
    case DW_ODATA_BINARY:
        dw_buf_putc(b, '"');
        if ((rc = put_base64url(b, p, value, err)) != DW_OK)
            return rc;
        dw_buf_putc(b, '"');
        return DW_OK;
    case DW_ODATA_OTHER:
        return dw_error_set(err, DW_ERR_TARGET, "property \"%s\" has type \"%s\", which the "
                            "odata connector cannot write", p->name, p->type);
    case DW_ODATA_INT:
    case DW_ODATA_DECIMAL:
    case DW_ODATA_DOUBLE:
    case DW_ODATA_BOOLEAN:
        if ((rc = normalize(p, value, text, sizeof(text), &special, err)) != DW_OK)
            return rc;
        if (special)
            dw_buf_printf(b, "\"%s\"", text);
        else
            dw_buf_puts(b, text);
        return DW_OK;
    default:
        if ((rc = normalize(p, value, text, sizeof(text), &special, err)) != DW_OK)
            return rc;
        dw_buf_printf(b, "\"%s\"", text);   /* dates, times, GUIDs: nothing to escape */
        return DW_OK;
    }
}
