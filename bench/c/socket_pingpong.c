/*
 * The limit for ipckit's socket rows: a ping-pong in C over the same kind
 * of socket, on the same machine, in the same run.
 *
 *   socket_pingpong server unix|seqpacket|tcp <path|port> busy|block
 *   socket_pingpong client unix|seqpacket|tcp <path|port> busy|block <count> <bytes>
 *
 * The server accepts one connection and echoes every message. The client
 * makes <count> round trips of <bytes> and prints each one's time in
 * nanoseconds, one per line. "busy" spins on non-blocking descriptors
 * (recv returning EAGAIN), "block" sleeps in the kernel like a plain C
 * program. A TCP server prints the port it listens on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int busy;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static ssize_t full(int fd, char *buffer, size_t length, int sending, int packet) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = sending ? send(fd, buffer + done, length - done, MSG_NOSIGNAL)
                        : recv(fd, buffer + done, length - done, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      die(sending ? "send" : "recv");
    }
    if (n == 0 && !sending) return 0;
    done += (size_t)n;
    if (packet) break;
  }
  return (ssize_t)done;
}

static int make(const char *kind) {
  int type = strcmp(kind, "seqpacket") == 0 ? SOCK_SEQPACKET : SOCK_STREAM;
  int domain = strcmp(kind, "tcp") == 0 ? AF_INET : AF_UNIX;
  int fd = socket(domain, type | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  return fd;
}

static socklen_t address(const char *kind, const char *where, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (strcmp(kind, "tcp") == 0) {
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    in->sin_family = AF_INET;
    in->sin_port = htons((unsigned short)atoi(where));
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *in;
  }
  struct sockaddr_un *un = (struct sockaddr_un *)out;
  un->sun_family = AF_UNIX;
  strncpy(un->sun_path, where, sizeof un->sun_path - 1);
  return sizeof *un;
}

static void tune(int fd, const char *kind) {
  if (strcmp(kind, "tcp") == 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (busy) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int compare(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s server|client unix|seqpacket|tcp <where> busy|block [count bytes]\n", argv[0]);
    return 2;
  }
  const char *role = argv[1], *kind = argv[2], *where = argv[3];
  busy = strcmp(argv[4], "busy") == 0;
  int packet = strcmp(kind, "seqpacket") == 0;
  struct sockaddr_storage addr;
  socklen_t length = address(kind, where, &addr);
  char buffer[1 << 16];
  if (strcmp(role, "server") == 0) {
    int listener = make(kind);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&addr, length) < 0) die("bind");
    if (listen(listener, 1) < 0) die("listen");
    if (strcmp(kind, "tcp") == 0) {
      struct sockaddr_in bound;
      socklen_t size = sizeof bound;
      getsockname(listener, (struct sockaddr *)&bound, &size);
      printf("%d\n", ntohs(bound.sin_port));
    } else {
      printf("ready\n");
    }
    fflush(stdout);
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) die("accept");
    tune(fd, kind);
    /* The first message says how long every message is. */
    unsigned int bytes;
    if (full(fd, (char *)&bytes, sizeof bytes, 0, 0) <= 0) return 0;
    if (bytes > sizeof buffer) return 3;
    for (;;) {
      ssize_t n = full(fd, buffer, bytes, 0, packet);
      if (n <= 0) break;
      full(fd, buffer, (size_t)n, 1, packet);
    }
    if (strcmp(kind, "tcp") != 0) unlink(where);
    return 0;
  }
  int count = atoi(argv[5]);
  unsigned int bytes = (unsigned int)atoi(argv[6]);
  if (bytes > sizeof buffer) return 3;
  int fd = make(kind);
  if (connect(fd, (struct sockaddr *)&addr, length) < 0) die("connect");
  tune(fd, kind);
  full(fd, (char *)&bytes, sizeof bytes, 1, 0);
  memset(buffer, 0x5a, bytes);
  long long *times = calloc((size_t)count, sizeof *times);
  for (int i = 0; i < count; i++) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    full(fd, buffer, bytes, 1, packet);
    if (full(fd, buffer, bytes, 0, packet) <= 0) die("the server hung up");
    clock_gettime(CLOCK_MONOTONIC, &end);
    times[i] = (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
  }
  close(fd);
  for (int i = 0; i < count; i++) printf("%lld\n", times[i]);
  return 0;
}
