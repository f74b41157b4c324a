/*
 * The few lines every CUnit executable of tests/unit/common shares: register
 * one suite from a table, run it verbosely, and turn failures into the exit
 * status (CUnit's basic runner always exits 0 otherwise, so meson would
 * report a failing test as passed).
 */
#ifndef DW_CUNIT_H
#define DW_CUNIT_H

#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

struct dw_cunit_test {
    const char *name;
    CU_TestFunc fn;
};

/* Fail the current test, showing both strings, unless needle is in haystack. */
#define DW_ASSERT_CONTAINS(haystack, needle)                                              \
    do {                                                                                   \
        const char *h_ = (haystack), *n_ = (needle);                                       \
        int found_ = h_ && strstr(h_, n_) != NULL;                                         \
        if (!found_)                                                                       \
            fprintf(stderr, "\n    expected \"%s\"\n    in       \"%s\"\n", n_,           \
                    h_ ? h_ : "(null)");                                                   \
        CU_ASSERT(found_);                                                                 \
    } while (0)

#define DW_ASSERT_STREQ(actual, expected)                                                 \
    do {                                                                                   \
        const char *a_ = (actual), *e_ = (expected);                                       \
        int same_ = a_ && e_ && strcmp(a_, e_) == 0;                                       \
        if (!same_)                                                                        \
            fprintf(stderr, "\n    expected \"%s\"\n    got      \"%s\"\n",                \
                    e_ ? e_ : "(null)", a_ ? a_ : "(null)");                               \
        CU_ASSERT(same_);                                                                  \
    } while (0)

static inline int dw_cunit_run(const char *suite_name, const struct dw_cunit_test *tests,
                               size_t ntests)
{
    CU_pSuite suite;
    unsigned failures;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite)
        goto fail;
    for (size_t i = 0; i < ntests; i++)
        if (!CU_add_test(suite, tests[i].name, tests[i].fn))
            goto fail;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (CU_basic_run_tests() != CUE_SUCCESS)
        goto fail;
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
               CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failures != 0;

fail:
    fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return 1;
}

#define DW_CUNIT_MAIN(suite_name, table) \
    int main(void) { return dw_cunit_run((suite_name), (table), sizeof(table) / sizeof((table)[0])); }

#endif
