/* The `tcpx-p2p` command line tool: one function per subcommand, each
 * called with argv[0] = the subcommand's name. Each returns the process
 * exit code: 0 success, 1 failure, 2 usage error. */
#ifndef TCPX_P2P_TOOLS_H
#define TCPX_P2P_TOOLS_H

/* Exit codes shared by the subcommands. */
#define TOOL_OK 0
#define TOOL_FAILED 1
#define TOOL_USAGE 2

/* tcpx-p2p devices [--plugin PATH] [--version N] [--json] */
int cmd_devices(int argc, char **argv);

/* tcpx-p2p recv|send --handle-file F [--size BYTES] [--iters N] [--plugin P]:
 * a checked transfer through the transport between two hosts. */
int cmd_recv(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* bench net|p2p: vs iperf3, raw TCP */
/* tcpx-p2p stats [--size BYTES] [--iters N] [--idle SECONDS] [--ifname I] [--json]:
 * two endpoints here, checked transfers, both connections' counters. */
int cmd_stats(int argc, char **argv);

#endif
