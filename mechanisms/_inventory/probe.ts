/**
 * Looking at one object by its exact name, through libc and without
 * creating anything: `mq_open`, `shm_open` and `sem_open` without
 * `O_CREAT`, then fstat, `mq_getattr` or `sem_getvalue`, then close. This
 * is how a queue is seen where /dev/mqueue is not mounted (mq_open does not
 * need the mount), and how names that are not UTF-8 are reached.
 *
 * Callers check Deno's permissions first: these functions do not.
 *
 * @module
 */

import { cString, O, requireSymbol } from "../../ffi/c.ts";
import { mqAttributes } from "../../ffi/mqueue.ts";
import { ERRNO, lastErrno, retryEintr } from "../../ffi/errno.ts";
import { readDescriptorText } from "../../ffi/file.ts";
import { libc } from "../../ffi/load.ts";
import { type FileStatus, statFd } from "../../ffi/stat.ts";
import type { IpcKind } from "../_kernel/objects.ts";

/** What a queue's descriptor tells. */
export interface QueueProbe {
  status: FileStatus;
  maxMessages: number;
  messageSize: number;
  currentMessages: number;
  /** Bytes of the waiting messages (the kernel's `QSIZE`). */
  queuedBytes?: number;
  /** The process registered with mq_notify, if any. */
  notifyPid?: number;
}

/**
 * Opens the queue `name` (bytes, with the leading `/`) read-only and
 * non-blocking, reads what its descriptor tells, closes it. Opening a
 * queue to read it takes no message and changes nothing. Returns `-errno`
 * when it cannot be opened.
 */
export function probeQueue(name: Uint8Array): QueueProbe | number {
  const mqOpen = requireSymbol("mq_open");
  const cName = cString(name);
  const fd = retryEintr(() =>
    mqOpen(cName, O.RDONLY | O.NONBLOCK | O.CLOEXEC, 0, null)
  );
  if (fd < 0) return fd;
  try {
    const status = statFd(fd);
    if (typeof status === "number") return status;
    const attributes = mqAttributes(fd);
    if (typeof attributes === "number") return attributes;
    const probe: QueueProbe = { status, ...attributes };
    // The descriptor reads as "QSIZE:… NOTIFY:… SIGNO:… NOTIFY_PID:…".
    const text = readDescriptorText(fd, 512);
    return typeof text === "string"
      ? { ...probe, ...parseQueueStatus(text) }
      : probe;
  } finally {
    requireSymbol("mq_close")(fd);
  }
}

/** The fields of a queue's status text (`QSIZE:11 NOTIFY:0 …`). */
export function parseQueueStatus(
  text: string,
): { queuedBytes?: number; notifyPid?: number } {
  const field = (key: string) => {
    const match = new RegExp(`\\b${key}:(\\d+)`).exec(text);
    return match ? Number(match[1]) : undefined;
  };
  const queuedBytes = field("QSIZE");
  if (queuedBytes === undefined) return {};
  const notifyPid = field("NOTIFY_PID");
  return notifyPid ? { queuedBytes, notifyPid } : { queuedBytes };
}

/**
 * A semaphore's value, read through `sem_open` without `O_CREAT`, or
 * `-errno`.
 */
export function semaphoreValue(name: Uint8Array): number {
  const { sem_open, sem_getvalue, sem_close } = libc().symbols;
  const cName = cString(name);
  let semaphore = sem_open(cName, 0, 0, 0);
  while (_semFailed(semaphore) && lastErrno() === ERRNO.EINTR) {
    semaphore = sem_open(cName, 0, 0, 0);
  }
  if (_semFailed(semaphore)) return -lastErrno();
  try {
    const value = new Int32Array(1);
    if (sem_getvalue(semaphore, new Uint8Array(value.buffer)) < 0) {
      return -lastErrno();
    }
    return value[0];
  } finally {
    sem_close(semaphore);
  }
}

/**
 * Whether an object of `kind` is named `name`: it opens (read-only, no
 * `O_CREAT`), or the kernel refuses it with EACCES, which it only does for
 * a name that exists. Returns `-errno` for any other failure.
 */
export function objectExists(
  kind: IpcKind,
  name: Uint8Array,
): boolean | number {
  const errno = _openAndClose(kind, name);
  if (errno === 0 || errno === ERRNO.EACCES) return true;
  if (errno === ERRNO.ENOENT) return false;
  return -errno;
}

/** Removes an object's name by its exact bytes: 0, or `-errno`. */
export function unlinkByName(kind: IpcKind, name: Uint8Array): number {
  const cName = cString(name);
  const unlink = kind === "mq"
    ? requireSymbol("mq_unlink")
    : kind === "shm"
    ? libc().symbols.shm_unlink
    : libc().symbols.sem_unlink;
  return retryEintr(() => unlink(cName));
}

/** Opens and closes at once; 0 or the errno. */
function _openAndClose(kind: IpcKind, name: Uint8Array): number {
  const cName = cString(name);
  if (kind === "mq") {
    const mqOpen = requireSymbol("mq_open");
    const fd = retryEintr(() =>
      mqOpen(cName, O.RDONLY | O.NONBLOCK | O.CLOEXEC, 0, null)
    );
    if (fd < 0) return -fd;
    requireSymbol("mq_close")(fd);
    return 0;
  }
  if (kind === "shm") {
    const { shm_open, close } = libc().symbols;
    const fd = retryEintr(() => shm_open(cName, O.RDONLY | O.CLOEXEC, 0));
    if (fd < 0) return -fd;
    close(fd);
    return 0;
  }
  const { sem_open, sem_close } = libc().symbols;
  let semaphore = sem_open(cName, 0, 0, 0);
  while (_semFailed(semaphore) && lastErrno() === ERRNO.EINTR) {
    semaphore = sem_open(cName, 0, 0, 0);
  }
  if (_semFailed(semaphore)) return lastErrno();
  sem_close(semaphore);
  return 0;
}

/** `SEM_FAILED` is `(sem_t *)0` on glibc and musl and `(sem_t *)-1` on macOS. */
function _semFailed(pointer: Deno.PointerValue): boolean {
  if (pointer === null) return true;
  const value = Deno.UnsafePointer.value(pointer);
  return value === 0n || value === 0xffff_ffff_ffff_ffffn;
}
