/*
 * Test support shared by test_wire and test_wire_fuzz: a seeded random
 * generator of batches and verdicts whose strings mix the characters the
 * encoder must escape (quotes, backslashes, every control character) with
 * multibyte UTF-8 of every length, and deep comparisons that say what differs.
 */
#ifndef DW_TEST_WIRE_GEN_H
#define DW_TEST_WIRE_GEN_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_wire.h"

/* xorshift64*: small, fast, and the same sequence on every platform. */
struct rng {
    uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

/* Uniform enough in [0, n) for tests; n > 0. */
static inline size_t rng_below(struct rng *r, size_t n)
{
    return (size_t) (rng_next(r) % n);
}

static inline bool rng_chance(struct rng *r, unsigned percent)
{
    return rng_below(r, 100) < percent;
}

/* Pieces that strings are built from; each is valid UTF-8. */
static const char *const gen_pieces[] = {
    "a", "Z", "0", "id", " ", "\"", "\\", "/", "~", "\\u", "'", "{", "}", "[", "]", ",", ":",
    "null", "true", "\x7F",
    "\xC2\x80", "\xC3\xA9", "\xC3\x9F", "\xDF\xBF",                      /* 2-byte */
    "\xE0\xA0\x80", "\xE2\x82\xAC", "\xE4\xB8\xAD", "\xE2\x80\xA8", "\xEF\xBF\xBF",
    "\xED\x9F\xBF", "\xEE\x80\x80",                                      /* 3-byte */
    "\xF0\x90\x80\x80", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",          /* 4-byte */
};
#define GEN_NPIECES (sizeof(gen_pieces) / sizeof(gen_pieces[0]))

/* A random string in the arena; nonempty when asked (names). */
static inline char *gen_string(struct rng *r, struct dw_arena *a, bool nonempty, size_t max_pieces)
{
    char buf[512];
    size_t n = 0, pieces = rng_below(r, max_pieces + 1);

    if (nonempty && pieces == 0)
        pieces = 1;
    for (size_t i = 0; i < pieces; i++) {
        if (rng_chance(r, 12)) {
            buf[n++] = (char) (1 + rng_below(r, 31));   /* a control character */
        } else {
            const char *p = gen_pieces[rng_below(r, GEN_NPIECES)];
            size_t len = strlen(p);

            if (n + len >= sizeof(buf))
                break;
            memcpy(buf + n, p, len);
            n += len;
        }
        if (n + 8 >= sizeof(buf))
            break;
    }
    if (nonempty && n == 0)
        buf[n++] = 'x';
    return dw_arena_strndup(a, buf, n);
}

static inline void gen_row(struct rng *r, struct dw_arena *a, size_t max_cols, struct dw_row *row)
{
    size_t n = rng_below(r, max_cols + 1);

    row->ncols = n;
    row->names = dw_arena_alloc(a, (n ? n : 1) * sizeof(*row->names));
    row->values = dw_arena_alloc(a, (n ? n : 1) * sizeof(*row->values));
    for (size_t i = 0; i < n; i++) {
        /* names must be unique in a row: add the position when taken */
        char *name = gen_string(r, a, true, 4);

        for (size_t j = 0; j < i; j++) {
            if (strcmp(row->names[j], name) == 0) {
                char tmp[600];

                snprintf(tmp, sizeof(tmp), "%s#%zu", name, i);
                name = dw_arena_strdup(a, tmp);
                break;
            }
        }
        row->names[i] = name;
        row->values[i] = rng_chance(r, 15) ? NULL : gen_string(r, a, false, 12);
    }
}

static inline struct dw_batch *gen_batch(struct rng *r, struct dw_arena *a, size_t max_changes,
                                         size_t max_cols)
{
    struct dw_batch *b = dw_arena_zalloc(a, sizeof(*b));
    size_t n = rng_below(r, max_changes + 1);

    b->id = gen_string(r, a, true, 6);
    b->source_system = gen_string(r, a, true, 3);
    b->source_database = gen_string(r, a, true, 3);
    b->source_xid = gen_string(r, a, true, 3);
    b->origin = rng_chance(r, 70) ? NULL : gen_string(r, a, false, 3);
    b->deadline_ms = rng_chance(r, 20) ? -1 : (int64_t) (rng_next(r) >> 1 >> rng_below(r, 64));
    b->nchanges = n;
    b->changes = dw_arena_zalloc(a, (n ? n : 1) * sizeof(*b->changes));
    for (size_t i = 0; i < n; i++) {
        struct dw_change *c = &b->changes[i];

        c->table = gen_string(r, a, true, 4);
        c->op = (dw_change_op) rng_below(r, 3);
        if (c->op != DW_CHANGE_INSERT)
            gen_row(r, a, max_cols, &c->old_row);
        if (c->op != DW_CHANGE_DELETE)
            gen_row(r, a, max_cols, &c->new_row);
    }
    return b;
}

static inline void gen_verdict(struct rng *r, struct dw_arena *a, struct dw_verdict *v)
{
    dw_verdict_init(v, rng_chance(r, 90) ? gen_string(r, a, true, 4) : NULL,
                    (dw_verdict_status) rng_below(r, 5));
    if (rng_chance(r, 50))
        v->stage = gen_string(r, a, false, 3);
    if (rng_chance(r, 50))
        v->map = gen_string(r, a, false, 3);
    if (rng_chance(r, 50))
        v->change = (long) rng_below(r, 100000);
    if (rng_chance(r, 50))
        v->message = gen_string(r, a, false, 20);
    if (rng_chance(r, 30))
        v->detail = gen_string(r, a, false, 20);
    if (rng_chance(r, 30))
        v->hint = gen_string(r, a, false, 20);
    if (rng_chance(r, 30))
        v->target_sqlstate = rng_chance(r, 50) ? "23505" : "HY000";
    if (rng_chance(r, 50))
        v->elapsed_ms = (int64_t) (rng_next(r) >> rng_below(r, 64) >> 1);
    if (rng_chance(r, 30))
        v->retry_after_s = (int64_t) rng_below(r, 3600);
}

/* ---- comparison ---- */

static inline bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static inline bool rows_equal(const struct dw_row *x, const struct dw_row *y, const char *what,
                              size_t change, char *why, size_t size)
{
    if (x->ncols != y->ncols) {
        snprintf(why, size, "/changes/%zu/%s: %zu columns vs %zu", change, what, x->ncols,
                 y->ncols);
        return false;
    }
    for (size_t i = 0; i < x->ncols; i++) {
        if (!same_str(x->names[i], y->names[i]) || !same_str(x->values[i], y->values[i])) {
            snprintf(why, size, "/changes/%zu/%s: column %zu differs", change, what, i);
            return false;
        }
    }
    return true;
}

/* True when x and y carry the same batch; otherwise why says where they differ. */
static inline bool batches_equal(const struct dw_batch *x, const struct dw_batch *y, char *why,
                                 size_t size)
{
    if (!same_str(x->id, y->id) || !same_str(x->source_system, y->source_system) ||
        !same_str(x->source_database, y->source_database) ||
        !same_str(x->source_xid, y->source_xid) || !same_str(x->origin, y->origin)) {
        snprintf(why, size, "id, source or origin differs");
        return false;
    }
    /* every negative deadline means "none" and comes back as -1 */
    if ((x->deadline_ms < 0 ? -1 : x->deadline_ms) != (y->deadline_ms < 0 ? -1 : y->deadline_ms)) {
        snprintf(why, size, "deadline_ms %" PRId64 " vs %" PRId64, x->deadline_ms, y->deadline_ms);
        return false;
    }
    if (x->nchanges != y->nchanges) {
        snprintf(why, size, "%zu changes vs %zu", x->nchanges, y->nchanges);
        return false;
    }
    for (size_t i = 0; i < x->nchanges; i++) {
        const struct dw_change *a = &x->changes[i], *b = &y->changes[i];

        if (!same_str(a->table, b->table) || a->op != b->op) {
            snprintf(why, size, "/changes/%zu: table or op differs", i);
            return false;
        }
        if ((a->op != DW_CHANGE_INSERT && !rows_equal(&a->old_row, &b->old_row, "old", i, why, size)) ||
            (a->op != DW_CHANGE_DELETE && !rows_equal(&a->new_row, &b->new_row, "new", i, why, size)))
            return false;
    }
    return true;
}

static inline bool verdicts_equal(const struct dw_verdict *x, const struct dw_verdict *y)
{
    return same_str(x->id, y->id) && x->status == y->status && same_str(x->stage, y->stage) &&
           same_str(x->map, y->map) && (x->change < 0 ? -1 : x->change) == y->change &&
           same_str(x->message, y->message) && same_str(x->detail, y->detail) &&
           same_str(x->hint, y->hint) && same_str(x->target_sqlstate, y->target_sqlstate) &&
           (x->elapsed_ms < 0 ? -1 : x->elapsed_ms) == y->elapsed_ms &&
           (x->retry_after_s < 0 ? -1 : x->retry_after_s) == y->retry_after_s;
}

#endif
