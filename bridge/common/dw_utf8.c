/*
 * UTF-8 per RFC 3629.  The lead byte decides the sequence length and the range
 * allowed for the second byte; that range is where overlong forms, surrogates
 * and values above U+10FFFF are told apart, so each gets a precise status.
 */
#include "bridge/common/dw_utf8.h"

static inline int is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

dw_utf8_status dw_utf8_decode(const char *s, size_t len, uint32_t *cp, size_t *seqlen)
{
    const unsigned char *u = (const unsigned char *) s;
    unsigned char c = u[0];
    unsigned char lo = 0x80, hi = 0xBF;   /* allowed range of the second byte */
    dw_utf8_status below = DW_UTF8_OK, above = DW_UTF8_OK;
    size_t n;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        *seqlen = 1;
        return DW_UTF8_OK;
    }
    if (c < 0xC0 || c >= 0xF8)
        return DW_UTF8_INVALID_BYTE;
    if (c < 0xC2)
        return DW_UTF8_OVERLONG;       /* C0, C1 only ever encode ASCII */
    if (c >= 0xF5)
        return DW_UTF8_TOO_LARGE;      /* F5..F7 start values above U+13FFFF */
    if (c < 0xE0) {
        n = 2;
        v = c & 0x1F;
    } else if (c < 0xF0) {
        n = 3;
        v = c & 0x0F;
        if (c == 0xE0) {
            lo = 0xA0;
            below = DW_UTF8_OVERLONG;
        } else if (c == 0xED) {
            hi = 0x9F;
            above = DW_UTF8_SURROGATE;
        }
    } else {
        n = 4;
        v = c & 0x07;
        if (c == 0xF0) {
            lo = 0x90;
            below = DW_UTF8_OVERLONG;
        } else if (c == 0xF4) {
            hi = 0x8F;
            above = DW_UTF8_TOO_LARGE;
        }
    }
    if (len < 2 || !is_cont(u[1]))
        return DW_UTF8_TRUNCATED;
    if (u[1] < lo)
        return below;
    if (u[1] > hi)
        return above;
    for (size_t i = 1; i < n; i++) {
        if (i >= len || !is_cont(u[i]))
            return DW_UTF8_TRUNCATED;
        v = (v << 6) | (u[i] & 0x3F);
    }
    *cp = v;
    *seqlen = n;
    return DW_UTF8_OK;
}

dw_utf8_status dw_utf8_validate(const char *s, size_t len, size_t *bad_offset)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;
        dw_utf8_status st;

        if ((unsigned char) s[i] < 0x80) {
            i++;
            continue;
        }
        st = dw_utf8_decode(s + i, len - i, &cp, &n);
        if (st != DW_UTF8_OK) {
            if (bad_offset)
                *bad_offset = i;
            return st;
        }
        i += n;
    }
    return DW_UTF8_OK;
}

size_t dw_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xC0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char) (0xE0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char) (0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        out[0] = (char) (0xF0 | (cp >> 18));
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char) (0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

const char *dw_utf8_status_text(dw_utf8_status st)
{
    switch (st) {
    case DW_UTF8_OK: return "valid";
    case DW_UTF8_INVALID_BYTE: return "invalid byte";
    case DW_UTF8_TRUNCATED: return "truncated sequence";
    case DW_UTF8_OVERLONG: return "overlong encoding";
    case DW_UTF8_SURROGATE: return "surrogate code point";
    case DW_UTF8_TOO_LARGE: return "code point above U+10FFFF";
    }
    return "unknown";
}

size_t dw_utf8_boundary(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *) s;
    size_t lead = len, need;

    /* step back over at most three continuation bytes to the last lead */
    while (lead > 0 && len - lead < 4 && is_cont(u[lead - 1]))
        lead--;
    if (lead == 0)
        return len;   /* no lead byte at all: nothing to cut sensibly */
    lead--;
    if (u[lead] < 0x80)
        return len;
    need = u[lead] >= 0xF0 ? 4 : u[lead] >= 0xE0 ? 3 : u[lead] >= 0xC0 ? 2 : 1;
    return len - lead >= need ? len : lead;
}
