/*
 * The suites of the guarantee tests, one table per file, run by
 * test_guarantees.c against one set of clusters and one service.
 */
#ifndef TEST_GUARANTEES_H
#define TEST_GUARANTEES_H

#include <stddef.h>

#include "tests/unit/common/dw_cunit.h"

/* test_guarantees_crash.c: crashes of each process at its fault point (a-e). */
extern const struct dw_cunit_test gt_crash_tests[];
extern const size_t gt_crash_ntests;

/* test_guarantees_load.c: reload, concurrency, SIGTERM under load (f-h). */
extern const struct dw_cunit_test gt_load_tests[];
extern const size_t gt_load_ntests;

#endif
