/**
 * The one table of C functions ipckit calls, with each C prototype beside it.
 *
 * Types follow Linux x86_64/aarch64 (LP64): `int` is i32, `long`, `size_t`,
 * `ssize_t` and `off_t` are 64-bit, and 64-bit values cross as `bigint`.
 * Symbols that some supported platform lacks are `optional`: they load as
 * `null` there and {@link import("./c.ts").requireSymbol} turns that into a
 * clear `NotSupported` error.
 *
 * Variadic functions (`open`, `openat`, `mq_open`, `sem_open`, `fcntl`, `semctl`, `syscall`) are declared with
 * fixed parameters. That is only sound where variadic and fixed integer and
 * pointer arguments are passed the same way, which holds on x86_64 and aarch64
 * Linux; on aarch64 macOS variadic arguments go on the stack, so those
 * declarations must not be used there as they are.
 *
 * @module
 */

export const LIBC_SYMBOLS = {
  // int *__errno_location(void); glibc and musl
  __errno_location: { parameters: [], result: "pointer", optional: true },
  // int *__error(void); macOS
  __error: { parameters: [], result: "pointer", optional: true },
  // pid_t getpid(void);
  getpid: { parameters: [], result: "i32" },
  // uid_t getuid(void);
  getuid: { parameters: [], result: "u32" },
  // uid_t geteuid(void);  the uid the kernel checks permissions against
  geteuid: { parameters: [], result: "u32" },
  // int kill(pid_t pid, int sig);
  kill: { parameters: ["i32", "i32"], result: "i32" },

  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count);
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // ssize_t write(int fd, const void *buf, size_t count);
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int open(const char *path, int flags, ... /* mode_t mode */);  variadic, see above
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  // int openat(int dirfd, const char *path, int flags, ... /* mode_t mode */);  variadic, see above
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  // int fcntl(int fd, int cmd, ... /* int arg */);  variadic, see above
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int pipe(int pipefd[2]);
  pipe: { parameters: ["buffer"], result: "i32" },
  // int pipe2(int pipefd[2], int flags);  Linux only
  pipe2: { parameters: ["buffer", "i32"], result: "i32", optional: true },
  // int mkfifo(const char *path, mode_t mode);
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  // int mkfifoat(int dirfd, const char *path, mode_t mode);
  mkfifoat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int unlinkat(int dirfd, const char *path, int flags);
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  // int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
  renameat: {
    parameters: ["i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  // int renameat2(int olddirfd, const char *oldpath, int newdirfd,
  //               const char *newpath, unsigned int flags);  glibc >= 2.28, Linux only
  renameat2: {
    parameters: ["i32", "buffer", "i32", "buffer", "u32"],
    result: "i32",
    optional: true,
  },
  // ssize_t readlink(const char *path, char *buf, size_t size);  no NUL is added
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  // int fstatat(int dirfd, const char *path, struct stat *st, int flags);  glibc >= 2.33 and musl export it
  fstatat: {
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
    optional: true,
  },
  // int fstat(int fd, struct stat *st);  glibc >= 2.33 and musl export it
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  // int lstat(const char *path, struct stat *st);  glibc >= 2.33 and musl export it
  lstat: { parameters: ["buffer", "buffer"], result: "i32", optional: true },
  // int stat(const char *path, struct stat *st);  glibc >= 2.33 and musl export it
  stat: { parameters: ["buffer", "buffer"], result: "i32", optional: true },
  // int statfs(const char *path, struct statfs *buf);  Linux layout, see c.ts
  statfs: { parameters: ["buffer", "buffer"], result: "i32", optional: true },
  // DIR *opendir(const char *path);
  opendir: { parameters: ["buffer"], result: "pointer" },
  // struct dirent *readdir(DIR *dir);  NULL at the end (errno unchanged) or on error
  readdir: { parameters: ["pointer"], result: "pointer" },
  // int closedir(DIR *dir);
  closedir: { parameters: ["pointer"], result: "i32" },
  // int ftruncate(int fd, off_t length);
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  // int posix_fallocate(int fd, off_t offset, off_t len);  returns the error, not -1
  posix_fallocate: {
    parameters: ["i32", "i64", "i64"],
    result: "i32",
    optional: true,
  },
  // int fstatvfs(int fd, struct statvfs *buf);
  fstatvfs: { parameters: ["i32", "buffer"], result: "i32" },
  // int eventfd(unsigned int initval, int flags);  Linux only
  eventfd: { parameters: ["u32", "i32"], result: "i32", optional: true },
  // int clock_gettime(clockid_t clock, struct timespec *tp);
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },

  // int getrlimit(int resource, struct rlimit *rlim);
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  // int setrlimit(int resource, const struct rlimit *rlim);
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  // const char *gnu_get_libc_version(void);  glibc only: how ffi/glibc_sem.ts tells glibc
  gnu_get_libc_version: { parameters: [], result: "pointer", optional: true },

  // pid_t getppid(void);  how a child started by spawn() recognises its parent
  getppid: { parameters: [], result: "i32" },
  // char *getenv(const char *name);  NULL when unset; read-only, see ffi/socket.ts
  getenv: { parameters: ["buffer"], result: "pointer" },
  // int fchmod(int fd, mode_t mode);  on a socket before bind(): the file's mode
  fchmod: { parameters: ["i32", "u32"], result: "i32" },

  // Sockets (ffi/socket.ts). Linux: SOCK_NONBLOCK/SOCK_CLOEXEC and accept4.
  // int socket(int domain, int type, int protocol);
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int socketpair(int domain, int type, int protocol, int sv[2]);
  socketpair: {
    parameters: ["i32", "i32", "i32", "buffer"],
    result: "i32",
  },
  // int bind(int fd, const struct sockaddr *addr, socklen_t len);
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int listen(int fd, int backlog);
  listen: { parameters: ["i32", "i32"], result: "i32" },
  // int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);  Linux
  accept4: {
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
    optional: true,
  },
  // int connect(int fd, const struct sockaddr *addr, socklen_t len);
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int shutdown(int fd, int how);
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  // int getsockopt(int fd, int level, int name, void *value, socklen_t *len);
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  // int setsockopt(int fd, int level, int name, const void *value, socklen_t len);
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  // int getsockname(int fd, struct sockaddr *addr, socklen_t *len);
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int getpeername(int fd, struct sockaddr *addr, socklen_t *len);
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // ssize_t send(int fd, const void *buf, size_t len, int flags);
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  // ssize_t recv(int fd, void *buf, size_t len, int flags);
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  // ssize_t sendto(int fd, const void *buf, size_t len, int flags,
  //                const struct sockaddr *to, socklen_t tolen);
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  // ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
  //                  struct sockaddr *from, socklen_t *fromlen);
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  // int inet_pton(int af, const char *src, void *dst);  1, or 0 for no address of that family
  inet_pton: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // const char *inet_ntop(int af, const void *src, char *dst, socklen_t size);
  inet_ntop: {
    parameters: ["i32", "buffer", "buffer", "u32"],
    result: "pointer",
  },
  // ssize_t sendmsg(int fd, const struct msghdr *msg, int flags);
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  // ssize_t recvmsg(int fd, struct msghdr *msg, int flags);
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  // int memfd_create(const char *name, unsigned int flags);  glibc >= 2.27, musl >= 1.1.20
  memfd_create: {
    parameters: ["buffer", "u32"],
    result: "i32",
    optional: true,
  },
  // int getaddrinfo(const char *node, const char *service,
  //                 const struct addrinfo *hints, struct addrinfo **res);
  // On Deno's thread pool: a name lookup can take as long as DNS does. It
  // returns its error (EAI_*) instead of setting errno, so nothing is lost
  // on that thread, except for EAI_SYSTEM, which ipckit reports as such.
  getaddrinfo_nonblocking: {
    name: "getaddrinfo",
    parameters: ["buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  // void freeaddrinfo(struct addrinfo *res);
  freeaddrinfo: { parameters: ["pointer"], result: "void" },

  // int poll(struct pollfd *fds, nfds_t nfds, int timeout);
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  // The same poll() run on Deno's blocking thread pool: the reactor's
  // backend where there is no epoll (macOS). Its errno is unreadable there.
  poll_nonblocking: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },

  // int epoll_create1(int flags);  Linux only
  epoll_create1: { parameters: ["i32"], result: "i32", optional: true },
  // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
  epoll_ctl: {
    parameters: ["i32", "i32", "i32", "buffer"],
    result: "i32",
    optional: true,
  },
  // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
  // on Deno's thread pool: the one parked call of the reactor (mechanisms/_wait/reactor.ts)
  epoll_wait_nonblocking: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
    optional: true,
  },
  // long syscall(long number, ...);  variadic, see above. Declared once per
  // use with that use's fixed arguments (Linux; see ffi/futex.ts):
  // syscall(SYS_futex_waitv, struct futex_waitv *waiters, unsigned nr, unsigned flags,
  //         struct timespec *timeout, clockid_t clock)
  syscall_futex_waitv: {
    name: "syscall",
    parameters: ["i64", "buffer", "u32", "u32", "pointer", "i32"],
    result: "i64",
    optional: true,
  },
  // The same on Deno's thread pool: one futex lane's parked wait.
  syscall_futex_waitv_nonblocking: {
    name: "syscall",
    parameters: ["i64", "buffer", "u32", "u32", "pointer", "i32"],
    result: "i64",
    nonblocking: true,
    optional: true,
  },
  // syscall(SYS_futex, uint32_t *uaddr, int op, uint32_t val, timespec *t, uint32_t *uaddr2, uint32_t val3)
  syscall_futex_wake: {
    name: "syscall",
    parameters: ["i64", "pointer", "i32", "u32", "pointer", "pointer", "u32"],
    result: "i64",
    optional: true,
  },
  // The same, as FUTEX_WAIT with a relative timeout (NULL: none): blocks
  // the calling thread (the *Sync waits on a shared word).
  syscall_futex_wait: {
    name: "syscall",
    parameters: ["i64", "pointer", "i32", "u32", "buffer", "pointer", "u32"],
    result: "i64",
    optional: true,
  },

  // mqd_t mq_open(const char *name, int oflag, ... /* mode_t mode, struct mq_attr *attr */);
  // variadic, see above; mqd_t is an int descriptor on Linux
  mq_open: {
    parameters: ["buffer", "i32", "u32", "buffer"],
    result: "i32",
    optional: true,
  },
  // int mq_close(mqd_t mqdes);
  mq_close: { parameters: ["i32"], result: "i32", optional: true },
  // int mq_unlink(const char *name);
  mq_unlink: { parameters: ["buffer"], result: "i32", optional: true },
  // int mq_send(mqd_t mqdes, const char *msg, size_t len, unsigned int prio);
  mq_send: {
    parameters: ["i32", "buffer", "usize", "u32"],
    result: "i32",
    optional: true,
  },
  // ssize_t mq_receive(mqd_t mqdes, char *msg, size_t len, unsigned int *prio);
  mq_receive: {
    parameters: ["i32", "buffer", "usize", "buffer"],
    result: "isize",
    optional: true,
  },
  // int mq_getattr(mqd_t mqdes, struct mq_attr *attr);
  mq_getattr: { parameters: ["i32", "buffer"], result: "i32", optional: true },

  // int shm_open(const char *name, int oflag, mode_t mode);
  shm_open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  // int shm_unlink(const char *name);
  shm_unlink: { parameters: ["buffer"], result: "i32" },
  // void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "pointer",
  },
  // int munmap(void *addr, size_t len);
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  // int msync(void *addr, size_t len, int flags);
  msync: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  // int madvise(void *addr, size_t len, int advice);
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },

  // key_t ftok(const char *path, int proj_id);
  ftok: { parameters: ["buffer", "i32"], result: "i32" },
  // int msgget(key_t key, int msgflg);
  msgget: { parameters: ["i32", "i32"], result: "i32" },
  // int msgsnd(int msqid, const void *msgp, size_t msgsz, int msgflg);  msgp: { long mtype; char mtext[]; }
  msgsnd: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  // ssize_t msgrcv(int msqid, void *msgp, size_t msgsz, long msgtyp, int msgflg);
  msgrcv: {
    parameters: ["i32", "buffer", "usize", "i64", "i32"],
    result: "isize",
  },
  // int msgctl(int msqid, int cmd, struct msqid_ds *buf);
  msgctl: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  // int shmget(key_t key, size_t size, int shmflg);
  shmget: { parameters: ["i32", "usize", "i32"], result: "i32" },
  // void *shmat(int shmid, const void *shmaddr, int shmflg);  (void *) -1 on failure
  shmat: { parameters: ["i32", "pointer", "i32"], result: "pointer" },
  // int shmdt(const void *shmaddr);
  shmdt: { parameters: ["pointer"], result: "i32" },
  // int shmctl(int shmid, int cmd, struct shmid_ds *buf);
  shmctl: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  // int semget(key_t key, int nsems, int semflg);
  semget: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int semtimedop(int semid, struct sembuf *sops, size_t nsops, const struct timespec *timeout);
  // (semop(2) is semtimedop with a NULL timeout)
  semtimedop: {
    parameters: ["i32", "buffer", "usize", "buffer"],
    result: "i32",
    optional: true,
  },
  // int semop(int semid, struct sembuf *sops, size_t nsops);
  semop: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  // int semctl(int semid, int semnum, int cmd, ... /* union semun arg */);  variadic, see
  // above; the union (an int, or a pointer) travels as one 64-bit register
  semctl: { parameters: ["i32", "i32", "i32", "u64"], result: "i32" },
  // The same call for the commands whose union member is a pointer (IPC_STAT, GETALL, SETALL).
  semctl_buffer: {
    name: "semctl",
    parameters: ["i32", "i32", "i32", "buffer"],
    result: "i32",
  },
  // int fcntl(int fd, int cmd, ... /* struct flock *lock */);  variadic, see above:
  // the open-file-description lock commands (F_OFD_SETLK, F_OFD_GETLK, F_OFD_SETLKW)
  fcntl_lock: {
    name: "fcntl",
    parameters: ["i32", "i32", "buffer"],
    result: "i32",
  },

  // sem_t *sem_open(const char *name, int oflag, ... /* mode_t mode, unsigned value */);
  // variadic, see above
  sem_open: { parameters: ["buffer", "i32", "u32", "u32"], result: "pointer" },
  // int sem_close(sem_t *sem);
  sem_close: { parameters: ["pointer"], result: "i32" },
  // int sem_unlink(const char *name);
  sem_unlink: { parameters: ["buffer"], result: "i32" },
  // int sem_init(sem_t *sem, int pshared, unsigned value);  absent in effect on macOS
  sem_init: { parameters: ["pointer", "i32", "u32"], result: "i32" },
  // int sem_destroy(sem_t *sem);
  sem_destroy: { parameters: ["pointer"], result: "i32" },
  // int sem_post(sem_t *sem);
  sem_post: { parameters: ["pointer"], result: "i32" },
  // int sem_wait(sem_t *sem);
  sem_wait: { parameters: ["pointer"], result: "i32" },
  // int sem_trywait(sem_t *sem);
  sem_trywait: { parameters: ["pointer"], result: "i32" },
  // int sem_getvalue(sem_t *sem, int *sval);
  sem_getvalue: { parameters: ["pointer", "buffer"], result: "i32" },
  // int sem_timedwait(sem_t *sem, const struct timespec *abstime);  CLOCK_REALTIME
  sem_timedwait: {
    parameters: ["pointer", "buffer"],
    result: "i32",
    optional: true,
  },
  // int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime);  glibc >= 2.30
  sem_clockwait: {
    parameters: ["pointer", "i32", "buffer"],
    result: "i32",
    optional: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;
