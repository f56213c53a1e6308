/*
 * Two POSIX message queues, created (and at once unlinked) before the fork,
 * so both processes hold them and nothing is left behind. A message larger
 * than the queue's message size (at most /proc/sys/fs/mqueue/msgsize_max)
 * travels in pieces of that size, as the ipckit rows do. The queues' depth is
 * 10, the default msg_max.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "_harness.h"

struct queues {
  mqd_t there, back;
  size_t piece;
  char *bounce; /* for a receive shorter than a piece: mq_receive wants a whole one */
};

static long limit(const char *file, long fallback) {
  char path[128];
  long value = fallback;
  snprintf(path, sizeof path, "/proc/sys/fs/mqueue/%s", file);
  FILE *f = fopen(path, "r");
  if (f) {
    if (fscanf(f, "%ld", &value) != 1) value = fallback;
    fclose(f);
  }
  return value;
}

static mqd_t create(struct channel *channel, const char *which, size_t piece) {
  char name[128];
  long depth = limit("msg_max", 10);
  struct mq_attr attr = {.mq_maxmsg = depth < 10 ? depth : 10,
                         .mq_msgsize = (long)piece};
  snprintf(name, sizeof name, "/ipckit-bench-c-%d-%d-%s", (int)getpid(),
           channel->index, which);
  int flags = O_RDWR | O_CREAT | O_EXCL | (channel->busy ? O_NONBLOCK : 0);
  mqd_t queue = mq_open(name, flags, 0600, &attr);
  if (queue != (mqd_t)-1) mq_unlink(name);
  return queue;
}

static int prepare(struct channel *channel) {
  struct queues *q = malloc(sizeof *q);
  if (!q) return -1;
  size_t max = (size_t)limit("msgsize_max", 8192);
  q->piece = channel->bytes < max ? channel->bytes : max;
  q->bounce = malloc(q->piece);
  q->there = create(channel, "there", q->piece);
  q->back = create(channel, "back", q->piece);
  if (!q->bounce || q->there == (mqd_t)-1 || q->back == (mqd_t)-1) return -1;
  channel->state = q;
  return 0;
}

static int attach(struct channel *channel, enum side side) {
  (void)channel;
  (void)side;
  return 0;
}

/* EINTR always, EAGAIN when busy (a blocking queue never returns it): retry. */
static int again(int busy) {
  if (errno == EINTR) return 1;
  if (busy && errno == EAGAIN) {
    cpu_relax();
    return 1;
  }
  return 0;
}

static int send_message(struct channel *channel, enum side side,
                        const void *data, size_t length) {
  struct queues *q = channel->state;
  mqd_t queue = side == CLIENT ? q->there : q->back;
  for (size_t at = 0; at < length;) {
    size_t n = length - at < q->piece ? length - at : q->piece;
    if (mq_send(queue, (const char *)data + at, n, 0) < 0) {
      if (again(channel->busy)) continue;
      return -1;
    }
    at += n;
  }
  return 0;
}

static int receive_message(struct channel *channel, enum side side, void *data,
                           size_t length) {
  struct queues *q = channel->state;
  mqd_t queue = side == CLIENT ? q->back : q->there;
  for (size_t at = 0; at < length;) {
    int direct = length - at >= q->piece;
    char *into = direct ? (char *)data + at : q->bounce;
    ssize_t n = mq_receive(queue, into, q->piece, NULL);
    if (n < 0) {
      if (again(channel->busy)) continue;
      return -1;
    }
    if (!direct) memcpy((char *)data + at, q->bounce, (size_t)n);
    at += (size_t)n;
  }
  return 0;
}

static void release(struct channel *channel, enum side side) {
  struct queues *q = channel->state;
  (void)side;
  mq_close(q->there);
  mq_close(q->back);
}

const struct mechanism MECHANISM = {
    .name = "POSIX message queue",
    .prepare = prepare,
    .attach = attach,
    .send = send_message,
    .receive = receive_message,
    .release = release,
};
