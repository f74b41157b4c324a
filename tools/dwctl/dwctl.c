/*
 * dwctl: the administration tool of dualwrite.  This file is the top level:
 * global options, the command table, help and usage errors.  Each command
 * lives in its own dwctl_<command>.c and is reached only through the table.
 *
 * Conventions: "dwctl --help" and "dwctl COMMAND --help" print to stdout and
 * exit 0; a usage error prints the message and the usage to stderr and exits
 * 2; commands use the exit codes of dwctl.h.
 */
#include "tools/dwctl/dwctl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifndef DW_VERSION
#define DW_VERSION "0.1.0"
#endif

static const struct dwctl_command commands[] = {
    {"maps", "check table-map files", dwctl_maps_run, dwctl_maps_usage},
    {"hooks", "install, remove or check the capture triggers", dwctl_hooks_run, dwctl_hooks_usage},
    {"status", "show what the running bridge is doing", dwctl_status_run, dwctl_status_usage},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dwctl [-c CONFIG] COMMAND [ARGS...]\n"
            "\n"
            "Administration tool of dualwrite, the synchronous replication bridge.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   service configuration (dualwrite.json)\n"
            "  -h, --help          show this help and exit\n"
            "  -V, --version       show the version and exit\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-18s  %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun \"dwctl COMMAND --help\" for the arguments of a command.\n");
}

static const struct dwctl_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("dwctl: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    usage(stderr);
    return DWCTL_EXIT_USAGE;
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int main(int argc, char **argv)
{
    struct dwctl_context ctx = {0};
    const struct dwctl_command *cmd;
    int i = 1;

    /* global options end at the first argument that is not one */
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];

        if (is_help(a)) {
            usage(stdout);
            return DWCTL_EXIT_OK;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("dwctl (dualwrite) %s\n", DW_VERSION);
            return DWCTL_EXIT_OK;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc)
                return usage_error("option \"%s\" needs a file name", a);
            ctx.config_path = argv[i + 1];
            i += 2;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) {
            ctx.config_path = a + 9;
            i++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        return usage_error("unknown option \"%s\"", a);
    }
    if (i >= argc)
        return usage_error("%s", "missing command");

    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            return DWCTL_EXIT_OK;
        }
        if (!(cmd = find_command(argv[i + 1])))
            return usage_error("unknown command \"%s\"", argv[i + 1]);
        cmd->usage(stdout);
        return DWCTL_EXIT_OK;
    }
    if (!(cmd = find_command(argv[i])))
        return usage_error("unknown command \"%s\"", argv[i]);
    if (i + 1 < argc && is_help(argv[i + 1])) {
        cmd->usage(stdout);
        return DWCTL_EXIT_OK;
    }
    return cmd->run(&ctx, argc - i, argv + i);
}
