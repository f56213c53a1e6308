/**
 * System V IPC through libc: message queues (`msgget`, `msgsnd`, `msgrcv`,
 * `msgctl`), shared memory (`shmget`, `shmat`, `shmdt`, `shmctl`) and
 * semaphore sets (`semget`, `semtimedop`, `semctl`), their constants and
 * the layouts of their structs on 64-bit Linux (glibc and musl agree on
 * the fields read here; checked against the C headers by
 * tests/sysv_layout_test.ts).
 *
 * Every function returns its result or `-errno`, read on the calling
 * thread right after the call, with EINTR retried. Callers check Deno's
 * permissions first: these functions do not.
 *
 * macOS has System V IPC with other layouts and no `MSG_EXCEPT`; ipckit
 * only knows Linux's, so {@linkcode requireSysv} refuses elsewhere.
 *
 * @module
 */

import { cString, MAP_FAILED, requireSymbol, TIMESPEC_SIZE } from "./c.ts";
import { ERRNO, lastErrno, retryEintr } from "./errno.ts";
import { libc } from "./load.ts";

/** Flags and commands of the System V calls (Linux, sys/ipc.h, sys/msg.h, sys/shm.h, sys/sem.h). */
export const IPC = {
  PRIVATE: 0,
  CREAT: 0o1000,
  EXCL: 0o2000,
  NOWAIT: 0o4000,
  RMID: 0,
  SET: 1,
  STAT: 2,
  MSG_NOERROR: 0o10000,
  MSG_EXCEPT: 0o20000,
  SHM_RDONLY: 0o10000,
  SEM_UNDO: 0x1000,
  GETPID: 11,
  GETVAL: 12,
  GETALL: 13,
  GETNCNT: 14,
  GETZCNT: 15,
  SETVAL: 16,
  SETALL: 17,
} as const;

/** `struct ipc_perm` on 64-bit Linux: 48 bytes; the fields ipckit reads. */
export const IPC_PERM = {
  KEY: 0,
  UID: 4,
  GID: 8,
  CUID: 12,
  CGID: 16,
  MODE: 20,
  SIZE_OF: 48,
} as const;

/** `struct msqid_ds` on 64-bit Linux. */
export const MSQID_DS = {
  STIME: 48,
  RTIME: 56,
  CTIME: 64,
  CBYTES: 72,
  QNUM: 80,
  QBYTES: 88,
  LSPID: 96,
  LRPID: 100,
  SIZE_OF: 120,
} as const;

/** `struct shmid_ds` on 64-bit Linux. */
export const SHMID_DS = {
  SEGSZ: 48,
  ATIME: 56,
  DTIME: 64,
  CTIME: 72,
  CPID: 80,
  LPID: 84,
  NATTCH: 88,
  SIZE_OF: 112,
} as const;

/** `struct semid_ds` on 64-bit Linux. */
export const SEMID_DS = {
  OTIME: 48,
  CTIME: 64,
  NSEMS: 80,
  SIZE_OF: 104,
} as const;

/** `struct sembuf { unsigned short sem_num; short sem_op; short sem_flg; }`: 6 bytes. */
export const SEMBUF = { NUM: 0, OP: 2, FLG: 4, SIZE_OF: 6 } as const;

/** The `long mtype` that starts every message buffer of msgsnd/msgrcv. */
export const MTYPE_SIZE = 8;

/**
 * A message buffer (`struct msgbuf`: the `long mtype`, then the text) with
 * room for `textBytes` bytes of text, for {@linkcode msgsnd} and
 * {@linkcode msgrcv}. Callers see only the text, through
 * {@linkcode messageText}, so that no mechanism lays the struct out.
 */
export function messageBuffer(textBytes: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(MTYPE_SIZE + textBytes);
}

/** How many bytes of text a {@linkcode messageBuffer} holds. */
export function messageCapacity(buffer: Uint8Array<ArrayBuffer>): number {
  return buffer.byteLength - MTYPE_SIZE;
}

/** The first `length` bytes of text of a {@linkcode messageBuffer}, without a copy. */
export function messageText(
  buffer: Uint8Array<ArrayBuffer>,
  length: number,
): Uint8Array<ArrayBuffer> {
  return buffer.subarray(MTYPE_SIZE, MTYPE_SIZE + length);
}

