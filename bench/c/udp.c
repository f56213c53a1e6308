/* Two UDP sockets on 127.0.0.1, each connected to the other. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "_fd.h"

static int bound(struct sockaddr_in *address) {
  socklen_t length = sizeof *address;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address->sin_port = 0;
  if (bind(fd, (struct sockaddr *)address, sizeof *address) < 0 ||
      getsockname(fd, (struct sockaddr *)address, &length) < 0) {
    return -1;
  }
  return fd;
}

static int prepare(struct channel *channel) {
  struct sockaddr_in client, server;
  int c = bound(&client), s = bound(&server);
  if (c < 0 || s < 0 ||
      connect(c, (struct sockaddr *)&server, sizeof server) < 0 ||
      connect(s, (struct sockaddr *)&client, sizeof client) < 0) {
    return -1;
  }
  channel->fd[CLIENT][0] = channel->fd[CLIENT][1] = c;
  channel->fd[SERVER][0] = channel->fd[SERVER][1] = s;
  return 0;
}

const struct mechanism MECHANISM = {
    .name = "UDP",
    .max_bytes = 65507,
    .why_not = "a UDP datagram carries at most 65507 bytes over IPv4",
    .prepare = prepare,
    .attach = fd_attach,
    .send = fd_message_send,
    .receive = fd_message_receive,
    .release = fd_release,
};
