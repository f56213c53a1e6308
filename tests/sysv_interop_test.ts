/**
 * System V objects and file locks shared with programs nobody here wrote:
 * C programs compiled with `cc` into a temporary directory (the notes'
 * `shmget` example, a `msgsnd`/`msgrcv` pair with types, and a program
 * that prints the C library's own struct layouts and constants, which
 * ffi/ must match), and Python's `sysv_ipc` where it is installed.
 *
 * @module
 */

import { assertEquals } from "@std/assert";
import { FLOCK, OFD } from "../ffi/lock.ts";
import {
  IPC,
  IPC_PERM,
  MSQID_DS,
  SEMBUF,
  SEMID_DS,
  SHMID_DS,
} from "../ffi/sysv.ts";
import { codecs, SysvMessageQueue, SysvSharedMemory } from "../mod.ts";
import { hasCompiler } from "./_c_programs.ts";
import { commandSucceeds, leakChecked, skip, uniqueKey } from "./_helpers.ts";

const LAYOUTS = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#define F(s, f, name) printf("%s %zu\\n", name, offsetof(struct s, f))
#define C(c) printf(#c " %d\\n", (int) (c))
int main(void) {
  F(ipc_perm, __key, "IPC_PERM.KEY"); F(ipc_perm, uid, "IPC_PERM.UID");
  F(ipc_perm, cuid, "IPC_PERM.CUID"); F(ipc_perm, mode, "IPC_PERM.MODE");
  printf("IPC_PERM.SIZE_OF %zu\\n", sizeof(struct ipc_perm));
  F(msqid_ds, msg_stime, "MSQID_DS.STIME"); F(msqid_ds, msg_rtime, "MSQID_DS.RTIME");
  F(msqid_ds, msg_ctime, "MSQID_DS.CTIME"); F(msqid_ds, __msg_cbytes, "MSQID_DS.CBYTES");
  F(msqid_ds, msg_qnum, "MSQID_DS.QNUM"); F(msqid_ds, msg_qbytes, "MSQID_DS.QBYTES");
  F(msqid_ds, msg_lspid, "MSQID_DS.LSPID"); F(msqid_ds, msg_lrpid, "MSQID_DS.LRPID");
  printf("MSQID_DS.SIZE_OF %zu\\n", sizeof(struct msqid_ds));
  F(shmid_ds, shm_segsz, "SHMID_DS.SEGSZ"); F(shmid_ds, shm_atime, "SHMID_DS.ATIME");
  F(shmid_ds, shm_dtime, "SHMID_DS.DTIME"); F(shmid_ds, shm_ctime, "SHMID_DS.CTIME");
  F(shmid_ds, shm_cpid, "SHMID_DS.CPID"); F(shmid_ds, shm_lpid, "SHMID_DS.LPID");
  F(shmid_ds, shm_nattch, "SHMID_DS.NATTCH");
  printf("SHMID_DS.SIZE_OF %zu\\n", sizeof(struct shmid_ds));
  F(semid_ds, sem_otime, "SEMID_DS.OTIME"); F(semid_ds, sem_ctime, "SEMID_DS.CTIME");
  F(semid_ds, sem_nsems, "SEMID_DS.NSEMS");
  printf("SEMID_DS.SIZE_OF %zu\\n", sizeof(struct semid_ds));
  F(sembuf, sem_num, "SEMBUF.NUM"); F(sembuf, sem_op, "SEMBUF.OP"); F(sembuf, sem_flg, "SEMBUF.FLG");
  printf("SEMBUF.SIZE_OF %zu\\n", sizeof(struct sembuf));
  F(flock, l_type, "FLOCK.TYPE"); F(flock, l_whence, "FLOCK.WHENCE");
  F(flock, l_start, "FLOCK.START"); F(flock, l_len, "FLOCK.LEN"); F(flock, l_pid, "FLOCK.PID");
  printf("FLOCK.SIZE_OF %zu\\n", sizeof(struct flock));
  printf("IPC.CREAT %d\\nIPC.EXCL %d\\nIPC.NOWAIT %d\\nIPC.RMID %d\\nIPC.SET %d\\nIPC.STAT %d\\n",
    IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_RMID, IPC_SET, IPC_STAT);
  printf("IPC.MSG_NOERROR %d\\nIPC.MSG_EXCEPT %d\\nIPC.SHM_RDONLY %d\\nIPC.SEM_UNDO %d\\n",
    MSG_NOERROR, MSG_EXCEPT, SHM_RDONLY, SEM_UNDO);
  printf("IPC.GETPID %d\\nIPC.GETVAL %d\\nIPC.GETALL %d\\nIPC.GETNCNT %d\\nIPC.GETZCNT %d\\nIPC.SETVAL %d\\nIPC.SETALL %d\\n",
    GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL);
  printf("OFD.F_GETLK %d\\nOFD.F_SETLK %d\\nOFD.F_SETLKW %d\\nOFD.F_RDLCK %d\\nOFD.F_WRLCK %d\\nOFD.F_UNLCK %d\\n",
    F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_RDLCK, F_WRLCK, F_UNLCK);
  return 0;
}
`;

/** The notes' example: shmget((key_t)KEY, 1024, IPC_CREAT|0666), then write or read a string. */
const SHM_NOTES = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
int main(int argc, char **argv) {
  key_t key = (key_t) atol(argv[1]);
  int shmid = shmget(key, 1024, IPC_CREAT | 0666);
  if (shmid < 0) { perror("shmget"); return 1; }
  char *memory = shmat(shmid, NULL, 0);
  if (memory == (char *) -1) { perror("shmat"); return 1; }
  if (argv[2][0] == 'w') strcpy(memory, argv[3]);
  else printf("%s\\n", memory);
  shmdt(memory);
  return 0;
}
`;

