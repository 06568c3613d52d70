/* Step timestamps (see trace.h). Records are claimed with one atomic add,
 * so any thread driving any connection may mark. */
#include "trace.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define TRACE_RECORDS (1u << 20)

typedef struct {
  uint64_t t_ns, conn, id, size;
  uint32_t ev;
  char kind;
} trace_rec;

struct trace_buf {
  char path[512];
  atomic_uint_fast64_t next;
  trace_rec *recs;
};

static const char *const trace_names[TR_NEVENTS] = {
    [TR_SEND_START] = "send_start", [TR_RECV_MATCH] = "recv_match",
    [TR_STAGE] = "stage",           [TR_STAGED] = "staged",
    [TR_POST] = "post",             [TR_TESTED] = "tested",
    [TR_COPIED] = "copied",         [TR_CHUNK_DONE] = "chunk_done",
    [TR_OP_DONE] = "op_done"};

trace_buf *trace_open(uint64_t tag) {
  const char *prefix = getenv("TCPX_P2P_TRACE");
  if (!prefix || !*prefix) return NULL;
  trace_buf *t = calloc(1, sizeof *t);
  if (t) t->recs = malloc(TRACE_RECORDS * sizeof *t->recs);
  if (!t || !t->recs) {
    free(t);
    return NULL;
  }
  snprintf(t->path, sizeof t->path, "%s.%d.%llx", prefix, (int)getpid(),
           (unsigned long long)tag);
  return t;
}

void trace_mark(trace_buf *t, trace_event ev, uint64_t conn, char kind,
                uint64_t id, uint64_t size) {
  if (!t) return;
  uint64_t i = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
  if (i >= TRACE_RECORDS) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  t->recs[i] = (trace_rec){(uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
                           conn, id, size, (uint32_t)ev, kind};
}

void trace_close(trace_buf *t) {
  if (!t) return;
  FILE *f = fopen(t->path, "w");
  uint64_t n = atomic_load(&t->next);
  if (n > TRACE_RECORDS) n = TRACE_RECORDS;
  for (uint64_t i = 0; f && i < n; i++) {
    const trace_rec *r = &t->recs[i];
    fprintf(f, "%llu %s %llu %c %llu %llu\n", (unsigned long long)r->t_ns,
            trace_names[r->ev], (unsigned long long)r->conn, r->kind,
            (unsigned long long)r->id, (unsigned long long)r->size);
  }
  if (f) fclose(f);
  free(t->recs);
  free(t);
}
