/* A connected pair of Unix datagram sockets. */
#include <sys/socket.h>

#include "_fd.h"

static int prepare(struct channel *channel) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) < 0) return -1;
  channel->fd[CLIENT][0] = channel->fd[CLIENT][1] = pair[0];
  channel->fd[SERVER][0] = channel->fd[SERVER][1] = pair[1];
  return 0;
}

const struct mechanism MECHANISM = {
    .name = "Unix datagram",
    /* A datagram must fit in the socket's send buffer (wmem_default, ~208 KiB). */
    .max_bytes = 64 * 1024,
    .why_not = "this harness sends at most 64 KiB per Unix datagram",
    .prepare = prepare,
    .attach = fd_attach,
    .send = fd_message_send,
    .receive = fd_message_receive,
    .release = fd_release,
};
