/*
 * The end-to-end guarantee tests of DESIGN.md section 1 (G1-G7) and the
 * failure matrix of section 2, against the whole product: a source cluster
 * with the dualwrite extension, the real dualwrited, a two-phase target
 * cluster, the example maps (guarantees_harness.h).  This file only sets the
 * product up once and runs the two suites: crashes at fault points
 * (test_guarantees_crash.c) and signals and load (test_guarantees_load.c).
 * Built only with -Dfault_injection=true (the default): the crash tests need
 * the fault points.  DW_GT_SUITE=crash or DW_GT_SUITE=load runs one suite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "tests/integration/guarantees_harness.h"
#include "tests/integration/test_guarantees.h"

static bool add_suite(const char *name, const struct dw_cunit_test *tests, size_t n)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);

    if (!s)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return false;
    }
    return true;
}

static bool wanted(const char *suite)
{
    const char *only = getenv("DW_GT_SUITE");

    return !only || !only[0] || strcmp(only, suite) == 0;
}

int main(void)
{
    unsigned failures;

    dw_fixture_require();
    if (!gh_setup()) {
        fprintf(stderr, "could not set up the source, the target and the service\n");
        gh_teardown();
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    if ((wanted("crash") && !add_suite("guarantees across crashes", gt_crash_tests, gt_crash_ntests)) ||
        (wanted("load") && !add_suite("guarantees under signals and load", gt_load_tests, gt_load_ntests))) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        gh_teardown();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    gh_teardown();
    return failures != 0;
}