/** msgsnd <key> <type> <text>… (sends each) or msgrcv <key> <type> (prints "type text"). */
const MSG_PAIR = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
struct message { long mtype; char mtext[512]; };
int main(int argc, char **argv) {
  int id = msgget((key_t) atol(argv[2]), 0);
  if (id < 0) { perror("msgget"); return 1; }
  struct message message;
  if (strcmp(argv[1], "send") == 0) {
    for (int i = 3; i + 1 < argc; i += 2) {
      message.mtype = atol(argv[i]);
      strcpy(message.mtext, argv[i + 1]);
      if (msgsnd(id, &message, strlen(message.mtext), 0) < 0) { perror("msgsnd"); return 1; }
    }
    return 0;
  }
  ssize_t length = msgrcv(id, &message, sizeof message.mtext, atol(argv[3]), 0);
  if (length < 0) { perror("msgrcv"); return 1; }
  printf("%ld %.*s\\n", message.mtype, (int) length, message.mtext);
  return 0;
}
`;

async function compile(
  dir: string,
  name: string,
  source: string,
): Promise<string> {
  await Deno.writeTextFile(`${dir}/${name}.c`, source);
  const { success, stderr } = await new Deno.Command("cc", {
    args: ["-o", `${dir}/${name}`, `${dir}/${name}.c`],
    stderr: "piped",
  }).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  return `${dir}/${name}`;
}

async function run(program: string, args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command(program, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!success) throw new Error(`${program}: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

const noCompiler = hasCompiler ? undefined : "no C compiler (cc) is installed";
type _Programs = { layouts: string; shm: string; msg: string };

