/* The acceptor: one thread takes incoming control connections (TCP and the
 * same-host unix socket) and runs each set-up on a thread of its own, then
 * queues the connection for p2p_accept / p2p_accept_local.
 *
 * Defences (docs/ARCHITECTURE.md, "Limits against hostile peers"):
 * - at most lim.max_handshakes set-ups at once; a new socket finding them
 *   all taken evicts the oldest one whose peer has not yet sent its
 *   HANDLES (a silent or slow socket), else the oldest running longer
 *   than lim.hello_ms (HANDLES sent, comms never connected), so stalling
 *   peers cannot lock legitimate clients out; each early phase is
 *   bounded by lim.hello_ms anyway (handshake.c);
 * - set-ups beyond lim.max_pending connections waiting for p2p_accept, or
 *   lim.max_conns live ones, are refused with a BYE saying P2P_ELIMIT;
 * - out of file descriptors (EMFILE/ENFILE), accept would fail at once
 *   forever and the thread would spin: a spare descriptor is given up to
 *   accept the connection and close it, then taken again. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "sock.h"

typedef struct hs_job {
  struct hs_job *next;        /* in ep->hs_jobs, oldest first */
  p2p_endpoint *ep;
  int fd;
  int is_local;
  uint64_t started_ns;
  hs_watch watch;
  char peer_ip[64];
} hs_job;

/* ---- the list of set-ups in progress (accept_lock) ---------------------------- */

static void jobs_append(p2p_endpoint *ep, hs_job *job) {
  hs_job **pp = (hs_job **)&ep->hs_jobs;
  while (*pp) pp = &(*pp)->next;
  *pp = job;
}

static void jobs_remove(p2p_endpoint *ep, hs_job *job) {
  for (hs_job **pp = (hs_job **)&ep->hs_jobs; *pp; pp = &(*pp)->next)
    if (*pp == job) {
      *pp = job->next;
      return;
    }
}

static void evict(p2p_endpoint *ep, hs_job *j) {
  atomic_store(&j->watch.evicted, 1);
  shutdown(j->fd, SHUT_RDWR); /* still open: the job leaves the list first */
  ep->handshakes_active--;
  log_msg(LOG_WARN, "dropped the set-up with %s (silent or slow; %d set-ups "
          "in progress, TCPX_P2P_MAX_HANDSHAKES)", j->peer_ip,
          ep->lim.max_handshakes);
}

/* Make room for one more: evict the oldest set-up still in its early
 * phase, else the oldest one running longer than that phase may last (a
 * peer that sent its HANDLES and then never connects). Its thread sees
 * `evicted` (and its socket shut) at once. Returns 1 when there is room. */
static int jobs_make_room(p2p_endpoint *ep) {
  if (ep->handshakes_active < ep->lim.max_handshakes) return 1;
  uint64_t old = now_ns() - (uint64_t)ep->lim.hello_ms * 1000000ull;
  for (int pass = 0; pass < 2; pass++)
    for (hs_job *j = ep->hs_jobs; j; j = j->next) {
      if (atomic_load(&j->watch.evicted)) continue;
      if (pass == 0 ? !atomic_load(&j->watch.late) : j->started_ns < old) {
        evict(ep, j);
        return 1;
      }
    }
  return 0;
}

/* ---- one set-up --------------------------------------------------------------- */

/* Queue a connection for p2p_accept or p2p_accept_local. */
static void queue_accepted(p2p_endpoint *ep, conn *c) {
  conn **head = c->is_local ? &ep->local_head : &ep->accepted_head;
  conn **tail = c->is_local ? &ep->local_tail : &ep->accepted_tail;
  conn_hold(c); /* until p2p_accept hands it out */
  pthread_mutex_lock(&ep->accept_lock);
  c->accept_next = NULL;
  if (*tail) (*tail)->accept_next = c;
  else *head = c;
  *tail = c;
  ep->npending++;
  pthread_cond_broadcast(&ep->accept_cond);
  pthread_mutex_unlock(&ep->accept_lock);
}

/* Called by a set-up thread: the other set-ups in progress count too (they
 * may finish first), so the caps hold however the set-ups interleave. */
int acceptor_room(p2p_endpoint *ep) {
  pthread_mutex_lock(&ep->accept_lock);
  int others = ep->handshakes_active - 1;
  int pending = ep->npending + (others > 0 ? others : 0);
  pthread_mutex_unlock(&ep->accept_lock);
  int live = ep_live_conns(ep) + (others > 0 ? others : 0);
  if (live >= ep->lim.max_conns)
    return ep_err(P2P_ELIMIT, "%d connections are open or being set up already "
                  "(TCPX_P2P_MAX_CONNS)", live);
  if (pending >= ep->lim.max_pending)
    return ep_err(P2P_ELIMIT, "%d connections wait for accept or are being set "
                  "up already (TCPX_P2P_MAX_PENDING)", pending);
  return P2P_OK;
}

