/*
 * The ODBC connector's value rewriting.  Values arrive in PostgreSQL's text
 * output; targets other than PostgreSQL do not read all of it:
 *
 *   booleans "t"/"f" (and true/false, yes/no, on/off) become 1/0 for columns
 *   that SQLColumns reports as integer, bit or boolean (MariaDB's BOOLEAN is
 *   TINYINT(1) and refuses 't'; SQLite would store the letter);
 *
 *   timestamps with a zone offset ("2024-03-01 10:00:00.5+01", "...Z") become
 *   UTC without one ("2024-03-01 09:00:00.5") for timestamp columns without a
 *   zone: MariaDB refuses the offset, SQLite's date functions do not read
 *   "+01", and the MariaDB session runs with time_zone '+00:00' so that its
 *   TIMESTAMP columns take the value as UTC.  An ISO "T" becomes a space.
 *
 * Anything else (dates, " BC", "infinity", numbers, text) passes unchanged and
 * the target decides.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "connectors/odbc/dw_odbc_int.h"

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    {
        const int64_t era = (y >= 0 ? y : y - 399) / 400;
        const unsigned yoe = (unsigned) (y - era * 400);
        const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

        return era * 146097 + (int64_t) doe - 719468;
    }
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    {
        const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        const unsigned doe = (unsigned) (z - era * 146097);
        const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        const unsigned mp = (5 * doy + 2) / 153;

        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t) yoe + era * 400 + (*m <= 2);
    }
}

/* n digits at *p into *out; false when they are not there. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char) (*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static const char *normalize_timestamp(const char *v, char *out, size_t size)
{
    const char *p = v, *frac = NULL;
    int Y, M, D, h, m, sec = 0, oh = 0, om = 0, os = 0, sign = 0;
    size_t fraclen = 0;
    char sep;

    if (!digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) || *p++ != '-' ||
        !digits(&p, 2, &D))
        return v;
    sep = *p;
    if (sep != ' ' && sep != 'T')
        return v;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &m))
        return v;
    if (*p == ':') {
        p++;
        if (!digits(&p, 2, &sec))
            return v;
        if (*p == '.') {
            frac = p;
            for (fraclen = 1; isdigit((unsigned char) p[fraclen]); fraclen++)
                ;
            p += fraclen;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        sign = 1;
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (!digits(&p, 2, &oh))
            return v;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char) *p)) {
            if (!digits(&p, 2, &om))
                return v;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char) *p) && !digits(&p, 2, &os))
                return v;
        }
    }
    if (*p != '\0' || M < 1 || M > 12 || D < 1 || D > 31 || h > 24 || m > 59 || sec > 60 ||
        fraclen > 16)
        return v;    /* " BC", "infinity" and the like: the target decides */
    if (sign == 0) {
        if (sep == ' ')
            return v;
        snprintf(out, size, "%.10s %s", v, v + 11);
        return out;
    }
    {
        int64_t t = days_from_civil(Y, (unsigned) M, (unsigned) D) * 86400 + h * 3600 + m * 60 +
                    sec - sign * (oh * 3600 + om * 60 + os);
        int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
        int64_t rem = t - days * 86400, y;
        unsigned mo, d;

        civil_from_days(days, &y, &mo, &d);
        if (y < 1 || y > 9999)
            return v;
        snprintf(out, size, "%04d-%02u-%02u %02d:%02d:%02d%.*s", (int) y, mo, d,
                 (int) (rem / 3600), (int) (rem / 60 % 60), (int) (rem % 60), (int) fraclen,
                 frac ? frac : "");
        return out;
    }
}

const char *dw_odbc_normalize(odbc_norm norm, const char *value, char *out, size_t size)
{
    static const char *const yes[] = {"t", "true", "y", "yes", "on"};
    static const char *const no[] = {"f", "false", "n", "no", "off"};

    if (!value)
        return NULL;
    switch (norm) {
    case ODBC_NORM_NONE:
        return value;
    case ODBC_NORM_BOOL:
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (strcasecmp(value, yes[i]) == 0)
                return "1";
            if (strcasecmp(value, no[i]) == 0)
                return "0";
        }
        return value;
    case ODBC_NORM_TIMESTAMP:
        return normalize_timestamp(value, out, size);
    }
    return value;
}

odbc_norm dw_odbc_column_norm(const struct odbc_column *c)
{
    switch (c->type) {
    case SQL_BIT:
    case SQL_TINYINT:
    case SQL_SMALLINT:
    case SQL_INTEGER:
    case SQL_BIGINT:
        return ODBC_NORM_BOOL;
    case SQL_TYPE_TIMESTAMP:
    case SQL_TIMESTAMP:
        if (strstr(c->type_name, "zone") || strstr(c->type_name, "tz") ||
            strstr(c->type_name, "offset"))
            return ODBC_NORM_NONE;
        return ODBC_NORM_TIMESTAMP;
    default:
        return strstr(c->type_name, "bool") ? ODBC_NORM_BOOL : ODBC_NORM_NONE;
    }
}

