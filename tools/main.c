/* tcpx-p2p: dispatch `tcpx-p2p SUBCOMMAND [ARGS...]` to cmd_SUBCOMMAND. */
#include <stdio.h>
#include <string.h>

#include "tcpx_p2p.h"
#include "tools.h"

typedef struct subcommand {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} subcommand;

/* One line per subcommand. */
static const subcommand subcommands[] = {
    {"bench", cmd_bench, "benchmarks: `bench net` (transport), `bench p2p` (endpoint)"},
    {"devices", cmd_devices, "list the transport's devices and their NICs"},
    {"doctor", cmd_doctor, "check this host's GPUDirect-TCPX set-up, say what to fix"},
    {"recv", cmd_recv, "receive a checked transfer (writes a handle file)"},
    {"send", cmd_send, "send a checked transfer to a `recv` (reads its handle file)"},
    {"stats", cmd_stats, "checked loopback transfers; print per-connection counters"},
};

#define NSUBCOMMANDS ((int)(sizeof subcommands / sizeof subcommands[0]))

static void print_usage(FILE *out) {
  fprintf(out, "usage: tcpx-p2p SUBCOMMAND [ARGS...]\n\nsubcommands:\n");
  for (int i = 0; i < NSUBCOMMANDS; i++)
    fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
  fprintf(out, "  %-10s %s\n", "help", "this text; `help SUBCOMMAND` for one");
  fprintf(out, "  %-10s %s\n", "--version", "print the library version");
  fprintf(out, "\n`tcpx-p2p SUBCOMMAND --help` describes its arguments.\n");
}

static const subcommand *find_subcommand(const char *name) {
  for (int i = 0; i < NSUBCOMMANDS; i++)
    if (strcmp(subcommands[i].name, name) == 0) return &subcommands[i];
  return NULL;
}

/* `tcpx-p2p help [SUBCOMMAND]` */
static int run_help(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stdout);
    return TOOL_OK;
  }
  const subcommand *sub = find_subcommand(argv[1]);
  if (!sub) {
    fprintf(stderr, "tcpx-p2p: unknown subcommand '%s'\n\n", argv[1]);
    print_usage(stderr);
    return TOOL_USAGE;
  }
  char *help_argv[] = {(char *)sub->name, "--help", NULL};
  return sub->run(2, help_argv);
}

static int is_help_flag(const char *arg) {
  return strcmp(arg, "help") == 0 || strcmp(arg, "--help") == 0 ||
         strcmp(arg, "-h") == 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return TOOL_USAGE;
  }
  if (is_help_flag(argv[1])) return run_help(argc - 1, argv + 1);
  if (strcmp(argv[1], "--version") == 0) {
    printf("tcpx-p2p %s\n", p2p_version());
    return TOOL_OK;
  }
  const subcommand *sub = find_subcommand(argv[1]);
  if (!sub) {
    fprintf(stderr, "tcpx-p2p: unknown subcommand '%s'\n\n", argv[1]);
    print_usage(stderr);
    return TOOL_USAGE;
  }
  return sub->run(argc - 1, argv + 1);
}
