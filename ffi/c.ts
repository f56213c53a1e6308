/**
 * C strings, structs and constants, per OS and architecture.
 *
 * @module
 */

import { type Libc, libc } from "./load.ts";

const _encoder = new TextEncoder();

/**
 * Encodes a string as a NUL-terminated C string, or copies bytes (a name
 * read from the kernel that is not UTF-8) and appends the NUL.
 */
export function cString(value: string | Uint8Array): Uint8Array<ArrayBuffer> {
  if (typeof value !== "string") {
    const bytes = new Uint8Array(value.length + 1);
    bytes.set(value);
    return bytes;
  }
  const bytes = new Uint8Array(_encoder.encode(value).length + 1);
  _encoder.encodeInto(value, bytes);
  return bytes;
}

/** The byte length of a string in UTF-8, which is what C and the kernel count. */
export function utf8Length(value: string): number {
  return _encoder.encode(value).length;
}

type _Symbols = Libc["symbols"];

/**
 * Returns a C function that may be missing on this platform, or throws a
 * `NotSupported` error naming the platform and the call.
 */
export function requireSymbol<K extends keyof _Symbols>(
  name: K,
): NonNullable<_Symbols[K]> {
  const symbol = libc().symbols[name];
  if (symbol === null || symbol === undefined) {
    throw new Deno.errors.NotSupported(
      `${
        String(name)
      }() is not available on ${Deno.build.os}/${Deno.build.arch}`,
    );
  }
  return symbol as NonNullable<_Symbols[K]>;
}

const _isDarwin = Deno.build.os === "darwin";
const _isAarch64 = Deno.build.arch === "aarch64";

/**
 * open(2)/mq_open(3)/shm_open(3) flags. aarch64 Linux moves O_NOFOLLOW and
 * O_DIRECTORY. macOS has no O_PATH: it is 0 there, and the code that needs it
 * refuses to run on macOS (see `ffi/dir_fd.ts`).
 */
export const O = _isDarwin
  ? {
    RDONLY: 0x0,
    WRONLY: 0x1,
    RDWR: 0x2,
    NONBLOCK: 0x4,
    CREAT: 0x200,
    EXCL: 0x800,
    NOFOLLOW: 0x100,
    DIRECTORY: 0x100000,
    PATH: 0,
    CLOEXEC: 0x1000000,
  } as const
  : {
    RDONLY: 0o0,
    WRONLY: 0o1,
    RDWR: 0o2,
    NONBLOCK: 0o4000,
    CREAT: 0o100,
    EXCL: 0o200,
    NOFOLLOW: _isAarch64 ? 0o100000 : 0o400000,
    DIRECTORY: _isAarch64 ? 0o40000 : 0o200000,
    PATH: 0o10000000,
    CLOEXEC: 0o2000000,
  } as const;

/** The `*at()` calls' special directory and flags. */
export const AT = _isDarwin
  ? { FDCWD: -2, SYMLINK_NOFOLLOW: 0x20 } as const
  : { FDCWD: -100, SYMLINK_NOFOLLOW: 0x100 } as const;

/** renameat2(2) flags (Linux). */
export const RENAME = { NOREPLACE: 1, EXCHANGE: 2 } as const;

/** poll(2) event bits (the same on Linux and macOS). */
export const POLL = {
  IN: 0x1,
  OUT: 0x4,
  ERR: 0x8,
  HUP: 0x10,
  NVAL: 0x20,
} as const;

/** Size of `struct pollfd { int fd; short events; short revents; }`. */
export const POLLFD_SIZE = 8;

/** eventfd(2) flags (Linux). */
export const EFD = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;

/** mmap(2)/msync(2) constants. */
export const MMAP = {
  PROT_READ: 0x1,
  PROT_WRITE: 0x2,
  MAP_SHARED: 0x1,
  MAP_PRIVATE: 0x2,
  MAP_FIXED: 0x10,
  MAP_ANONYMOUS: _isDarwin ? 0x1000 : 0x20,
  MAP_NORESERVE: _isDarwin ? 0x40 : 0x4000,
  MS_ASYNC: 0x1,
  MS_SYNC: _isDarwin ? 0x10 : 0x4,
  /**
   * madvise(2): fault every page in for reading now, and fail with EFAULT
   * where a touch would raise SIGBUS (Linux 5.14; EINVAL before; none on
   * macOS, where it is -1).
   */
  MADV_POPULATE_READ: _isDarwin ? -1 : 22,
} as const;

/** `(void *) -1`, what mmap(2) returns on failure. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

/**
 * Offsets in `struct statvfs` of the fields ipckit reads: the fragment size
 * and the blocks available to unprivileged users. Linux LP64 uses 64-bit
 * block counts; macOS uses 32-bit ones.
 */
export const STATVFS = _isDarwin
  ? { FRSIZE: 8, BAVAIL: 24, BLOCK_BYTES: 4, SIZE_OF: 64 } as const
  : { FRSIZE: 8, BAVAIL: 32, BLOCK_BYTES: 8, SIZE_OF: 112 } as const;

/**
 * `struct statfs` on LP64 Linux: `f_type` (a `long`) comes first; 120 bytes
 * in all. macOS lays it out differently and has no mqueue file system, so
 * nothing reads it there.
 */
export const STATFS = { TYPE: 0, SIZE_OF: 120 } as const;

/** `f_type` of the mqueue file system (linux/magic.h). */
export const MQUEUE_MAGIC = 0x19800202;

/**
 * Linux capability names by bit number (linux/capability.h), for saying
 * which capability a process holds that another lacks.
 */
