/*
 * Test helpers for maps/: temporary files and the CUnit runner.
 */
#include "tests/unit/maps/map_test_util.h"

#include <CUnit/Basic.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp_root;
static unsigned subdir_seq;

void *tu_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

char *tu_strdup(const char *s)
{
    char *p = tu_malloc(strlen(s) + 1);

    strcpy(p, s);
    return p;
}

const char *tu_dir(void)
{
    if (!tmp_root) {
        const char *base = getenv("TMPDIR");
        char tmpl[4096];

        snprintf(tmpl, sizeof(tmpl), "%s/dw-maps-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            exit(1);
        }
        tmp_root = tu_strdup(tmpl);
    }
    return tmp_root;
}

char *tu_subdir(void)
{
    size_t size = strlen(tu_dir()) + 32;
    char *p = tu_malloc(size);

    snprintf(p, size, "%s/d%u", tu_dir(), ++subdir_seq);
    if (mkdir(p, 0700) != 0) {
        perror("mkdir");
        exit(1);
    }
    return p;
}

char *tu_write_raw(const char *dir, const char *name, const char *data, size_t len)
{
    size_t size = strlen(dir) + strlen(name) + 2;
    char *path = tu_malloc(size);
    FILE *f;

    snprintf(path, size, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    return path;
}

char *tu_write(const char *dir, const char *name, const char *text)
{
    char *copy = tu_strdup(text), *path;

    for (char *p = copy; *p; p++)
        if (*p == '\'')
            *p = '"';
    path = tu_write_raw(dir, name, copy, strlen(copy));
    free(copy);
    return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    remove(path);
    return 0;
}

void tu_rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_load_one(const char *json, struct dw_mapset **set, char **file)
{
    char *dir = tu_subdir();
    char *path = tu_write(dir, "m.json", json);
    const char *paths[] = {dir};
    struct dw_mapset *s = NULL;
    struct dw_error err;
    char *errors = NULL;
    dw_errcode rc;

    dw_error_clear(&err);
    rc = dw_mapset_load(paths, 1, &s, &errors, &err);
    if (rc == DW_OK) {
        CU_ASSERT_PTR_NULL(errors);
        if (set)
            *set = s;
        else
            dw_mapset_free(s);
    } else {
        CU_ASSERT_EQUAL(rc, DW_ERR_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(errors);
        if (set)
            *set = NULL;
    }
    if (file)
        *file = path;
    else
        free(path);
    free(dir);
    return errors;
}

bool tu_has_line(const char *errors, const char *file, const char *rest)
{
    size_t flen = strlen(file), rlen = strlen(rest);
    const char *p = errors;

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t) (nl - p) : strlen(p);

        if (len == flen + rlen && strncmp(p, file, flen) == 0 && strncmp(p + flen, rest, rlen) == 0)
            return true;
        p = nl ? nl + 1 : NULL;
    }
    fprintf(stderr, "\nexpected line: %s%s\nin errors:\n%s", file, rest, errors ? errors : "(none)\n");
    return false;
}

size_t tu_count_lines(const char *text)
{
    size_t n = 0;

    for (; text && *text; text++)
        if (*text == '\n')
            n++;
    return n;
}

int tu_run(const char *suite, const struct tu_test *tests, size_t ntests)
{
    CU_pSuite s;
    unsigned failed, failures;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite(suite, NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    for (size_t i = 0; i < ntests; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn)) {
            CU_cleanup_registry();
            return 1;
        }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_tests_failed();
    failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    if (tmp_root) {
        tu_rmtree(tmp_root);
        free(tmp_root);
        tmp_root = NULL;
    }
    return failed || failures ? 1 : 0;
}