/** Compiles the programs into a fresh temporary directory, removed after `body`. */
async function withPrograms(
  body: (programs: _Programs) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-test-sysv-c-" });
  try {
    await body({
      layouts: await compile(dir, "layouts", LAYOUTS),
      shm: await compile(dir, "shm_notes", SHM_NOTES),
      msg: await compile(dir, "msg_pair", MSG_PAIR),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "ffi/sysv.ts and ffi/lock.ts match the C library's struct layouts and constants",
  ignore: skip("System V layouts", noCompiler),
  fn: leakChecked(() =>
    withPrograms(async ({ layouts }) => {
      const known: Record<string, Record<string, number>> = {
        IPC_PERM,
        MSQID_DS,
        SHMID_DS,
        SEMID_DS,
        SEMBUF,
        FLOCK,
        IPC,
        OFD,
      };
      const lines = (await run(layouts, [])).trim().split("\n");
      for (const line of lines) {
        const [name, value] = line.split(" ");
        const [table, field] = name.split(".");
        assertEquals(known[table][field], Number(value), name);
      }
      assertEquals(lines.length > 50, true);
    })
  ),
});

Deno.test({
  name:
    "SysvSharedMemory shares the notes' shmget(1234-style key, 1024, IPC_CREAT|0666) segment with a C program",
  ignore: skip("the notes' shmget example", noCompiler),
  fn: leakChecked(() =>
    withPrograms(async ({ shm }) => {
      const key = uniqueKey();
      await run(shm, [String(key), "w", "written by C"]);
      using segment = SysvSharedMemory.open(key, { unlinkOnClose: true });
      assertEquals(segment.size, 1024);
      assertEquals(segment.attributes().mode, 0o666);
      const text = new TextDecoder().decode(segment.bytes()).split("\0")[0];
      assertEquals(text, "written by C");
      const bytes = new TextEncoder().encode("written by Deno\0");
      segment.bytes().set(bytes);
      assertEquals(await run(shm, [String(key), "r"]), "written by Deno\n");
    })
  ),
});

Deno.test({
  name:
    "SysvMessageQueue talks to a C msgsnd/msgrcv pair, selecting by type both ways",
  ignore: skip("the msgsnd/msgrcv pair", noCompiler),
  fn: leakChecked(() =>
    withPrograms(async ({ msg }) => {
      await using queue = SysvMessageQueue.open<string>(uniqueKey(), {
        create: true,
        exclusive: true,
        codec: codecs.text(),
        unlinkOnClose: true,
      });
      const key = String(queue.key);
      await run(msg, ["send", key, "1", "one", "2", "two", "3", "three"]);
      assertEquals(await queue.receive({ type: 2, timeout: 1000 }), {
        value: "two",
        type: 2,
      });
      assertEquals(queue.tryReceive({ type: -3 }), { value: "one", type: 1 });
      assertEquals(queue.tryReceive(), { value: "three", type: 3 });
      await queue.send("ignored", { type: 4 });
      await queue.send("chosen", { type: 9 });
      assertEquals(await run(msg, ["receive", key, "9"]), "9 chosen\n");
      assertEquals(queue.tryReceive(), { value: "ignored", type: 4 });
    })
  ),
});

/** A Python that has sysv_ipc: Debian's python3-sysv-ipc serves /usr/bin/python3. */
async function pythonWithSysvIpc(): Promise<string | undefined> {
  for (const python of ["python3", "/usr/bin/python3"]) {
    if (await commandSucceeds(python, ["-c", "import sysv_ipc"])) return python;
  }
  return undefined;
}
const python = await pythonWithSysvIpc();

Deno.test({
  name: "SysvMessageQueue and SysvSharedMemory talk to Python's sysv_ipc",
  ignore: skip(
    "Python's sysv_ipc",
    python
      ? undefined
      : "no python3 with the sysv_ipc module (Debian: python3-sysv-ipc)",
  ),
  fn: leakChecked(async () => {
    const key = uniqueKey();
    await using queue = SysvMessageQueue.open<{ n: number }>(key, {
      create: true,
      exclusive: true,
      unlinkOnClose: true,
    });
    using segment = SysvSharedMemory.open(key, {
      create: true,
      exclusive: true,
      size: 64,
      unlinkOnClose: true,
    });
    segment.bytes().set(new TextEncoder().encode("from Deno"));
    await queue.send({ n: 41 }, { type: 5 });
    const script = [
      "import json, sys, sysv_ipc",
      "key = int(sys.argv[1])",
      "q = sysv_ipc.MessageQueue(key)",
      "message, kind = q.receive(type=5)",
      "value = json.loads(message)",
      "q.send(json.dumps({'n': value['n'] + 1}), type=7)",
      "m = sysv_ipc.SharedMemory(key)",
      "print(m.read(9).decode())",
      "m.write(b'from Python')",
      "m.detach()",
    ].join("\n");
    const out = await run(python!, ["-c", script, String(key)]);
    assertEquals(out, "from Deno\n");
    assertEquals(await queue.receive({ type: 7, timeout: 1000 }), {
      value: { n: 42 },
      type: 7,
    });
    const text = new TextDecoder().decode(segment.bytes().subarray(0, 11));
    assertEquals(text, "from Python");
  }),
});
