/*
 * Fuzzing the loader and the engine with a fixed seed: thousands of map files,
 * generated from the format's grammar (mostly valid, with random faults) or
 * mutated from the examples and from generated files, are loaded in small
 * folders.  Nothing may crash or leak (run it under valgrind or ASan), every
 * error must be one line naming its file, and every set that loads is fed
 * random batches whose results must be consistent.
 *
 * DW_FUZZ_SEED and DW_FUZZ_ITERATIONS override the seed and the count.
 */
#include "tests/unit/maps/map_test_util.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static size_t iterations = 3000;
static const char *examples_dir;

static size_t ncorpus;
static char *corpus[64];
static size_t corpus_len[64];

static size_t nloaded, nrejected, nbatches, nops_total;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t below(size_t n)
{
    return n ? (size_t) (next() % n) : 0;
}

static bool chance(unsigned percent)
{
    return below(100) < percent;
}

#define PICK(arr) ((arr)[below(sizeof(arr) / sizeof((arr)[0]))])

/* ---- generating map files ---- */

static const char *const map_names[] = {"a", "b", "c", "orders", "customers", "lines"};
static const char *const tables[] = {"orders", "public.orders", "customers", "sales.lines", "a.b.c", "", "x\\ty"};
static const char *const columns[] = {"id", "line", "status", "name", "company", "qty", "total", "kind"};
static const char *const bad_columns[] = {
    "", "a\\nb", "a234567890123456789012345678901234567890123456789012345678901234"};
static const char *const connectors[] = {"t", "t", "t", "u"};
static const char *const texts[] = {"\"0\"", "\"1\"", "\"active\"", "null", "\"\"", "\"usmf\""};
static const char *const value_keys[] = {"active", "blocked", "0", "1", "", "usmf", "x"};
static const char *const junk[] = {"1", "true", "[]", "{}", "\"x\"", "null", "[\"a\"]", "{\"a\": 1}"};

static void put_junk_or(struct dw_buf *b, unsigned fault, const char *good)
{
    dw_buf_puts(b, chance(fault) ? PICK(junk) : good);
}

static void put_name(struct dw_buf *b, const char *s)
{
    dw_buf_printf(b, "\"%s\"", s);
}

static void gen_key(struct dw_buf *b, const char *const *cols, size_t n, unsigned fault)
{
    if (chance(fault)) {
        dw_buf_puts(b, PICK(junk));
        return;
    }
    dw_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            dw_buf_puts(b, ", ");
        put_name(b, chance(fault) ? PICK(bad_columns) : cols[i]);
    }
    dw_buf_putc(b, ']');
}

static void gen_field(struct dw_buf *b, const char *src, const char *tgt, bool key, unsigned fault)
{
    bool first = true;

#define SEP() do { if (!first) dw_buf_puts(b, ", "); first = false; } while (0)
    dw_buf_putc(b, '{');
    if (src && !chance(fault)) {
        SEP();
        dw_buf_puts(b, "\"source\": ");
        put_name(b, src);
    }
    if (!chance(fault)) {
        SEP();
        dw_buf_puts(b, "\"target\": ");
        put_name(b, tgt);
    }
    if (!src || chance(fault)) {
        SEP();
        dw_buf_printf(b, "\"const\": %s", PICK(texts));
    }
    if ((!key && chance(30)) || chance(fault)) {
        SEP();
        dw_buf_puts(b, "\"required\": ");
        put_junk_or(b, fault, chance(50) ? "true" : "false");
    }
    if ((!key && src && chance(40)) || chance(fault)) {
        size_t n = 1 + below(4), k0 = below(sizeof(value_keys) / sizeof(value_keys[0]));

        SEP();
        dw_buf_puts(b, "\"values\": {");
        for (size_t i = 0; i < n; i++) {
            /* distinct keys unless faults are wanted */
            const char *key = chance(fault) ? PICK(value_keys)
                                            : value_keys[(k0 + i) % (sizeof(value_keys) / sizeof(value_keys[0]))];

            dw_buf_printf(b, "%s\"%s\": %s", i ? ", " : "", key, PICK(texts));
        }
        dw_buf_putc(b, '}');
        if (chance(50) || chance(fault)) {
            dw_buf_puts(b, ", \"default\": ");
            put_junk_or(b, fault, PICK(texts));
        }
    }
    if (chance(fault)) {
        SEP();
        dw_buf_printf(b, "\"%s\": 1", chance(50) ? "sorce" : "target");
    }
    dw_buf_putc(b, '}');
#undef SEP
}

