/*
 * A POSIX shared memory region for the shared memory mechanisms: created
 * with shm_open, mapped, and unlinked at once (the fork hands the mapping to
 * the server), so nothing is left behind. Control words sit on their own
 * cache lines; the message starts at SHM_DATA.
 */
#ifndef IPCKIT_BENCH_SHARED_MEMORY_H
#define IPCKIT_BENCH_SHARED_MEMORY_H

#include "_harness.h"

/** Where the message bytes start in the region. */
#define SHM_DATA 256

/** Maps a fresh region of SHM_DATA + channel->bytes bytes, or returns NULL. */
void *shared_region(struct channel *channel);

#endif
