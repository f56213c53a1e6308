/*
 * Helpers for mechanisms that move bytes through file descriptors (pipes,
 * FIFOs, sockets): a mechanism fills channel->fd in prepare() and can use
 * these as its attach/send/receive/release.
 *
 * Layout: fd[side][0] is what that side reads, fd[side][1] what it writes;
 * a socket puts the same descriptor in both. -1 means none.
 */
#ifndef IPCKIT_BENCH_FD_H
#define IPCKIT_BENCH_FD_H

#include "_harness.h"

/** Closes the other side's descriptors; makes this side's non-blocking if busy. */
int fd_attach(struct channel *channel, enum side side);
/** A byte stream: writes all `length` bytes, however many calls it takes. */
int fd_stream_send(struct channel *channel, enum side side, const void *data,
                   size_t length);
/** A byte stream: reads exactly `length` bytes. */
int fd_stream_receive(struct channel *channel, enum side side, void *data,
                      size_t length);
/** A message socket: one send() per message. */
int fd_message_send(struct channel *channel, enum side side, const void *data,
                    size_t length);
/** A message socket: one recv() per message, which must be `length` long. */
int fd_message_receive(struct channel *channel, enum side side, void *data,
                       size_t length);
/** Closes this side's descriptors. */
void fd_release(struct channel *channel, enum side side);

#endif
