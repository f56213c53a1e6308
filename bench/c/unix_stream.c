/* A connected pair of Unix stream sockets (socketpair). */
#include <sys/socket.h>

#include "_fd.h"

static int prepare(struct channel *channel) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0) return -1;
  channel->fd[CLIENT][0] = channel->fd[CLIENT][1] = pair[0];
  channel->fd[SERVER][0] = channel->fd[SERVER][1] = pair[1];
  return 0;
}

const struct mechanism MECHANISM = {
    .name = "Unix stream",
    .prepare = prepare,
    .attach = fd_attach,
    .send = fd_stream_send,
    .receive = fd_stream_receive,
    .release = fd_release,
};
