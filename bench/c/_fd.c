/* Descriptor helpers shared by the pipe, FIFO and socket mechanisms. */
#include "_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static void close_once(struct channel *channel, enum side side) {
  int reads = channel->fd[side][0], writes = channel->fd[side][1];
  if (reads >= 0) close(reads);
  if (writes >= 0 && writes != reads) close(writes);
  channel->fd[side][0] = channel->fd[side][1] = -1;
}

int fd_attach(struct channel *channel, enum side side) {
  close_once(channel, side == CLIENT ? SERVER : CLIENT);
  if (!channel->busy) return 0;
  for (int i = 0; i < 2; i++) {
    int fd = channel->fd[side][i];
    if (fd < 0) continue;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -1;
  }
  return 0;
}

/*
 * One call, retried: on EINTR always, on EAGAIN only when busy (a blocking
 * descriptor never returns it). Busy-waiting is exactly this loop.
 */
static int retry(ssize_t result, int busy) {
  if (result >= 0) return 0;
  if (errno == EINTR) return 1;
  if (busy && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    cpu_relax();
    return 1;
  }
  return -1;
}

int fd_stream_send(struct channel *channel, enum side side, const void *data,
                   size_t length) {
  const char *at = data;
  while (length > 0) {
    ssize_t n = write(channel->fd[side][1], at, length);
    int again = retry(n, channel->busy);
    if (again < 0) return -1;
    if (again) continue;
    at += n;
    length -= (size_t)n;
  }
  return 0;
}

int fd_stream_receive(struct channel *channel, enum side side, void *data,
                      size_t length) {
  char *at = data;
  while (length > 0) {
    ssize_t n = read(channel->fd[side][0], at, length);
    int again = retry(n, channel->busy);
    if (again < 0) return -1;
    if (again) continue;
    if (n == 0) {
      errno = EPIPE;
      return -1;
    }
    at += n;
    length -= (size_t)n;
  }
  return 0;
}

int fd_message_send(struct channel *channel, enum side side, const void *data,
                    size_t length) {
  for (;;) {
    ssize_t n = send(channel->fd[side][1], data, length, MSG_NOSIGNAL);
    int again = retry(n, channel->busy);
    if (again < 0) return -1;
    if (again) continue;
    return (size_t)n == length ? 0 : (errno = EMSGSIZE, -1);
  }
}

int fd_message_receive(struct channel *channel, enum side side, void *data,
                       size_t length) {
  for (;;) {
    ssize_t n = recv(channel->fd[side][0], data, length, MSG_TRUNC);
    int again = retry(n, channel->busy);
    if (again < 0) return -1;
    if (again) continue;
    return (size_t)n == length ? 0 : (errno = EMSGSIZE, -1);
  }
}

void fd_release(struct channel *channel, enum side side) {
  close_once(channel, side);
}
