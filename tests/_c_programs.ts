/**
 * Small C programs the semaphore tests compile with `cc` into a temporary
 * directory: peers that use glibc's own semaphore code, and a shim that
 * shifts what `clock_gettime(CLOCK_REALTIME)` answers.
 *
 * @module
 */

import { commandSucceeds } from "./_helpers.ts";

/** `sem_post <name>`: opens the named semaphore and posts it once. */
const SEM_POST = `
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
int main(int argc, char **argv) {
  sem_t *sem = sem_open(argv[1], 0);
  if (sem == SEM_FAILED) { perror("sem_open"); return 1; }
  if (sem_post(sem) != 0) { perror("sem_post"); return 1; }
  return 0;
}
`;

/**
 * `sem_wait <name> <ms>`: sleeps in glibc's sem_timedwait for up to <ms>,
 * and prints "took" or "timed out".
 */
const SEM_WAIT = `
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
  sem_t *sem = sem_open(argv[1], 0);
  if (sem == SEM_FAILED) { perror("sem_open"); return 1; }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  long ms = atol(argv[2]);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
  printf("waiting\\n");
  fflush(stdout);
  int result;
  while ((result = sem_timedwait(sem, &until)) != 0 && errno == EINTR) {}
  printf(result == 0 ? "took\\n" : "timed out\\n");
  return 0;
}
`;

/**
 * A library that stands in for the C library (through IPCKIT_LIBC): every
 * symbol comes from libc, except clock_gettime, which adds
 * SHIM_REALTIME_OFFSET seconds to CLOCK_REALTIME, as a wall-clock step
 * would. Calls made inside libc are not affected.
 */
const CLOCK_SHIM = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
int clock_gettime(clockid_t clock, struct timespec *ts) {
  static int (*real)(clockid_t, struct timespec *);
  if (!real) real = (int (*)(clockid_t, struct timespec *)) dlsym(RTLD_NEXT, "clock_gettime");
  int result = real(clock, ts);
  const char *offset = getenv("SHIM_REALTIME_OFFSET");
  if (result == 0 && clock == CLOCK_REALTIME && offset) ts->tv_sec += atol(offset);
  return result;
}
`;

/** Paths of the compiled programs. */
export interface CPrograms {
  semPost: string;
  semWait: string;
  clockShim: string;
}

/** Whether a C compiler is there; tests that need one are ignored otherwise. */
export const hasCompiler: boolean = await commandSucceeds("cc", ["--version"]);

/** Compiles the programs into `dir`. */
export async function compileCPrograms(dir: string): Promise<CPrograms> {
  const build = async (name: string, source: string, shared: boolean) => {
    const file = `${dir}/${name}.c`;
    const out = `${dir}/${name}${shared ? ".so" : ""}`;
    await Deno.writeTextFile(file, source);
    const args = shared
      ? ["-shared", "-fPIC", "-o", out, file, "-ldl"]
      : ["-o", out, file, "-pthread"];
    const { success, stderr } = await new Deno.Command("cc", {
      args,
      stderr: "piped",
    }).output();
    if (!success) {
      throw new Error(
        `cc ${name}.c failed: ${new TextDecoder().decode(stderr)}`,
      );
    }
    return out;
  };
  return {
    semPost: await build("sem_post", SEM_POST, false),
    semWait: await build("sem_wait", SEM_WAIT, false),
    clockShim: await build("clock_shim", CLOCK_SHIM, true),
  };
}
