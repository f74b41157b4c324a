/*
 * Helpers shared by the unit tests of maps/: a temporary directory made with
 * mkdtemp and removed at the end, writing map files into it (with ' standing
 * for " so that JSON stays readable in C), loading, and the CUnit runner
 * that turns failures into a non-zero exit code.
 */
#ifndef MAP_TEST_UTIL_H
#define MAP_TEST_UTIL_H

#include <CUnit/CUnit.h>
#include <stdbool.h>

#include "maps/dw_map.h"

struct tu_test {
    const char *name;
    CU_TestFunc fn;
};

/* Run the tests as one CUnit suite; returns the exit code (0 only if all passed). */
int tu_run(const char *suite, const struct tu_test *tests, size_t ntests);

/* The test's temporary directory (made on first use, removed by tu_run). */
const char *tu_dir(void);

/* A fresh empty subdirectory of tu_dir(); caller frees the path. */
char *tu_subdir(void);

/*
 * Write text to dir/name, turning every ' into " first unless raw.  Returns
 * the path (caller frees).
 */
char *tu_write(const char *dir, const char *name, const char *text);
char *tu_write_raw(const char *dir, const char *name, const char *data, size_t len);

/* malloc / strdup that end the test run when memory is out. */
void *tu_malloc(size_t n);
char *tu_strdup(const char *s);

/* Remove a directory tree (ignores errors). */
void tu_rmtree(const char *path);

/*
 * Load one map document as dir/m.json in a fresh subdirectory.  Returns the
 * errors text (caller frees) or NULL when it loaded; *set (if not NULL) gets
 * the set on success.  *file gets the path of the file (caller frees).
 */
char *tu_load_one(const char *json, struct dw_mapset **set, char **file);

/* True when errors contains the line "<file>: <rest>" exactly. */
bool tu_has_line(const char *errors, const char *file, const char *rest);

/* Number of lines of a text. */
size_t tu_count_lines(const char *text);

#endif
