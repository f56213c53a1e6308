/* System V objects and their reaper (see _sysv.h). */
#include "_sysv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

/** The i-th key to try: the tag, and a start that differs per process. */
static key_t key_at(unsigned i) {
  unsigned start = (unsigned)getpid() * 2654435761u >> 16;
  return (key_t)(((unsigned)SYSV_KEY_TAG << 16) | ((start + i) & 0xffffu));
}

/* Tries keys until `get` succeeds or fails for a reason other than EEXIST. */
#define CREATE_UNDER_FREE_KEY(call)                  \
  for (unsigned i = 0; i < 0x10000u; i++) {          \
    key_t key = key_at(i);                           \
    int id = (call);                                 \
    if (id >= 0 || errno != EEXIST) return id;       \
  }                                                  \
  errno = EEXIST;                                    \
  return -1

int sysv_msg_create(void) {
  CREATE_UNDER_FREE_KEY(msgget(key, IPC_CREAT | IPC_EXCL | 0600));
}

int sysv_sem_create(int count) {
  CREATE_UNDER_FREE_KEY(semget(key, count, IPC_CREAT | IPC_EXCL | 0600));
}

static int shm_create(size_t size) {
  CREATE_UNDER_FREE_KEY(shmget(key, size, IPC_CREAT | IPC_EXCL | 0600));
}

void *sysv_shm_attach_new(size_t size) {
  int id = shm_create(size);
  if (id < 0) return NULL;
  void *region = shmat(id, NULL, 0);
  int saved = errno;
  shmctl(id, IPC_RMID, NULL);
  errno = saved;
  return region == (void *)-1 ? NULL : region;
}

static void remove_object(enum sysv_kind kind, int id) {
  if (kind == SYSV_MSG) msgctl(id, IPC_RMID, NULL);
  else semctl(id, 0, IPC_RMID);
}

int sysv_reaper(const enum sysv_kind *kinds, const int *ids, int count) {
  int ends[2];
  if (pipe(ends) < 0) return -1;
  pid_t reaper = fork();
  if (reaper < 0) return -1;
  if (reaper == 0) {
    static const int ignored[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE};
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++) {
      signal(ignored[i], SIG_IGN);
    }
    close(ends[1]);
    /* Hold no one's output open: the driver reads the harness's stdout to its end. */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      if (null > 2) close(null);
    }
    char done;
    ssize_t n;
    while ((n = read(ends[0], &done, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) {
      for (int i = 0; i < count; i++) remove_object(kinds[i], ids[i]);
    }
    _exit(0);
  }
  close(ends[0]);
  return ends[1];
}

void sysv_reaped(int fd) {
  char done = 1;
  while (write(fd, &done, 1) < 0 && errno == EINTR) {
  }
  close(fd);
}

const char *sysv_unavailable(enum sysv_kind kind) {
  static char why[160];
  const char *call = kind == SYSV_MSG ? "msgget" : "semget";
  int id = kind == SYSV_MSG ? msgget(IPC_PRIVATE, 0600)
                            : semget(IPC_PRIVATE, 1, 0600);
  if (id >= 0) {
    remove_object(kind, id);
    if (kind == SYSV_MSG) return NULL;
    call = "shmget";
    id = shmget(IPC_PRIVATE, 4096, 0600);
    if (id >= 0) {
      shmctl(id, IPC_RMID, NULL);
      return NULL;
    }
  }
  snprintf(why, sizeof why, "System V IPC is not available here: %s(IPC_PRIVATE) failed: %s%s",
           call, strerror(errno),
           errno == ENOSYS ? " (a kernel built without CONFIG_SYSVIPC)" : "");
  return why;
}
