/*
 * "dwctl maps": commands on table-map files.  "check" loads the given files
 * and folders exactly as the bridge does and prints one summary line per map
 * in dependency order, or every error (one per line, "file: /json/path:
 * message") on stderr with exit code 2, so that CI and editors can use it.
 */
#include "tools/dwctl/dwctl.h"

#include <stdlib.h>
#include <string.h>

#include "maps/dw_map.h"

void dwctl_maps_usage(FILE *out)
{
    fprintf(out,
            "usage: dwctl maps check FILE|DIR...\n"
            "\n"
            "Check table-map files: each FILE is one map, each DIR holds maps as *.json\n"
            "files.  All files are loaded together, as the bridge loads them, so names,\n"
            "\"depends_on\" and cycles are checked across files.\n"
            "\n"
            "When every map is valid, prints one line per map in dependency order and\n"
            "exits 0.  Otherwise prints every error on stderr, one per line, as\n"
            "\"FILE: /json/path: message\", and exits 2.\n");
}

/* A value as the summary shows it: double-quoted, special characters escaped. */
static void put_value(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void summarize(FILE *out, const struct dw_map *m)
{
    fprintf(out, "%s: %s -> %s.%s, %zu field%s, key (", m->name, m->source_table, m->connector,
            m->target_table, m->nfields, m->nfields == 1 ? "" : "s");
    for (size_t k = 0; k < m->nkey; k++)
        fprintf(out, "%s%s", k ? ", " : "", m->source_key[k]);
    fputs(")", out);
    if (m->filter.column) {
        fprintf(out, ", filter %s in (", m->filter.column);
        for (size_t i = 0; i < m->filter.nin; i++) {
            if (i)
                fputs(", ", out);
            put_value(out, m->filter.in[i]);
        }
        fputs(")", out);
    } else
        fputs(", no filter", out);
    if (m->ndepends) {
        fputs(", depends on ", out);
        for (size_t i = 0; i < m->ndepends; i++)
            fprintf(out, "%s%s", i ? ", " : "", m->depends_on[i]);
    } else
        fputs(", no dependencies", out);
    fputc('\n', out);
}

static int maps_check(int argc, char **argv)
{
    struct dw_mapset *set = NULL;
    struct dw_error err;
    char *errors = NULL;
    dw_errcode rc;

    if (argc < 1) {
        fprintf(stderr, "dwctl maps check: missing FILE or DIR\n\n");
        dwctl_maps_usage(stderr);
        return DWCTL_EXIT_USAGE;
    }
    dw_error_clear(&err);
    rc = dw_mapset_load((const char *const *) argv, (size_t) argc, &set, &errors, &err);
    if (rc == DW_ERR_CONFIG) {
        fputs(errors ? errors : err.message, stderr);
        if (!errors)
            fputc('\n', stderr);
        free(errors);
        return DWCTL_EXIT_USAGE;
    }
    if (rc != DW_OK) {
        fprintf(stderr, "dwctl maps check: %s\n", err.message);
        free(errors);
        return DWCTL_EXIT_FAIL;
    }
    for (size_t i = 0; i < set->nmaps; i++)
        summarize(stdout, &set->maps[i]);
    dw_mapset_free(set);
    if (fflush(stdout) != 0) {
        perror("dwctl maps check: could not write the summary");
        return DWCTL_EXIT_FAIL;
    }
    return DWCTL_EXIT_OK;
}

int dwctl_maps_run(const struct dwctl_context *ctx, int argc, char **argv)
{
    (void) ctx;
    if (argc < 2) {
        fprintf(stderr, "dwctl maps: missing subcommand\n\n");
        dwctl_maps_usage(stderr);
        return DWCTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "check") == 0) {
        if (argc > 2 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
            dwctl_maps_usage(stdout);
            return DWCTL_EXIT_OK;
        }
        /* "--" lets a file name start with "-" */
        if (argc > 2 && strcmp(argv[2], "--") == 0)
            return maps_check(argc - 3, argv + 3);
        return maps_check(argc - 2, argv + 2);
    }
    fprintf(stderr, "dwctl maps: unknown subcommand \"%s\"\n\n", argv[1]);
    dwctl_maps_usage(stderr);
    return DWCTL_EXIT_USAGE;
}
