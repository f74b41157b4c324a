/*
 * Unit tests of the id index (bridge/service/dw_idindex.c): every answer is
 * checked against a linear search of the same array, through growth, bulk
 * drops with rebuilds and a moved array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/service/dw_idindex.h"
#include "tests/unit/common/dw_cunit.h"

struct rec {
    char id[48];
    int value;
};

static const char *rec_key(const void *arg, size_t pos)
{
    return ((const struct rec *) arg)[pos].id;
}

static long linear_find(const struct rec *a, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].id, id) == 0)
            return (long) i;
    }
    return -1;
}

static void test_empty(void)
{
    struct dw_idindex ix;

    dw_idindex_init(&ix, rec_key, NULL);
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "x"), -1);
    CU_ASSERT_TRUE(dw_idindex_rebuild(&ix, 0));
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, ""), -1);
    dw_idindex_cleanup(&ix);
    dw_idindex_cleanup(&ix);   /* twice is harmless */
}

/* ids that share long prefixes, like batch ids of one source: "system:db:xid" */
static void make_id(char *buf, size_t size, unsigned k)
{
    snprintf(buf, size, "7713835087890145831:5:%u", k);
}

static void test_against_linear_search(void)
{
    enum { N = 5000 };
    struct rec *a = NULL;
    size_t n = 0, cap = 0;
    struct dw_idindex ix;
    char id[48];

    dw_idindex_init(&ix, rec_key, NULL);
    for (unsigned k = 0; k < N; k++) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            a = realloc(a, cap * sizeof(*a));
            CU_ASSERT_PTR_NOT_NULL_FATAL(a);
            dw_idindex_rebind(&ix, a);
        }
        make_id(a[n].id, sizeof(a[n].id), k);
        a[n].value = (int) k;
        CU_ASSERT_TRUE_FATAL(dw_idindex_add(&ix, a[n].id, n));
        n++;
        /* every 97 insertions: drop every element whose value is a multiple of 3 */
        if (k % 97 == 96) {
            size_t kept = 0;

            for (size_t i = 0; i < n; i++) {
                if (a[i].value % 3 == 0)
                    continue;
                a[kept++] = a[i];
            }
            n = kept;
            CU_ASSERT_TRUE_FATAL(dw_idindex_rebuild(&ix, n));
        }
    }
    for (unsigned k = 0; k < N + 100; k++) {
        long got, want;

        make_id(id, sizeof(id), k);
        got = dw_idindex_find(&ix, id);
        want = linear_find(a, n, id);
        CU_ASSERT_EQUAL(got, want);
        if (got >= 0)
            CU_ASSERT_EQUAL(a[got].value, (int) k);
    }
    /* a prefix or an extension of an id is another id */
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "7713835087890145831:5:"), -1);
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "7713835087890145831:5:10"), linear_find(a, n, "7713835087890145831:5:10"));
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "7713835087890145831:5:100000"), -1);
    dw_idindex_cleanup(&ix);
    free(a);
}

static void test_rebuild_to_nothing(void)
{
    struct rec a[3] = {{"a", 1}, {"b", 2}, {"c", 3}};
    struct dw_idindex ix;

    dw_idindex_init(&ix, rec_key, a);
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_TRUE(dw_idindex_add(&ix, a[i].id, i));
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "c"), 2);
    CU_ASSERT_TRUE(dw_idindex_rebuild(&ix, 1));
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "a"), 0);
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "b"), -1);
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "c"), -1);
    CU_ASSERT_TRUE(dw_idindex_rebuild(&ix, 0));
    CU_ASSERT_EQUAL(dw_idindex_find(&ix, "a"), -1);
    dw_idindex_cleanup(&ix);
}

static const struct dw_cunit_test tests[] = {
    {"empty index", test_empty},
    {"agrees with a linear search through growth, drops and a moved array", test_against_linear_search},
    {"rebuild to fewer and to none", test_rebuild_to_nothing},
};

DW_CUNIT_MAIN("idindex", tests)
