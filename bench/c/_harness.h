/*
 * The C limit of the benchmark: what one IPC mechanism costs when both ends
 * are plain C, on the same machine, in the same run as the ipckit rows.
 *
 * A mechanism is one .c file that defines `const struct mechanism MECHANISM`
 * and is registered in bench/transports/c.ts. The driver compiles it with
 * _harness.c and _fd.c into a program that measures it (see _harness.c for
 * the command line and the output). The harness owns processes, timing,
 * CPU clocks and the output; a mechanism owns only its channel: create it,
 * attach each side, move one message, release it.
 *
 * Every mechanism comes in two waiting policies, chosen at run time:
 * - blocking: a side that has nothing to read (or no room to write) sleeps
 *   in the kernel, as C code usually does;
 * - busy: it never sleeps, it retries a non-blocking call (or re-reads a
 *   word of shared memory) until it succeeds. This is the fastest a round
 *   trip can be, paid for with a whole core per waiting process.
 */
#ifndef IPCKIT_BENCH_HARNESS_H
#define IPCKIT_BENCH_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

/** Which end of a pair: the client times round trips, the server answers. */
enum side { CLIENT = 0, SERVER = 1 };

/** One channel between a client and its server, as a mechanism sees it. */
struct channel {
  /** Nonzero: busy-wait; zero: block in the kernel. */
  int busy;
  /** The largest message this run sends (its message size). */
  size_t bytes;
  /** Which pair this is (0 .. pairs-1), to make names unique. */
  int index;
  /** A private directory for file names (FIFOs), made by the driver. */
  const char *scratch;
  /** Descriptors a mechanism may use; [side][0] reads, [side][1] writes. */
  int fd[2][2];
  /** Anything else the mechanism keeps (a mapping, names). */
  void *state;
};

/** What a mechanism file provides. Every function returns 0 or -1 (errno). */
struct mechanism {
  /** Short name, as in the driver's row label ("pipe", "Unix stream"). */
  const char *name;
  /**
   * The largest message it can carry in one piece, or 0 for any size; a
   * larger one is reported as unsupported with `why_not`.
   */
  size_t max_bytes;
  const char *why_not;
  /** Set when it cannot measure one-way bursts: why not. */
  const char *no_one_way;
  /**
   * Optional: why this machine cannot run the mechanism at all (a kernel
   * without it), or NULL when it can; asked before anything is measured,
   * and reported as unsupported.
   */
  const char *(*unavailable)(void);
  /** Creates the channel, before the server is forked. */
  int (*prepare)(struct channel *channel);
  /** Runs in each process after the fork: keep this side's ends only. */
  int (*attach)(struct channel *channel, enum side side);
  /** Sends exactly `length` bytes as one message. */
  int (*send)(struct channel *channel, enum side side, const void *data,
              size_t length);
  /** Receives one message of exactly `length` bytes. */
  int (*receive)(struct channel *channel, enum side side, void *data,
                 size_t length);
  /** Releases this side's resources (the client also removes names). */
  void (*release)(struct channel *channel, enum side side);
};

/** The mechanism this program measures, defined by its .c file. */
extern const struct mechanism MECHANISM;

/** Stops the program with a message naming the failed call (errno set). */
void fail(const char *what) __attribute__((noreturn));

/** A hint to the CPU that this is a spin-wait loop. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

#endif