/*
 * A map: valid when fault is 0, with more faults as fault grows.  name NULL
 * picks one from a small pool (duplicates likely); ndeps names from deps may
 * go to depends_on (else random names: unknown maps and cycles likely).
 */
static void gen_map(struct dw_buf *b, unsigned fault, const char *name, const char *const *deps, size_t ndeps)
{
    size_t nkey = 1 + below(2), nextra = below(5);
    const char *skey[2] = {"id", "line"}, *tkey[2] = {"tid", "tline"};

    if (!name)
        name = PICK(map_names);
    dw_buf_puts(b, "{");
    if (!chance(fault)) {
        dw_buf_puts(b, "\"map\": ");
        put_junk_or(b, fault, "");
        put_name(b, name);
        dw_buf_puts(b, ", ");
    }
    dw_buf_printf(b, "\"source\": {\"table\": \"%s\", \"key\": ",
                  chance(fault) ? PICK(tables) : (chance(50) ? "orders" : "customers"));
    gen_key(b, skey, nkey, fault);
    dw_buf_printf(b, "}, \"target\": {\"connector\": \"%s\", \"table\": \"%s\", \"key\": ", PICK(connectors), name);
    gen_key(b, tkey, chance(fault) ? 3 - nkey : nkey, fault);
    dw_buf_puts(b, "}, \"fields\": [");
    for (size_t i = 0; i < nkey; i++) {
        if (i)
            dw_buf_puts(b, ", ");
        gen_field(b, skey[chance(fault) ? 1 - i : i], tkey[i], true, fault);
    }
    for (size_t i = 0; i < nextra; i++) {
        char tgt[32];

        snprintf(tgt, sizeof(tgt), "c%zu", chance(fault) ? 0 : i);
        dw_buf_puts(b, ", ");
        gen_field(b, chance(15) ? NULL : PICK(columns), tgt, false, fault);
    }
    dw_buf_puts(b, "]");
    if (chance(40)) {
        dw_buf_printf(b, ", \"filter\": {\"column\": \"%s\", \"in\": [", PICK(columns));
        for (size_t i = 0, n = chance(fault) ? 0 : 1 + below(3); i < n; i++)
            dw_buf_printf(b, "%s%s", i ? ", " : "", PICK(texts));
        dw_buf_puts(b, "]}");
    }
    if (chance(50)) {
        size_t n = below(3);

        dw_buf_puts(b, ", \"depends_on\": [");
        if (deps)
            n = ndeps ? below(ndeps + 1) : 0;
        for (size_t i = 0; i < n; i++)
            dw_buf_printf(b, "%s\"%s\"", i ? ", " : "", deps ? deps[i] : PICK(map_names));
        dw_buf_puts(b, "]");
    }
    if (chance(fault))
        dw_buf_printf(b, ", \"%s\": %s", chance(50) ? "map" : "extra", PICK(junk));
    dw_buf_puts(b, "}");
}

/* ---- mutating ---- */

static const char *const tokens[] = {"{", "}", "[", "]", ",", ":", "\"", "null", "true", "1e999", "\\u0000",
                                     "\"values\"", "\"const\"", "\"depends_on\"", "\"map\"", "\xff", "\xc3",
                                     "\"\\ud800\"", "\n", "\t", "\"key\": []", "-", "0", "\"a\": {"};

static void mutate(struct dw_buf *b)
{
    size_t rounds = 1 + below(4);

    for (size_t r = 0; r < rounds && b->len > 0; r++) {
        size_t pos = below(b->len), n;
        struct dw_buf t;

        dw_buf_init(&t);
        switch (below(6)) {
        case 0:     /* flip a byte */
            b->data[pos] = (char) (b->data[pos] ^ (1u << below(8)));
            break;
        case 1:     /* delete a range */
            n = 1 + below(16);
            if (pos + n > b->len)
                n = b->len - pos;
            memmove(b->data + pos, b->data + pos + n, b->len - pos - n + 1);
            b->len -= n;
            break;
        case 2:     /* insert a token */
        case 3:
            dw_buf_append(&t, b->data, pos);
            dw_buf_puts(&t, PICK(tokens));
            dw_buf_append(&t, b->data + pos, b->len - pos);
            dw_buf_reset(b);
            dw_buf_append(b, t.data, t.len);
            break;
        case 4:     /* duplicate a range */
            n = 1 + below(40);
            if (pos + n > b->len)
                n = b->len - pos;
            dw_buf_append(&t, b->data, pos + n);
            dw_buf_append(&t, b->data + pos, b->len - pos);
            dw_buf_reset(b);
            dw_buf_append(b, t.data, t.len);
            break;
        default:    /* truncate */
            b->len = pos;
            b->data[pos] = '\0';
            break;
        }
        dw_buf_cleanup(&t);
    }
}

