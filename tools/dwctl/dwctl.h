/*
 * dwctl's subcommands plug in here: each one is a row of the command table in
 * dwctl.c with a run function and a usage function, so adding "hooks" or
 * "status" means one new file and one new row.
 */
#ifndef DWCTL_H
#define DWCTL_H

#include <stdio.h>

/* Exit codes shared by every subcommand. */
#define DWCTL_EXIT_OK 0
#define DWCTL_EXIT_FAIL 1     /* could not do the work (I/O, memory, unreachable service) */
#define DWCTL_EXIT_USAGE 2    /* bad command line, or input that is not valid */

/* What the top level parsed before the subcommand. */
struct dwctl_context {
    const char *config_path;  /* -c FILE, or NULL */
};

struct dwctl_command {
    const char *name;
    const char *summary;      /* one line for "dwctl --help" */
    /* argv[0] is the command name; returns an exit code */
    int (*run)(const struct dwctl_context *ctx, int argc, char **argv);
    void (*usage)(FILE *out);
};

/* One pair per command (dwctl_<command>.c). */
int dwctl_maps_run(const struct dwctl_context *ctx, int argc, char **argv);
void dwctl_maps_usage(FILE *out);
int dwctl_hooks_run(const struct dwctl_context *ctx, int argc, char **argv);
void dwctl_hooks_usage(FILE *out);
int dwctl_status_run(const struct dwctl_context *ctx, int argc, char **argv);
void dwctl_status_usage(FILE *out);

#endif
