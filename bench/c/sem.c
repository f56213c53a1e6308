/*
 * Shared memory and two POSIX semaphores (sem_t in the region, shared
 * between processes): the client copies its message in and posts "ping";
 * the server waits for it, copies the message out and its answer in, and
 * posts "pong". Blocking: sem_wait. Busy: sem_trywait until it succeeds.
 * The same protocol as ipckit's shared memory + semaphores rows.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#include "_shared_memory.h"

struct state {
  sem_t *ping, *pong;
  char *data;
};

static int prepare(struct channel *channel) {
  struct state *s = malloc(sizeof *s);
  char *region = shared_region(channel);
  if (!s || !region) return -1;
  s->ping = (sem_t *)region;
  s->pong = (sem_t *)(region + 64);
  s->data = region + SHM_DATA;
  if (sem_init(s->ping, 1, 0) < 0 || sem_init(s->pong, 1, 0) < 0) return -1;
  channel->state = s;
  return 0;
}

static int attach(struct channel *channel, enum side side) {
  (void)channel;
  (void)side;
  return 0;
}

static int take(sem_t *semaphore, int busy) {
  for (;;) {
    if ((busy ? sem_trywait(semaphore) : sem_wait(semaphore)) == 0) return 0;
    if (errno == EINTR) continue;
    if (busy && errno == EAGAIN) {
      cpu_relax();
      continue;
    }
    return -1;
  }
}

static int send_message(struct channel *channel, enum side side,
                        const void *data, size_t length) {
  struct state *s = channel->state;
  memcpy(s->data, data, length);
  return sem_post(side == CLIENT ? s->ping : s->pong);
}

static int receive_message(struct channel *channel, enum side side, void *data,
                           size_t length) {
  struct state *s = channel->state;
  if (take(side == CLIENT ? s->pong : s->ping, channel->busy) < 0) return -1;
  memcpy(data, s->data, length);
  return 0;
}

static void release(struct channel *channel, enum side side) {
  (void)channel;
  (void)side;
}

const struct mechanism MECHANISM = {
    .name = "POSIX semaphores",
    .no_one_way = "one message slot and two semaphores: round trips only, as the ipckit rows",
    .prepare = prepare,
    .attach = attach,
    .send = send_message,
    .receive = receive_message,
    .release = release,
};