/* ---- checks ---- */

/* Every error line starts with dir and has no control characters. */
static void check_errors(const char *errors, const char *dir)
{
    size_t dlen = strlen(dir);
    const char *p = errors;

    CU_ASSERT_FATAL(errors && *errors);
    while (*p) {
        const char *nl = strchr(p, '\n');

        CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
        CU_ASSERT(strncmp(p, dir, dlen) == 0);
        for (const char *c = p; c < nl; c++)
            CU_ASSERT((unsigned char) *c >= 0x20 && *c != 0x7f);
        p = nl + 1;
    }
}

static const char *const values_pool[] = {"1", "2", "0", "active", "usmf", "", "\"", "x\ny", "blocked", "x"};

static const char *random_value(bool noisy)
{
    return noisy && chance(4) ? NULL : PICK(values_pool);
}

static void random_batch(struct dw_mapset *set, struct dw_arena *arena)
{
    size_t n = 1 + below(20);
    struct dw_change *ch = dw_arena_zalloc(arena, n * sizeof(*ch));
    struct dw_batch batch = {.id = "1:2:3", .nchanges = n, .changes = ch};
    struct dw_oplist out;
    struct dw_error err;
    dw_errcode rc;
    bool noisy = chance(50);    /* else: no nulls, no missing columns, no unmapped tables */

    for (size_t i = 0; i < n; i++) {
        const struct dw_map *m = &set->maps[below(set->nmaps)];
        const char **cols = NULL;
        size_t ncols = dw_mapset_source_columns(set, m->source_table, &cols);

        ch[i].table = noisy && chance(3) ? "public.nope" : m->source_table;
        ch[i].op = (dw_change_op) below(3);
        for (int img = 0; img < 2; img++) {
            struct dw_row *r = img ? &ch[i].new_row : &ch[i].old_row;

            if ((img == 0 && ch[i].op == DW_CHANGE_INSERT) || (img == 1 && ch[i].op == DW_CHANGE_DELETE))
                continue;
            r->names = dw_arena_alloc(arena, (ncols + 1) * sizeof(char *));
            r->values = dw_arena_alloc(arena, (ncols + 1) * sizeof(char *));
            for (size_t c = 0; c < ncols; c++) {
                if (noisy && chance(2))
                    continue;   /* a column the capture did not send */
                r->names[r->ncols] = cols[c];
                r->values[r->ncols++] = random_value(noisy);
            }
            if (chance(20)) {
                r->names[r->ncols] = "unmapped";
                r->values[r->ncols++] = "v";
            }
        }
        free(cols);
    }
    dw_error_clear(&err);
    rc = dw_map_apply(set, &batch, arena, &out, &err);
    nbatches++;
    if (rc == DW_OK) {
        CU_ASSERT_EQUAL(out.fail_change, -1);
        CU_ASSERT_EQUAL(out.nops == 0, out.connector == NULL);
        for (size_t k = 0; k < out.nops; k++) {
            const struct dw_target_op *op = &out.ops[k];

            CU_ASSERT_STRING_EQUAL(op->connector, out.connector);
            CU_ASSERT(op->nkey > 0 && op->ncolumns >= op->nkey);
            CU_ASSERT(op->change < n);
            CU_ASSERT(k == 0 || out.ops[k - 1].change <= op->change);
            for (size_t c = 0; c < op->nkey; c++)
                CU_ASSERT_PTR_NOT_NULL(op->values[c]);
            CU_ASSERT(op->kind == DW_OP_UPSERT || op->ncolumns == op->nkey);
        }
        nops_total += out.nops;
    } else {
        CU_ASSERT(rc == DW_ERR_MAP);
        CU_ASSERT(err.message[0] != '\0' && !strchr(err.message, '\n') && !strchr(err.detail, '\n'));
        CU_ASSERT(out.fail_change >= 0 && (size_t) out.fail_change < n);
        CU_ASSERT_EQUAL(out.nops, 0);
        if (getenv("DW_FUZZ_VERBOSE"))
            printf("reject: %s\n", err.message);
    }
}