/** Throws `NotSupported` where ipckit does not know the System V layouts (anything but Linux). */
export function requireSysv(action: string): void {
  if (Deno.build.os !== "linux") {
    throw new Deno.errors.NotSupported(
      `Cannot ${action}: ipckit knows the System V IPC structures of Linux only, not ${Deno.build.os}`,
    );
  }
}

/** The owner, creator and mode of a System V object, from its `ipc_perm`. */
export interface IpcPerm {
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  /** Permission bits (the low 9 bits of `mode`). */
  mode: number;
}

function _perm(view: DataView): IpcPerm {
  return {
    key: view.getInt32(IPC_PERM.KEY, true),
    uid: view.getUint32(IPC_PERM.UID, true),
    gid: view.getUint32(IPC_PERM.GID, true),
    cuid: view.getUint32(IPC_PERM.CUID, true),
    cgid: view.getUint32(IPC_PERM.CGID, true),
    mode: view.getUint32(IPC_PERM.MODE, true) & 0o777,
  };
}

/** `ftok(path, id)`: the key, or `-errno` (ENOENT when the path does not exist). */
export function ftok(path: string, id: number): number {
  const cPath = cString(path);
  const key = libc().symbols.ftok(cPath, id);
  return key === -1 ? -lastErrno() : key;
}

// --- message queues --------------------------------------------------------

/** `msgget`: the queue id, or `-errno`. */
export function msgget(key: number, flags: number): number {
  return retryEintr(() => libc().symbols.msgget(key, flags));
}

/**
 * One `msgsnd` of a {@linkcode messageBuffer} whose first `length` bytes
 * of text are the message; its type is set here. Returns 0 or `-errno`.
 */
export function msgsnd(
  id: number,
  buffer: Uint8Array<ArrayBuffer>,
  type: bigint,
  length: number,
  flags: number,
): number {
  new DataView(buffer.buffer, buffer.byteOffset).setBigInt64(0, type, true);
  const size = BigInt(length);
  return retryEintr(() => libc().symbols.msgsnd(id, buffer, size, flags));
}

/**
 * One `msgrcv` into a {@linkcode messageBuffer}, of at most its capacity:
 * the text's length and the type, or `-errno`.
 */
export function msgrcv(
  id: number,
  buffer: Uint8Array<ArrayBuffer>,
  type: bigint,
  flags: number,
): { length: number; type: bigint } | number {
  const room = BigInt(messageCapacity(buffer));
  const length = retryEintr(() =>
    Number(libc().symbols.msgrcv(id, buffer, room, type, flags))
  );
  if (length < 0) return length;
  const view = new DataView(buffer.buffer, buffer.byteOffset);
  return { length, type: view.getBigInt64(0, true) };
}

/** What `msgctl(IPC_STAT)` tells about a queue. */
export interface MsqidDs {
  perm: IpcPerm;
  /** Last msgsnd, last msgrcv and last change, in seconds since the epoch (0: never). */
  stime: number;
  rtime: number;
  ctime: number;
  /** Bytes of text waiting. */
  cbytes: number;
  /** Messages waiting. */
  qnum: number;
  /** The most bytes of text the queue holds. */
  qbytes: number;
  /** The last process that sent, and the last that received (0: none). */
  lspid: number;
  lrpid: number;
}

/** `msgctl(IPC_STAT)`: the queue's status, or `-errno`. */
export function msgStat(id: number): MsqidDs | number {
  const buffer = new Uint8Array(MSQID_DS.SIZE_OF);
  const result = retryEintr(() => libc().symbols.msgctl(id, IPC.STAT, buffer));
  if (result < 0) return result;
  const view = new DataView(buffer.buffer);
  const long = (offset: number) => Number(view.getBigInt64(offset, true));
  return {
    perm: _perm(view),
    stime: long(MSQID_DS.STIME),
    rtime: long(MSQID_DS.RTIME),
    ctime: long(MSQID_DS.CTIME),
    cbytes: long(MSQID_DS.CBYTES),
    qnum: long(MSQID_DS.QNUM),
    qbytes: long(MSQID_DS.QBYTES),
    lspid: view.getInt32(MSQID_DS.LSPID, true),
    lrpid: view.getInt32(MSQID_DS.LRPID, true),
  };
}

