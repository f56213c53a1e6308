/*
 * Shared memory and two counters: the client copies its message into the
 * region and bumps `seq`; the server copies it out, writes its answer into
 * the same place and sets `ack` to `seq`. Busy: each side re-reads the
 * counter it waits for until it changes, never calling the kernel. Blocking:
 * it sleeps on the counter with FUTEX_WAIT, and the other side's FUTEX_WAKE
 * wakes it. One message is in the region at a time: a send first waits for
 * the previous message's acknowledgement.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "_shared_memory.h"

struct control {
  _Alignas(64) _Atomic uint32_t seq;
  _Alignas(64) _Atomic uint32_t ack;
  _Alignas(64) uint32_t length;
};

struct state {
  struct control *control;
  char *data;
  uint32_t seen; /* the server: the last seq it took; the client: the last it sent */
};

static int prepare(struct channel *channel) {
  struct state *s = malloc(sizeof *s);
  char *region = shared_region(channel);
  if (!s || !region) return -1;
  s->control = (struct control *)region;
  s->data = region + SHM_DATA;
  s->seen = 0;
  channel->state = s;
  return 0;
}

static int attach(struct channel *channel, enum side side) {
  (void)channel;
  (void)side;
  return 0;
}

/* Waits until *word != unwanted (busy) or sleeps on it (blocking); returns it. */
static uint32_t wait_change(_Atomic uint32_t *word, uint32_t unwanted, int busy) {
  uint32_t value;
  while ((value = atomic_load_explicit(word, memory_order_acquire)) == unwanted) {
    if (busy) {
      cpu_relax();
    } else if (syscall(SYS_futex, word, FUTEX_WAIT, unwanted, NULL, NULL, 0) < 0 &&
               errno != EAGAIN && errno != EINTR) {
      fail("futex(FUTEX_WAIT)");
    }
  }
  return value;
}

static void publish(_Atomic uint32_t *word, uint32_t value, int busy) {
  atomic_store_explicit(word, value, memory_order_release);
  if (!busy && syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0) < 0) {
    fail("futex(FUTEX_WAKE)");
  }
}

/* Waits until ack == seq: the server is done with the last message. */
static void wait_acked(struct state *s, int busy) {
  uint32_t ack;
  while ((ack = atomic_load_explicit(&s->control->ack, memory_order_acquire)) !=
         s->seen) {
    wait_change(&s->control->ack, ack, busy);
  }
}

static int send_message(struct channel *channel, enum side side,
                        const void *data, size_t length) {
  struct state *s = channel->state;
  if (side == CLIENT) {
    wait_acked(s, channel->busy);
    memcpy(s->data, data, length);
    s->control->length = (uint32_t)length;
    publish(&s->control->seq, ++s->seen, channel->busy);
  } else {
    memcpy(s->data, data, length);
    s->control->length = (uint32_t)length;
    publish(&s->control->ack, s->seen, channel->busy);
  }
  return 0;
}

static int receive_message(struct channel *channel, enum side side, void *data,
                           size_t length) {
  struct state *s = channel->state;
  if (side == CLIENT) {
    wait_acked(s, channel->busy);
  } else {
    s->seen = wait_change(&s->control->seq, s->seen, channel->busy);
  }
  memcpy(data, s->data, length);
  return 0;
}

static void release(struct channel *channel, enum side side) {
  (void)channel;
  (void)side;
}

const struct mechanism MECHANISM = {
    .name = "shared memory",
    .prepare = prepare,
    .attach = attach,
    .send = send_message,
    .receive = receive_message,
    .release = release,
};