/* ---- the runs ---- */

static void load_corpus(void)
{
    DIR *d = examples_dir ? opendir(examples_dir) : NULL;
    struct dirent *de;

    while (d && (de = readdir(d)) && ncorpus < 64) {
        char path[4096];
        FILE *f;
        long len;

        if (!strstr(de->d_name, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", examples_dir, de->d_name);
        if (!(f = fopen(path, "rb")))
            continue;
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        rewind(f);
        corpus[ncorpus] = tu_malloc((size_t) len + 1);
        corpus_len[ncorpus] = fread(corpus[ncorpus], 1, (size_t) len, f);
        corpus[ncorpus][corpus_len[ncorpus]] = '\0';
        ncorpus++;
        fclose(f);
    }
    if (d)
        closedir(d);
}

static void test_fuzz(void)
{
    struct dw_arena arena;

    dw_arena_init(&arena, 65536);
    for (size_t it = 0; it < iterations; it++) {
        char *dir = tu_subdir();
        size_t nfiles = 1 + below(4);
        bool clean = chance(40);    /* a set meant to load: unique names, dependencies on earlier maps */
        static const char *const set_names[] = {"m0", "m1", "m2", "m3"};
        const char *paths[1] = {dir};
        struct dw_mapset *set = NULL;
        struct dw_error err;
        char *errors = NULL;
        dw_errcode rc;

        for (size_t f = 0; f < nfiles; f++) {
            struct dw_buf b;
            char name[32], *p;
            size_t kind = below(10);

            dw_buf_init(&b);
            if (clean)
                gen_map(&b, 0, set_names[f], set_names, f);
            else if (kind < 5)
                gen_map(&b, chance(50) ? 0 : (unsigned) (1 + below(15)), NULL, NULL, 0);
            else if (kind < 8 && ncorpus) {
                size_t c = below(ncorpus);

                dw_buf_append(&b, corpus[c], corpus_len[c]);
                if (chance(80))
                    mutate(&b);
            } else {
                gen_map(&b, 0, NULL, NULL, 0);
                mutate(&b);
            }
            snprintf(name, sizeof(name), "f%zu.json", f);
            p = tu_write_raw(dir, name, b.data ? b.data : "", b.len);
            free(p);
            dw_buf_cleanup(&b);
        }
        dw_error_clear(&err);
        rc = dw_mapset_load(paths, 1, &set, &errors, &err);
        if (rc == DW_OK) {
            CU_ASSERT_PTR_NULL(errors);
            CU_ASSERT_PTR_NOT_NULL_FATAL(set);
            nloaded++;
            for (int k = 0; k < 10; k++) {
                random_batch(set, &arena);
                dw_arena_reset(&arena);
            }
            dw_mapset_free(set);
        } else {
            CU_ASSERT_EQUAL(rc, DW_ERR_CONFIG);
            CU_ASSERT_PTR_NULL(set);
            check_errors(errors, dir);
            nrejected++;
        }
        free(errors);
        tu_rmtree(dir);
        free(dir);
    }
    dw_arena_cleanup(&arena);
    printf("\n  %zu iterations: %zu sets loaded, %zu rejected; %zu batches, %zu operations\n", iterations,
           nloaded, nrejected, nbatches, nops_total);
    /* the generator must reach both sides, or it tests little */
    CU_ASSERT(nloaded > iterations / 5);
    CU_ASSERT(nrejected > iterations / 5);
    CU_ASSERT(nops_total > nbatches);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"generated and mutated map files, random batches", test_fuzz},
    };
    const char *s;
    int rc;

    if ((s = getenv("DW_FUZZ_SEED")) && *s)
        rng = strtoull(s, NULL, 0) | 1;
    if ((s = getenv("DW_FUZZ_ITERATIONS")) && *s)
        iterations = strtoul(s, NULL, 0);
    examples_dir = argc > 1 ? argv[1] : NULL;
    load_corpus();
    rc = tu_run("map_fuzz", tests, sizeof(tests) / sizeof(tests[0]));
    for (size_t i = 0; i < ncorpus; i++)
        free(corpus[i]);
    return rc;
}