/**
 * `msgctl(IPC_SET)` with the queue's current owner and mode and a new
 * `msg_qbytes`: 0 or `-errno` (EPERM above msgmnb without CAP_SYS_RESOURCE).
 */
export function msgSetQbytes(id: number, qbytes: number): number {
  const buffer = new Uint8Array(MSQID_DS.SIZE_OF);
  const msgctl = libc().symbols.msgctl;
  const got = retryEintr(() => msgctl(id, IPC.STAT, buffer));
  if (got < 0) return got;
  new DataView(buffer.buffer).setBigUint64(
    MSQID_DS.QBYTES,
    BigInt(qbytes),
    true,
  );
  return retryEintr(() => msgctl(id, IPC.SET, buffer));
}

/** `msgctl(IPC_RMID)`: 0 or `-errno`. */
export function msgRemove(id: number): number {
  return retryEintr(() => libc().symbols.msgctl(id, IPC.RMID, _none));
}

const _none = new Uint8Array(0);

// --- shared memory ---------------------------------------------------------

/** `shmget`: the segment id, or `-errno`. */
export function shmget(key: number, size: number, flags: number): number {
  return retryEintr(() => libc().symbols.shmget(key, BigInt(size), flags));
}

/** `shmat(id, NULL, flags)`: the address, or `-errno`. */
export function shmat(id: number, flags: number): Deno.PointerObject | number {
  const shmat = libc().symbols.shmat;
  for (;;) {
    const pointer = shmat(id, null, flags);
    if (pointer !== null && Deno.UnsafePointer.value(pointer) !== MAP_FAILED) {
      return pointer;
    }
    const errno = lastErrno();
    if (errno !== ERRNO.EINTR) return -errno;
  }
}

/** `shmdt(address)`: 0 or `-errno`. */
export function shmdt(address: Deno.PointerObject): number {
  return retryEintr(() => libc().symbols.shmdt(address));
}

/** What `shmctl(IPC_STAT)` tells about a segment. */
export interface ShmidDs {
  perm: IpcPerm;
  /** Size in bytes. */
  segsz: number;
  atime: number;
  dtime: number;
  ctime: number;
  /** The creator, and the last process to attach or detach. */
  cpid: number;
  lpid: number;
  /** How many attachments it has now, in every process. */
  nattch: number;
}

/** `shmctl(IPC_STAT)`: the segment's status, or `-errno`. */
export function shmStat(id: number): ShmidDs | number {
  const buffer = new Uint8Array(SHMID_DS.SIZE_OF);
  const result = retryEintr(() => libc().symbols.shmctl(id, IPC.STAT, buffer));
  if (result < 0) return result;
  const view = new DataView(buffer.buffer);
  const long = (offset: number) => Number(view.getBigInt64(offset, true));
  return {
    perm: _perm(view),
    segsz: long(SHMID_DS.SEGSZ),
    atime: long(SHMID_DS.ATIME),
    dtime: long(SHMID_DS.DTIME),
    ctime: long(SHMID_DS.CTIME),
    cpid: view.getInt32(SHMID_DS.CPID, true),
    lpid: view.getInt32(SHMID_DS.LPID, true),
    nattch: long(SHMID_DS.NATTCH),
  };
}

/** `shmctl(IPC_RMID)`: 0 or `-errno`. The segment goes once the last attachment does. */
export function shmRemove(id: number): number {
  return retryEintr(() => libc().symbols.shmctl(id, IPC.RMID, _none));
}

// --- semaphore sets --------------------------------------------------------

/** `semget`: the set id, or `-errno`. */
export function semget(key: number, count: number, flags: number): number {
  return retryEintr(() => libc().symbols.semget(key, count, flags));
}

/** One operation of a `semop` call. */
export interface SemOp {
  /** Which semaphore of the set. */
  index: number;
  /** Add this (positive), wait to take it (negative), or wait for zero (0). */
  op: number;
  /** `IPC_NOWAIT`, `SEM_UNDO`. */
  flags: number;
}

