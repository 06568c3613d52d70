/* The `tcpx-p2p` command line tool: one function per subcommand, each
 * called with argv[0] = the subcommand's name. Each returns the process
 * exit code: 0 success, 1 failure, 2 usage error, 77 skipped (e.g. bench
 * p2p --gpu without a GPU). */
#ifndef TCPX_P2P_TOOLS_H
#define TCPX_P2P_TOOLS_H

#include <stddef.h>

/* Exit codes shared by the subcommands. */
#define TOOL_OK 0
#define TOOL_FAILED 1
#define TOOL_USAGE 2
#define TOOL_SKIP 77   /* what was asked needs hardware this machine lacks */

/* tcpx-p2p devices [--plugin PATH] [--version N] [--json] */
int cmd_devices(int argc, char **argv);

/* tcpx-p2p doctor [--plugin PATH] [--json]: exit 0 when this host can run
 * GPUDirect-TCPX, 1 when a check failed. */
int cmd_doctor(int argc, char **argv);

/* tcpx-p2p recv|send --handle-file F [--size BYTES] [--iters N]
 * [--timeout S] [--plugin P]: a checked transfer through the endpoint API
 * between two hosts or processes (xfer.c). */
int cmd_recv(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* bench net|p2p: vs iperf3, raw TCP */
/* tcpx-p2p stats [--size BYTES] [--iters N] [--idle SECONDS] [--ifname I] [--json]:
 * two endpoints here, checked transfers, both connections' counters. */
int cmd_stats(int argc, char **argv);

/* ---- arguments (args.c) ------------------------------------------------
 * Every refusal prints "tcpx-p2p CMD: ARG 'TEXT': why; it accepts ..." to
 * stderr; the caller then exits with TOOL_USAGE. `cmd` is the subcommand
 * as typed ("send", "bench net"). */

/* Print the message and a pointer to --help; returns TOOL_USAGE. */
int arg_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "unknown argument 'ARG'"; returns TOOL_USAGE. */
int arg_unknown(const char *cmd, const char *arg);
/* The value after argv[*i] (advancing *i), or NULL after "ARG needs a
 * value". */
const char *arg_value(const char *cmd, int argc, char **argv, int *i);
/* Values in [min, max]: 0, or -1 after the message. */
int arg_size(const char *cmd, const char *arg, const char *text, size_t min,
             size_t max, size_t *out);
int arg_long(const char *cmd, const char *arg, const char *text, long min,
             long max, long *out);
int arg_int(const char *cmd, const char *arg, const char *text, int min,
            int max, int *out);
int arg_double(const char *cmd, const char *arg, const char *text, double min,
               double max, double *out);
/* The one size syntax: digits, then optionally K, M or G (powers of 1024,
 * "KiB" and "KB" read the same). No sign, no spaces, no other base.
 * Returns 0, or -1 when `text` is not a size or does not fit a size_t. */
int size_parse(const char *text, size_t *out);
/* The shortest exact spelling: "4K", "256M", "1G", "1000". */
void size_str(size_t size, char *buf, size_t len);

#endif
