/* Step timestamps for finding where a transfer's time goes.
 *
 * TCPX_P2P_TRACE=PREFIX makes each endpoint record, in memory, the moment
 * each op and chunk passes each step (announced, staged, posted, tested,
 * copied, done) and write them to PREFIX.<pid>.<tag> when it is destroyed.
 * Off (NULL buffer) a mark is one branch. Both sides of a same-host test
 * share CLOCK_MONOTONIC, so scripts/trace-summary lines their steps up per
 * message. A diagnostic: a full buffer stops recording, it never grows. */
#ifndef TCPX_P2P_TRACE_H
#define TCPX_P2P_TRACE_H

#include <stdint.h>

typedef enum {
  TR_SEND_START = 1, /* sender: SEND announced (id: seq) */
  TR_RECV_MATCH,     /* receiver: SEND matched to a posted receive */
  TR_STAGE,          /* staged send chunk: copy to the pinned slot issued */
  TR_STAGED,         /* ... its copy seen finished, the chunk is posted next */
  TR_POST,           /* transport isend/irecv posted */
  TR_TESTED,         /* transport test said done */
  TR_COPIED,         /* receive: copy to GPU memory (staged or unpack) done */
  TR_CHUNK_DONE,     /* chunk finished (consumed) */
  TR_OP_DONE,        /* op finished (sender: SEND_DONE in; receiver: sent) */
  TR_NEVENTS
} trace_event;

typedef struct trace_buf trace_buf;

/* NULL when TCPX_P2P_TRACE is unset or memory is short; `tag` tells the
 * files of one process's endpoints apart. */
trace_buf *trace_open(uint64_t tag);
/* `kind`: a letter for the op kind ('s' send, 'r' recv, 'w' write, 'd'
 * read; upper case when its buffer is GPU memory; '-' serving the peer),
 * as op ids of different kinds overlap. */
void trace_mark(trace_buf *t, trace_event ev, uint64_t conn, char kind,
                uint64_t id, uint64_t size);
/* Write the records out and free the buffer. */
void trace_close(trace_buf *t);

#endif
