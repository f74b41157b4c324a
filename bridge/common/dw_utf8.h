/*
 * UTF-8 validation, decoding and encoding (RFC 3629), shared by the JSON
 * parser, the wire encoder and the error record.
 *
 * Only the shortest encoding of a Unicode scalar value is valid: overlong
 * forms, UTF-16 surrogates (U+D800..U+DFFF) written as UTF-8, code points above
 * U+10FFFF and sequences cut short are all rejected, each with its own status
 * so that messages can say which rule the input broke.
 */
#ifndef DW_UTF8_H
#define DW_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef enum dw_utf8_status {
    DW_UTF8_OK = 0,
    DW_UTF8_INVALID_BYTE,   /* cannot start a sequence: stray continuation, 0xF8..0xFF */
    DW_UTF8_TRUNCATED,      /* a sequence ends before its last continuation byte */
    DW_UTF8_OVERLONG,       /* a longer form than the code point needs */
    DW_UTF8_SURROGATE,      /* U+D800..U+DFFF encoded directly */
    DW_UTF8_TOO_LARGE       /* above U+10FFFF */
} dw_utf8_status;

/*
 * Decode the sequence that starts at s[0] (len > 0 bytes available).  On
 * DW_UTF8_OK sets *cp and *seqlen (1..4); otherwise leaves them alone.
 */
dw_utf8_status dw_utf8_decode(const char *s, size_t len, uint32_t *cp, size_t *seqlen);

/*
 * Validate s[0..len).  On failure *bad_offset (may be NULL) is the offset of
 * the first byte of the offending sequence.
 */
dw_utf8_status dw_utf8_validate(const char *s, size_t len, size_t *bad_offset);

/*
 * Write the UTF-8 form of the scalar value cp (not a surrogate, at most
 * U+10FFFF) to out; returns its length (1..4), or 0 when cp is not a scalar.
 */
size_t dw_utf8_encode(uint32_t cp, char out[4]);

/* Lowercase phrase for a status ("overlong encoding", ...). */
const char *dw_utf8_status_text(dw_utf8_status st);

/*
 * Length of the longest prefix of s[0..len) that does not end inside a
 * sequence: used to cut text at a character boundary.
 */
size_t dw_utf8_boundary(const char *s, size_t len);

#endif
