/*
 * Two FIFOs (named pipes) in the scratch directory, opened by name on each
 * side after the fork, in the same order on both sides so neither open
 * waits for the other forever. The client removes the names when done.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "_fd.h"

struct names {
  char there[512], back[512];
};

static int prepare(struct channel *channel) {
  struct names *names = malloc(sizeof *names);
  if (!names) return -1;
  snprintf(names->there, sizeof names->there, "%s/fifo-%d-%d-there",
           channel->scratch, (int)getpid(), channel->index);
  snprintf(names->back, sizeof names->back, "%s/fifo-%d-%d-back",
           channel->scratch, (int)getpid(), channel->index);
  if (mkfifo(names->there, 0600) < 0 || mkfifo(names->back, 0600) < 0) {
    return -1;
  }
  channel->state = names;
  return 0;
}

static int attach(struct channel *channel, enum side side) {
  struct names *names = channel->state;
  /* Both sides open "there" first: each open returns once the other end is open. */
  int there = open(names->there, side == CLIENT ? O_WRONLY : O_RDONLY);
  if (there < 0) return -1;
  int back = open(names->back, side == CLIENT ? O_RDONLY : O_WRONLY);
  if (back < 0) return -1;
  channel->fd[side][0] = side == CLIENT ? back : there;
  channel->fd[side][1] = side == CLIENT ? there : back;
  return fd_attach(channel, side);
}

static void release(struct channel *channel, enum side side) {
  struct names *names = channel->state;
  fd_release(channel, side);
  if (side == CLIENT) {
    unlink(names->there);
    unlink(names->back);
  }
}

const struct mechanism MECHANISM = {
    .name = "FIFO",
    .prepare = prepare,
    .attach = attach,
    .send = fd_stream_send,
    .receive = fd_stream_receive,
    .release = release,
};