export const CAPABILITY_NAMES: readonly string[] = [
  "cap_chown",
  "cap_dac_override",
  "cap_dac_read_search",
  "cap_fowner",
  "cap_fsetid",
  "cap_kill",
  "cap_setgid",
  "cap_setuid",
  "cap_setpcap",
  "cap_linux_immutable",
  "cap_net_bind_service",
  "cap_net_broadcast",
  "cap_net_admin",
  "cap_net_raw",
  "cap_ipc_lock",
  "cap_ipc_owner",
  "cap_sys_module",
  "cap_sys_rawio",
  "cap_sys_chroot",
  "cap_sys_ptrace",
  "cap_sys_pacct",
  "cap_sys_admin",
  "cap_sys_boot",
  "cap_sys_nice",
  "cap_sys_resource",
  "cap_sys_time",
  "cap_sys_tty_config",
  "cap_mknod",
  "cap_lease",
  "cap_audit_write",
  "cap_audit_control",
  "cap_setfcap",
  "cap_mac_override",
  "cap_mac_admin",
  "cap_syslog",
  "cap_wake_alarm",
  "cap_block_suspend",
  "cap_audit_read",
  "cap_perfmon",
  "cap_bpf",
  "cap_checkpoint_restore",
];

/** Clock ids for clock_gettime(2) and sem_clockwait(3). */
export const CLOCK = {
  REALTIME: 0,
  MONOTONIC: _isDarwin ? 6 : 1,
} as const;

/** fcntl(2) commands and flags. */
export const FCNTL = {
  F_SETFD: 2,
  FD_CLOEXEC: 1,
  F_GETFL: 3,
  F_SETFL: 4,
  F_DUPFD_CLOEXEC: 1030,
  F_GETPIPE_SZ: 1032,
  F_SETPIPE_SZ: 1031,
} as const;

/**
 * PIPE_BUF: the largest write(2) to a pipe or FIFO that the kernel performs
 * whole, never interleaved with another writer's bytes, also with
 * O_NONBLOCK (all of it, or EAGAIN). 4096 on Linux, 512 on macOS.
 */
export const PIPE_BUF = _isDarwin ? 512 : 4096;

/** `st_mode` file type bits. */
export const S_IFMT = 0o170000;
/** `st_mode` type of a FIFO. */
export const S_IFIFO = 0o010000;
/** `st_mode` type of a regular file. */
export const S_IFREG = 0o100000;
/** `st_mode` type of a directory. */
export const S_IFDIR = 0o040000;
/** `st_mode` type of a symbolic link (seen only through lstat). */
export const S_IFLNK = 0o120000;
/** `st_mode` type of a Unix socket. */
export const S_IFSOCK = 0o140000;
/** `st_mode` type of a character device. */
export const S_IFCHR = 0o020000;
/** `st_mode` type of a block device. */
export const S_IFBLK = 0o060000;

/**
 * Offsets in `struct stat` of the fields ipckit reads. Linux x86_64 and
 * aarch64 (asm-generic) lay it out differently; macOS uses its 64-bit inode
 * layout.
 */
export const STAT = _isDarwin
  ? {
    DEV: 0,
    DEV_BYTES: 4,
    INO: 8,
    SIZE: 96,
    BLOCKS: 104,
    MODE: 4,
    MODE_BYTES: 2,
    NLINK: 6,
    NLINK_BYTES: 2,
    UID: 16,
    MTIME: 48,
    SIZE_OF: 144,
  }
  : _isAarch64
  ? {
    DEV: 0,
    DEV_BYTES: 8,
    INO: 8,
    SIZE: 48,
    BLOCKS: 64,
    MODE: 16,
    MODE_BYTES: 4,
    NLINK: 20,
    NLINK_BYTES: 4,
    UID: 24,
    MTIME: 88,
    SIZE_OF: 128,
  }
  : {
    DEV: 0,
    DEV_BYTES: 8,
    INO: 8,
    SIZE: 48,
    BLOCKS: 64,
    MODE: 24,
    MODE_BYTES: 4,
    NLINK: 16,
    NLINK_BYTES: 8,
    UID: 28,
    MTIME: 88,
    SIZE_OF: 144,
  };

/**
 * Offsets in `struct dirent` of the entry type and the NUL-terminated name.
 * glibc and musl agree on 64-bit Linux (`d_ino`, `d_off`, `d_reclen`,
 * `d_type`, `d_name`); macOS puts a 16-bit name length before the type.
 */
export const DIRENT = _isDarwin
  ? { TYPE: 20, NAME: 21 } as const
  : { TYPE: 18, NAME: 19 } as const;

/**
 * `struct mq_attr { long mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs; long pad[4]; }`
 * on LP64 Linux: field offsets and total size.
 */
export const MQ_ATTR = {
  FLAGS: 0,
  MAXMSG: 8,
  MSGSIZE: 16,
  CURMSGS: 24,
  SIZE_OF: 64,
} as const;

/** `struct timespec { time_t tv_sec; long tv_nsec; }` on LP64: 16 bytes. */
export const TIMESPEC_SIZE = 16;

/**
 * `getrlimit`/`setrlimit` resource numbers, and `struct rlimit { rlim_t
 * rlim_cur, rlim_max; }`: two 64-bit counts (`RLIM_INFINITY` is all ones).
 */
export const RLIMIT = {
  NOFILE: _isDarwin ? 8 : 7,
  SIZE_OF: 16,
  CUR: 0,
  MAX: 8,
} as const;

/** `sizeof(sem_t)` on LP64 glibc and musl, and its required alignment. */
export const SEM_T = { SIZE_OF: 32, ALIGN: 8 } as const;
