/*
 * System V objects for sysv_msg.c and sysv_sem.c: creation under the
 * benchmark's keys, and a reaper that removes them however the run ends.
 *
 * A POSIX queue or region is unlinked as soon as both processes hold it,
 * so a killed run leaves nothing. A System V queue or semaphore set cannot
 * be: IPC_RMID destroys it at once, under the processes that use it. So
 * prepare() forks a reaper per channel: a process that holds the ids and
 * reads a pipe whose write end only the client and the server hold. When
 * both are gone, however they ended (SIGKILL, the harness's alarm, a
 * Ctrl-C), the read sees end-of-file and the reaper removes what is still
 * there; a normal release removes the objects itself and tells the reaper
 * so first. The reaper ignores the signals a terminal sends to the whole
 * process group, so a Ctrl-C cannot take it down with the others.
 *
 * A shared memory segment needs no reaper: it is marked for removal right
 * after it is attached (the fork hands the attachment to the server), and
 * the kernel removes it when the last process detaches or dies.
 *
 * Keys carry SYSV_KEY_TAG in their high half, so `ipcs` says whose an
 * object is and a test can look for leftovers; each is created exclusively
 * (IPC_EXCL), the next key tried where one is taken.
 */
#ifndef IPCKIT_BENCH_SYSV_H
#define IPCKIT_BENCH_SYSV_H

#include <stddef.h>

/** The high 16 bits of every key the C programs use (bench/transports/sysv.ts knows it). */
#define SYSV_KEY_TAG 0x1bc0

enum sysv_kind { SYSV_MSG, SYSV_SEM };

/** A new queue under a free key, mode 0600; -1 with errno on failure. */
int sysv_msg_create(void);
/** A new set of `count` semaphores (all 0), mode 0600; -1 with errno. */
int sysv_sem_create(int count);
/**
 * A new segment of `size` bytes, attached and already marked for removal;
 * NULL with errno on failure.
 */
void *sysv_shm_attach_new(size_t size);

/**
 * Forks the reaper of `count` objects (kinds[i], ids[i]); returns the write
 * end of its pipe, for sysv_reaped(), or -1 with errno.
 */
int sysv_reaper(const enum sysv_kind *kinds, const int *ids, int count);
/** Tells the reaper at `fd` that the objects are removed, and closes it. */
void sysv_reaped(int fd);

/**
 * Why System V message queues (`SYSV_MSG`) or semaphore sets and shared
 * memory (`SYSV_SEM`) cannot be used here, or NULL when they can.
 */
const char *sysv_unavailable(enum sysv_kind kind);

#endif
