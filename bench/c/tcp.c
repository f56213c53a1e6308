/*
 * TCP over 127.0.0.1 with Nagle off on both ends: the server's listening
 * socket is bound to an ephemeral port before the fork; the client
 * connects after it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "_fd.h"

static struct sockaddr_in address;

static int prepare(struct channel *channel) {
  socklen_t length = sizeof address;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) return -1;
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
      listen(listener, 1) < 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) < 0) {
    return -1;
  }
  channel->fd[SERVER][0] = channel->fd[SERVER][1] = listener;
  return 0;
}

static int no_delay(int fd) {
  int on = 1;
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static int attach(struct channel *channel, enum side side) {
  int fd;
  if (side == SERVER) {
    int listener = channel->fd[SERVER][0];
    fd = accept(listener, NULL, NULL);
    close(listener);
  } else {
    close(channel->fd[SERVER][0]);
    channel->fd[SERVER][0] = channel->fd[SERVER][1] = -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 &&
        connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
      return -1;
    }
  }
  if (fd < 0 || no_delay(fd) < 0) return -1;
  channel->fd[side][0] = channel->fd[side][1] = fd;
  return fd_attach(channel, side);
}

const struct mechanism MECHANISM = {
    .name = "TCP",
    .prepare = prepare,
    .attach = attach,
    .send = fd_stream_send,
    .receive = fd_stream_receive,
    .release = fd_release,
};
