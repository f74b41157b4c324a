/*
 * Allocation-failure torture (as curl does it): load the example maps and map
 * a batch with the first, second, third... allocation failing, until a run
 * needs no failure.  Every run must end in success or a clean error, never a
 * crash, and must free everything it allocated.
 *
 * The test replaces malloc, calloc, realloc and free for the whole process
 * (glibc allows this), so it cannot run under AddressSanitizer or valgrind,
 * which replace them too: there it exits 77 (meson reports SKIP).
 */
#include "tests/unit/maps/map_test_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define NO_INTERPOSE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_INTERPOSE 1
#endif
#endif

#ifndef NO_INTERPOSE
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static long fail_at = -1;   /* allocation number to fail, -1: none */
static long count;          /* allocations since the countdown started */
static long live;           /* blocks allocated and not freed */
static bool failed;         /* the injected failure happened */

static bool inject(void)
{
    if (fail_at < 0)
        return false;
    if (count++ == fail_at) {
        failed = true;
        errno = ENOMEM;
        return true;
    }
    return false;
}

void *malloc(size_t n)
{
    void *p = inject() ? NULL : __libc_malloc(n);

    if (p)
        live++;
    return p;
}

void *calloc(size_t n, size_t size)
{
    void *p = inject() ? NULL : __libc_calloc(n, size);

    if (p)
        live++;
    return p;
}

void *realloc(void *old, size_t n)
{
    void *p;

    if (old && n == 0) {
        live--;
        return __libc_realloc(old, 0);
    }
    if (inject())
        return NULL;
    p = __libc_realloc(old, n);
    if (p && !old)
        live++;
    return p;
}

void free(void *p)
{
    if (p)
        live--;
    __libc_free(p);
}

static const char *examples;

/* One load and one mapped batch; the allocation fail_at fails (if reached). */
static void run_once(void)
{
    const char *paths[] = {examples};
    struct dw_mapset *set = NULL;
    struct dw_error err;
    char *errors = NULL;
    dw_errcode rc;

    dw_error_clear(&err);
    rc = dw_mapset_load(paths, 1, &set, &errors, &err);
    /* an allocation inside opendir or fopen can only show as a file error */
    CU_ASSERT(rc == DW_OK || rc == DW_ERR_NOMEM || rc == DW_ERR_CONFIG);
    CU_ASSERT((rc == DW_OK) == (set != NULL));
    if (rc == DW_ERR_CONFIG && (!errors || !strstr(errors, "memory"))) {
        fprintf(stderr, "\nallocation %ld failing gave: %s\n%s", fail_at, err.message, errors ? errors : "");
        CU_FAIL("configuration error that is not about memory");
    }
    free(errors);
    if (set) {
        const char *names[] = {"id", "customer_id", "status", "total"};
        const char *v1[] = {"17", "4", "draft", "12.50"}, *v2[] = {"17", "4", "shipped", "12.50"};
        struct dw_change ch[2] = {
            {.table = "public.orders", .op = DW_CHANGE_INSERT, .new_row = {4, names, v1}},
            {.table = "public.orders", .op = DW_CHANGE_UPDATE, .old_row = {4, names, v1}, .new_row = {4, names, v2}},
        };
        struct dw_batch batch = {.id = "1:2:3", .nchanges = 2, .changes = ch};
        struct dw_arena arena;
        struct dw_oplist out;

        dw_arena_init(&arena, 256);
        dw_error_clear(&err);
        rc = dw_map_apply(set, &batch, &arena, &out, &err);
        CU_ASSERT(rc == DW_OK || rc == DW_ERR_NOMEM);
        CU_ASSERT(rc != DW_OK || out.nops == 2);
        dw_arena_cleanup(&arena);
        dw_mapset_free(set);
    }
}

static void test_torture(void)
{
    long n;

    for (n = 0; n < 100000; n++) {
        long before = live;

        fail_at = n;
        count = 0;
        failed = false;
        run_once();
        fail_at = -1;
        CU_ASSERT_EQUAL(live, before);
        if (live != before) {
            fprintf(stderr, "\nleak with allocation %ld failing: %ld blocks\n", n, live - before);
            break;
        }
        if (!failed)
            break;
    }
    printf("\n  %ld allocations failed in turn\n", n);
    CU_ASSERT(n > 10);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"every allocation fails in turn", test_torture},
    };

    if (argc < 2) {
        fprintf(stderr, "usage: test_map_oom EXAMPLES_DIR\n");
        return 2;
    }
    examples = argv[1];
    /* stdout's buffer is allocated once, before the countdown starts */
    printf("allocation torture of maps/\n");
    return tu_run("map_oom", tests, sizeof(tests) / sizeof(tests[0]));
}

#else

int main(void)
{
    fprintf(stderr, "allocation torture cannot run under a sanitizer that owns malloc\n");
    return 77;
}

#endif
