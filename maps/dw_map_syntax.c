/*
 * A syntax-only pass over a map file before cJSON parses it, so that every
 * syntax error gets the exact line and column and a specific reason
 * ("expected \":\" after a key, found \"1\""), which cJSON does not give.  It
 * also rejects what cJSON would accept but a map file must not contain: NUL
 * bytes, invalid UTF-8, raw control characters in strings, "\u0000" (cJSON
 * would cut the string there), unpaired surrogates, numbers with leading
 * zeros, numbers longer than cJSON reads, and nesting deeper than any map
 * needs (which also bounds recursion).  So a cJSON failure afterwards means
 * it ran out of memory.
 *
 * It builds nothing; cJSON then parses a text already known to be valid.
 */
#include "maps/dw_map_int.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bridge/common/dw_utf8.h"

/* Maps nest four levels; anything deeper is not a map and must not eat the stack. */
#define MAX_DEPTH 64

struct scan {
    const char *s;
    size_t len;
    size_t pos;
    size_t err_pos;
    char *msg;
    size_t msgsize;
    bool failed;
};

static bool fail_at(struct scan *sc, size_t pos, const char *fmt, ...) DW_PRINTF(3, 4);
static bool fail_at(struct scan *sc, size_t pos, const char *fmt, ...)
{
    va_list ap;

    if (!sc->failed) {
        sc->failed = true;
        sc->err_pos = pos;
        va_start(ap, fmt);
        vsnprintf(sc->msg, sc->msgsize, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* What is at pos, for "found ...": a quoted character, or "end of file". */
static const char *found(struct scan *sc, char *buf, size_t size)
{
    char ch[8];
    uint32_t cp;
    size_t n = 1;

    if (sc->pos >= sc->len)
        return "end of file";
    if ((unsigned char) sc->s[sc->pos] >= 0x80 &&
        dw_utf8_decode(sc->s + sc->pos, sc->len - sc->pos, &cp, &n) != DW_UTF8_OK)
        n = 1;
    memcpy(ch, sc->s + sc->pos, n);
    ch[n] = '\0';
    dw_map_quote(buf, size, ch);
    return buf;
}

static bool expected(struct scan *sc, const char *what)
{
    char buf[32];

    return fail_at(sc, sc->pos, "invalid JSON: expected %s, found %s", what, found(sc, buf, sizeof(buf)));
}

static void skip_ws(struct scan *sc)
{
    while (sc->pos < sc->len) {
        char c = sc->s[sc->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        sc->pos++;
    }
}

static int hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static bool scan_string(struct scan *sc)
{
    size_t start = sc->pos++;

    while (sc->pos < sc->len) {
        unsigned char c = (unsigned char) sc->s[sc->pos];

        if (c == '"') {
            sc->pos++;
            return true;
        }
        if (c < 0x20) {
            char code[16];

            snprintf(code, sizeof(code), "U+%04X", c);
            return fail_at(sc, sc->pos, "invalid JSON: control character %s in a string (escape it)", code);
        }
        if (c == '\\') {
            size_t at = sc->pos;
            char e = sc->pos + 1 < sc->len ? sc->s[sc->pos + 1] : '\0';
            int u, lo;

            if (strchr("\"\\/bfnrt", e) && e) {
                sc->pos += 2;
                continue;
            }
            if (e != 'u')
                return fail_at(sc, at, "invalid JSON: invalid escape in a string");
            if (sc->pos + 6 > sc->len || (u = hex4(sc->s + sc->pos + 2)) < 0)
                return fail_at(sc, at, "invalid JSON: \"\\u\" needs four hexadecimal digits");
            if (u == 0)
                return fail_at(sc, at, "\"\\u0000\" is not allowed in a string");
            sc->pos += 6;
            if (u >= 0xDC00 && u <= 0xDFFF)
                return fail_at(sc, at, "invalid JSON: unpaired UTF-16 surrogate in \"\\u\" escape");
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (sc->pos + 6 > sc->len || sc->s[sc->pos] != '\\' || sc->s[sc->pos + 1] != 'u' ||
                    (lo = hex4(sc->s + sc->pos + 2)) < 0xDC00 || lo > 0xDFFF)
                    return fail_at(sc, at, "invalid JSON: unpaired UTF-16 surrogate in \"\\u\" escape");
                sc->pos += 6;
            }
            continue;
        }
        sc->pos++;      /* UTF-8 was validated for the whole text already */
    }
    return fail_at(sc, start, "invalid JSON: unterminated string");
}

static bool scan_number(struct scan *sc)
{
    size_t start = sc->pos;
    const char *s = sc->s;

#define DIGIT(i) ((i) < sc->len && s[i] >= '0' && s[i] <= '9')
    if (s[sc->pos] == '-')
        sc->pos++;
    if (!DIGIT(sc->pos))
        return fail_at(sc, start, "invalid JSON: invalid number");
    if (s[sc->pos] == '0' && DIGIT(sc->pos + 1))
        return fail_at(sc, start, "invalid JSON: number with a leading zero");
    while (DIGIT(sc->pos))
        sc->pos++;
    if (sc->pos < sc->len && s[sc->pos] == '.') {
        sc->pos++;
        if (!DIGIT(sc->pos))
            return fail_at(sc, start, "invalid JSON: invalid number");
        while (DIGIT(sc->pos))
            sc->pos++;
    }
    if (sc->pos < sc->len && (s[sc->pos] == 'e' || s[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < sc->len && (s[sc->pos] == '+' || s[sc->pos] == '-'))
            sc->pos++;
        if (!DIGIT(sc->pos))
            return fail_at(sc, start, "invalid JSON: invalid number");
        while (DIGIT(sc->pos))
            sc->pos++;
    }
#undef DIGIT
    /* cJSON reads at most 63 characters of a number; no map needs a number at all */
    if (sc->pos - start > 63)
        return fail_at(sc, start, "invalid JSON: number longer than 63 characters");
    return true;
}

static bool scan_value(struct scan *sc, unsigned depth);

static bool scan_container(struct scan *sc, unsigned depth, bool object)
{
    char close = object ? '}' : ']';

    if (depth >= MAX_DEPTH)
        return fail_at(sc, sc->pos, "invalid JSON: nesting deeper than %d levels", MAX_DEPTH);
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == close) {
        sc->pos++;
        return true;
    }
    for (;;) {
        if (object) {
            if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
                return expected(sc, "a string (a key)");
            if (!scan_string(sc))
                return false;
            skip_ws(sc);
            if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
                return expected(sc, "\":\" after a key");
            sc->pos++;
            skip_ws(sc);
        }
        if (!scan_value(sc, depth + 1))
            return false;
        skip_ws(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
            sc->pos++;
            skip_ws(sc);
            continue;
        }
        if (sc->pos < sc->len && sc->s[sc->pos] == close) {
            sc->pos++;
            return true;
        }
        return expected(sc, object ? "\",\" or \"}\"" : "\",\" or \"]\"");
    }
}

static bool scan_literal(struct scan *sc, const char *word)
{
    size_t n = strlen(word);

    if (sc->len - sc->pos >= n && memcmp(sc->s + sc->pos, word, n) == 0) {
        sc->pos += n;
        return true;
    }
    return expected(sc, "a value");
}

static bool scan_value(struct scan *sc, unsigned depth)
{
    if (sc->pos >= sc->len)
        return expected(sc, "a value");
    switch (sc->s[sc->pos]) {
    case '{':
        return scan_container(sc, depth, true);
    case '[':
        return scan_container(sc, depth, false);
    case '"':
        return scan_string(sc);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        if (sc->s[sc->pos] == '-' || (sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9'))
            return scan_number(sc);
        return expected(sc, "a value");
    }
}

bool dw_map_syntax_check(const char *data, size_t len, size_t *err_pos, char *msg, size_t msgsize)
{
    struct scan sc = {.s = data, .len = len, .msg = msg, .msgsize = msgsize};

    /* bytes first: NUL and UTF-8 anywhere */
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char) data[i];
        dw_utf8_status st;
        uint32_t cp;
        size_t n;

        if (c == 0) {
            fail_at(&sc, i, "file contains a NUL byte");
            break;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        st = dw_utf8_decode(data + i, len - i, &cp, &n);
        if (st != DW_UTF8_OK) {
            fail_at(&sc, i, "invalid UTF-8: %s", dw_utf8_status_text(st));
            break;
        }
        i += n;
    }
    if (!sc.failed) {
        skip_ws(&sc);
        if (sc.pos == sc.len)
            fail_at(&sc, sc.pos, "file is empty");
        else if (scan_value(&sc, 0)) {
            skip_ws(&sc);
            if (sc.pos < sc.len)
                fail_at(&sc, sc.pos, "invalid JSON: unexpected text after the end of the map");
        }
    }
    *err_pos = sc.err_pos;
    return !sc.failed;
}