static void *handshake_thread(void *arg) {
  hs_job *job = arg;
  p2p_endpoint *ep = job->ep;
  conn *c = NULL;
  int rc = handshake_accept(ep, job->fd, job->peer_ip, job->is_local, &job->watch, &c);
  pthread_mutex_lock(&ep->accept_lock);
  jobs_remove(ep, job); /* before the fd can be closed: no shutdown after */
  if (!atomic_load(&job->watch.evicted)) ep->handshakes_active--;
  pthread_mutex_unlock(&ep->accept_lock);
  if (rc == P2P_OK && (rc = ep_register_conn(ep, c)) != P2P_OK) {
    conn_free(c); /* closes the fd */
    c = NULL;
    job->fd = -1;
  }
  if (rc != P2P_OK) {
    log_msg(LOG_WARN, "refused a connection from %s: %s", job->peer_ip, err_get());
    if (job->fd >= 0) close(job->fd);
  } else {
    queue_accepted(ep, c);
  }
  free(job);
  pthread_mutex_lock(&ep->accept_lock);
  ep->handshakes--;
  pthread_cond_broadcast(&ep->accept_cond);
  pthread_mutex_unlock(&ep->accept_lock);
  return NULL;
}

static void start_handshake(p2p_endpoint *ep, int fd, const struct sockaddr *peer,
                            int is_local) {
  hs_job *job = calloc(1, sizeof *job);
  if (!job) {
    close(fd);
    return;
  }
  job->ep = ep;
  job->fd = fd;
  job->is_local = is_local;
  job->started_ns = now_ns();
  if (is_local) snprintf(job->peer_ip, sizeof job->peer_ip, "local");
  else sock_addr_str(peer, 0, job->peer_ip, sizeof job->peer_ip);
  pthread_mutex_lock(&ep->accept_lock);
  int room = jobs_make_room(ep);
  if (room) {
    ep->handshakes++;
    ep->handshakes_active++;
    jobs_append(ep, job);
  }
  pthread_mutex_unlock(&ep->accept_lock);
  if (!room) {
    log_msg(LOG_WARN, "dropped an incoming connection from %s: %d set-ups in "
            "progress, none of them early (TCPX_P2P_MAX_HANDSHAKES)",
            job->peer_ip, ep->lim.max_handshakes);
    free(job);
    close(fd);
    return;
  }
  pthread_t tid;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&tid, &attr, handshake_thread, job) != 0) {
    pthread_mutex_lock(&ep->accept_lock);
    jobs_remove(ep, job);
    ep->handshakes--;
    if (!atomic_load(&job->watch.evicted)) ep->handshakes_active--;
    pthread_mutex_unlock(&ep->accept_lock);
    close(fd);
    free(job);
  }
  pthread_attr_destroy(&attr);
}

/* ---- the thread ------------------------------------------------------------------ */

/* Out of descriptors: take the connection with the spare one and close
 * it (the peer sees the close instead of waiting in our backlog). */
static void shed_one(p2p_endpoint *ep, int lfd) {
  if (ep->spare_fd < 0) {
    usleep(10000); /* no spare: at least do not spin */
    return;
  }
  close(ep->spare_fd);
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0) close(fd);
  ep->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  log_msg(LOG_WARN, "closed an incoming connection: out of file descriptors "
          "(raise RLIMIT_NOFILE)");
}

static void accept_one(p2p_endpoint *ep, int lfd, int is_local) {
  struct sockaddr_storage peer;
  socklen_t len = sizeof peer;
  int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE) shed_one(ep, lfd);
    return;
  }
  if (is_local && local_peer_ok(fd, "accept_local") != P2P_OK) {
    log_msg(LOG_WARN, "refused a same-host connection: %s", err_get());
    close(fd);
    return;
  }
  if (!is_local) {
    sock_set_nodelay(fd);
    sock_set_timeouts(fd, ep->opts.timeout_ms);
  }
  start_handshake(ep, fd, (struct sockaddr *)&peer, is_local);
}

static void *acceptor_main(void *arg) {
  p2p_endpoint *ep = arg;
  while (!atomic_load(&ep->stop)) {
    struct pollfd p[2] = {{ep->listen_fd, POLLIN, 0}, {ep->local_fd, POLLIN, 0}};
    if (poll(p, ep->local_fd >= 0 ? 2 : 1, 100) <= 0) continue;
    for (int i = 0; i < 2; i++)
      if (p[i].revents & POLLIN) accept_one(ep, p[i].fd, i == 1);
  }
  return NULL;
}

int acceptor_start(p2p_endpoint *ep) {
  ep->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (pthread_create(&ep->acceptor, NULL, acceptor_main, ep) != 0)
    return ep_err(P2P_ESYS, "acceptor thread: %s", strerror(errno));
  ep->acceptor_started = 1;
  return P2P_OK;
}

void acceptor_stop(p2p_endpoint *ep) {
  if (ep->acceptor_started) pthread_join(ep->acceptor, NULL);
  ep->acceptor_started = 0;
  pthread_mutex_lock(&ep->accept_lock);
  while (ep->handshakes > 0) pthread_cond_wait(&ep->accept_cond, &ep->accept_lock);
  pthread_cond_broadcast(&ep->accept_cond); /* wake p2p_accept callers */
  pthread_mutex_unlock(&ep->accept_lock);
  if (ep->spare_fd >= 0) close(ep->spare_fd);
  ep->spare_fd = -1;
}
