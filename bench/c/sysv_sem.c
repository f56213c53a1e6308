/*
 * A System V shared memory segment and a System V set of two semaphores
 * (semop), "ping" and "pong": the client copies its message into the
 * segment and raises ping; the server takes ping, copies the message out
 * and its answer in, and raises pong. Blocking: semop sleeps in the kernel.
 * Busy: semop with IPC_NOWAIT until it succeeds. The same protocol as
 * ipckit's System V shared memory + semaphores rows, and as sem.c with
 * POSIX objects.
 *
 * The segment is marked for removal as soon as it is attached; the set is
 * removed by the client's release, or by its reaper if the run is killed
 * (_sysv.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>

#include "_harness.h"
#include "_sysv.h"

enum { PING = 0, PONG = 1 };

struct state {
  int set;
  int reaper;
  char *data;
};

static int prepare(struct channel *channel) {
  struct state *s = malloc(sizeof *s);
  if (!s) return -1;
  s->data = sysv_shm_attach_new(channel->bytes);
  if (!s->data) return -1;
  s->set = sysv_sem_create(2); /* Linux starts every semaphore at 0 */
  if (s->set < 0) return -1;
  const enum sysv_kind kinds[] = {SYSV_SEM};
  s->reaper = sysv_reaper(kinds, &s->set, 1);
  if (s->reaper < 0) return -1;
  channel->state = s;
  return 0;
}

static int attach(struct channel *channel, enum side side) {
  (void)channel;
  (void)side;
  return 0;
}

static int change(int set, unsigned short index, short delta, int busy) {
  struct sembuf op = {
      .sem_num = index,
      .sem_op = delta,
      .sem_flg = (short)(busy && delta < 0 ? IPC_NOWAIT : 0),
  };
  for (;;) {
    if (semop(set, &op, 1) == 0) return 0;
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
  return change(s->set, side == CLIENT ? PING : PONG, 1, 0);
}

static int receive_message(struct channel *channel, enum side side, void *data,
                           size_t length) {
  struct state *s = channel->state;
  if (change(s->set, side == CLIENT ? PONG : PING, -1, channel->busy) < 0) {
    return -1;
  }
  memcpy(data, s->data, length);
  return 0;
}

static void release(struct channel *channel, enum side side) {
  struct state *s = channel->state;
  if (side != CLIENT) return;
  semctl(s->set, 0, IPC_RMID);
  sysv_reaped(s->reaper);
}

static const char *unavailable(void) { return sysv_unavailable(SYSV_SEM); }

const struct mechanism MECHANISM = {
    .name = "System V semaphores",
    .no_one_way = "one message slot and two semaphores: round trips only, as the ipckit rows",
    .unavailable = unavailable,
    .prepare = prepare,
    .attach = attach,
    .send = send_message,
    .receive = receive_message,
    .release = release,
};
