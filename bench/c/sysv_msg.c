/*
 * Two System V message queues (msgget, msgsnd, msgrcv), one each way, as
 * the ipckit rows use: the client sends on "there" and receives on "back".
 * Every message has type 1 and is received with type 0 (the oldest), so the
 * kernel's type selection costs what it costs any receiver. Blocking: msgrcv
 * and msgsnd sleep in the kernel. Busy: both retry with IPC_NOWAIT.
 *
 * A message larger than /proc/sys/kernel/msgmax (8 KiB by default) travels
 * in pieces of that size, as the ipckit rows do. The queues are removed by
 * the client's release, or by their reaper if the run is killed (_sysv.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>

#include "_harness.h"
#include "_sysv.h"

struct queues {
  int there, back;
  size_t piece;
  int reaper;
  struct {
    long mtype;
    char mtext[];
  } *buffer; /* msgsnd and msgrcv want the type before the bytes */
};

static size_t msgmax(void) {
  long value = 8192;
  FILE *f = fopen("/proc/sys/kernel/msgmax", "r");
  if (f) {
    if (fscanf(f, "%ld", &value) != 1) value = 8192;
    fclose(f);
  }
  return (size_t)value;
}

static int prepare(struct channel *channel) {
  struct queues *q = malloc(sizeof *q);
  if (!q) return -1;
  size_t max = msgmax();
  q->piece = channel->bytes < max ? channel->bytes : max;
  q->buffer = malloc(sizeof(long) + q->piece);
  if (!q->buffer) return -1;
  q->there = sysv_msg_create();
  if (q->there < 0) return -1;
  q->back = sysv_msg_create();
  if (q->back < 0) {
    int saved = errno;
    msgctl(q->there, IPC_RMID, NULL);
    errno = saved;
    return -1;
  }
  const enum sysv_kind kinds[] = {SYSV_MSG, SYSV_MSG};
  const int ids[] = {q->there, q->back};
  q->reaper = sysv_reaper(kinds, ids, 2);
  if (q->reaper < 0) return -1;
  channel->state = q;
  return 0;
}

static int attach(struct channel *channel, enum side side) {
  (void)channel;
  (void)side;
  return 0;
}

/* EINTR always; when busy, the "try again" of IPC_NOWAIT: EAGAIN or ENOMSG. */
static int again(int busy) {
  if (errno == EINTR) return 1;
  if (busy && (errno == EAGAIN || errno == ENOMSG)) {
    cpu_relax();
    return 1;
  }
  return 0;
}

static int send_message(struct channel *channel, enum side side,
                        const void *data, size_t length) {
  struct queues *q = channel->state;
  int queue = side == CLIENT ? q->there : q->back;
  int flags = channel->busy ? IPC_NOWAIT : 0;
  for (size_t at = 0; at < length;) {
    size_t n = length - at < q->piece ? length - at : q->piece;
    q->buffer->mtype = 1;
    memcpy(q->buffer->mtext, (const char *)data + at, n);
    while (msgsnd(queue, q->buffer, n, flags) < 0) {
      if (!again(channel->busy)) return -1;
    }
    at += n;
  }
  return 0;
}

static int receive_message(struct channel *channel, enum side side, void *data,
                           size_t length) {
  struct queues *q = channel->state;
  int queue = side == CLIENT ? q->back : q->there;
  int flags = channel->busy ? IPC_NOWAIT : 0;
  for (size_t at = 0; at < length;) {
    ssize_t n;
    while ((n = msgrcv(queue, q->buffer, q->piece, 0, flags)) < 0) {
      if (!again(channel->busy)) return -1;
    }
    size_t take = (size_t)n < length - at ? (size_t)n : length - at;
    memcpy((char *)data + at, q->buffer->mtext, take);
    at += (size_t)n;
  }
  return 0;
}

static void release(struct channel *channel, enum side side) {
  struct queues *q = channel->state;
  if (side != CLIENT) return;
  msgctl(q->there, IPC_RMID, NULL);
  msgctl(q->back, IPC_RMID, NULL);
  sysv_reaped(q->reaper);
}

static const char *unavailable(void) { return sysv_unavailable(SYSV_MSG); }

const struct mechanism MECHANISM = {
    .name = "System V message queue",
    .unavailable = unavailable,
    .prepare = prepare,
    .attach = attach,
    .send = send_message,
    .receive = receive_message,
    .release = release,
};