/** Encodes operations as the `struct sembuf` array semop takes. */
export function encodeSemOps(ops: readonly SemOp[]): Uint8Array<ArrayBuffer> {
  const buffer = new Uint8Array(ops.length * SEMBUF.SIZE_OF);
  const view = new DataView(buffer.buffer);
  ops.forEach((op, i) => {
    const at = i * SEMBUF.SIZE_OF;
    view.setUint16(at + SEMBUF.NUM, op.index, true);
    view.setInt16(at + SEMBUF.OP, op.op, true);
    view.setInt16(at + SEMBUF.FLG, op.flags, true);
  });
  return buffer;
}

/**
 * One `semtimedop` of encoded operations: with `timeoutMs` undefined it
 * waits as long as it takes (semop), else at most that long (EAGAIN after
 * it). 0 or `-errno`; an EINTR restarts the call with the full timeout.
 */
export function semtimedop(
  id: number,
  ops: Uint8Array<ArrayBuffer>,
  timeoutMs?: number,
): number {
  const count = BigInt(ops.byteLength / SEMBUF.SIZE_OF);
  if (timeoutMs === undefined) {
    return retryEintr(() => libc().symbols.semop(id, ops, count));
  }
  const timespec = new BigInt64Array(TIMESPEC_SIZE / 8);
  const nanos = BigInt(Math.max(0, Math.round(timeoutMs * 1e6)));
  timespec[0] = nanos / 1_000_000_000n;
  timespec[1] = nanos % 1_000_000_000n;
  const bytes = new Uint8Array(timespec.buffer);
  const call = requireSymbol("semtimedop");
  return retryEintr(() => call(id, ops, count, bytes));
}

/** `semctl(id, index, cmd)` for GETVAL, GETPID, GETNCNT, GETZCNT: the value, or `-errno`. */
export function semGet(id: number, index: number, cmd: number): number {
  return retryEintr(() => libc().symbols.semctl(id, index, cmd, 0n));
}

/** `semctl(id, index, SETVAL, value)`: 0 or `-errno`. */
export function semSetValue(id: number, index: number, value: number): number {
  return retryEintr(() =>
    libc().symbols.semctl(id, index, IPC.SETVAL, BigInt(value))
  );
}

/** `semctl(id, 0, SETALL, values)`: 0 or `-errno`. */
export function semSetAll(id: number, values: readonly number[]): number {
  const array = new Uint16Array(values);
  const bytes = new Uint8Array(array.buffer);
  return retryEintr(() =>
    libc().symbols.semctl_buffer(id, 0, IPC.SETALL, bytes)
  );
}

/** `semctl(id, 0, GETALL)`: every value of a set of `count`, or `-errno`. */
export function semGetAll(id: number, count: number): number[] | number {
  const array = new Uint16Array(Math.max(1, count));
  const bytes = new Uint8Array(array.buffer);
  const result = retryEintr(() =>
    libc().symbols.semctl_buffer(id, 0, IPC.GETALL, bytes)
  );
  return result < 0 ? result : [...array.subarray(0, count)];
}

/** What `semctl(IPC_STAT)` tells about a set. */
export interface SemidDs {
  perm: IpcPerm;
  otime: number;
  ctime: number;
  /** Semaphores in the set. */
  nsems: number;
}

/** `semctl(IPC_STAT)`: the set's status, or `-errno`. */
export function semStat(id: number): SemidDs | number {
  const buffer = new Uint8Array(SEMID_DS.SIZE_OF);
  const result = retryEintr(() =>
    libc().symbols.semctl_buffer(id, 0, IPC.STAT, buffer)
  );
  if (result < 0) return result;
  const view = new DataView(buffer.buffer);
  const long = (offset: number) => Number(view.getBigInt64(offset, true));
  return {
    perm: _perm(view),
    otime: long(SEMID_DS.OTIME),
    ctime: long(SEMID_DS.CTIME),
    nsems: long(SEMID_DS.NSEMS),
  };
}

/** `semctl(IPC_RMID)`: 0 or `-errno`. Waiters fail with EIDRM. */
export function semRemove(id: number): number {
  return retryEintr(() => libc().symbols.semctl(id, 0, IPC.RMID, 0n));
}
