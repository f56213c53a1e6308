/* Two anonymous pipes between a parent and the child it forks. */
#include <unistd.h>

#include "_fd.h"

static int prepare(struct channel *channel) {
  int there[2], back[2];
  if (pipe(there) < 0 || pipe(back) < 0) return -1;
  channel->fd[CLIENT][0] = back[0];
  channel->fd[CLIENT][1] = there[1];
  channel->fd[SERVER][0] = there[0];
  channel->fd[SERVER][1] = back[1];
  return 0;
}

const struct mechanism MECHANISM = {
    .name = "pipe",
    .prepare = prepare,
    .attach = fd_attach,
    .send = fd_stream_send,
    .receive = fd_stream_receive,
    .release = fd_release,
};
