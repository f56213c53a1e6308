/**
 * ipckit: typed, async, permission-aware inter-process communication for
 * Deno, binding the C library directly with `Deno.dlopen`.
 *
 * Each mechanism is also its own entry point (`@ipckit/ipckit/message-queue`,
 * …); this module re-exports them all.
 *
 * @example Send typed jobs through a POSIX message queue
 * ```ts ignore
 * // deno run --allow-ffi --allow-read=/dev/mqueue --allow-write=/dev/mqueue jobs.ts
 * import { MessageQueue } from "@ipckit/ipckit";
 *
 * type Job = { id: number; file: string };
 * await using jobs = MessageQueue.open<Job>("/jobs", {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * await jobs.send({ id: 1, file: "a.png" }, { priority: 1 });
 * const { value } = await jobs.receive({ timeout: 1000 });
 * console.log(value.file);
 * ```
 *
 * @example Share a typed record through shared memory
 * ```ts ignore
 * // deno run --allow-ffi --allow-read=/dev/shm --allow-write=/dev/shm sensor.ts
 * import { array, layout, SharedMemory, utf8 } from "@ipckit/ipckit";
 *
 * const sensor = layout({ id: "u32", temperature: "f64", label: utf8(32), samples: array("f32", 64) });
 * using record = SharedMemory.openStruct("/sensor", sensor, {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * record.label = "kitchen";
 * record.samples[0] = 0.5; // written straight into the shared pages
 * record.$atomic.id.add(1);
 * ```
 *
 * @example Take turns with other processes, surviving a killed holder
 * ```ts ignore
 * // deno run --allow-ffi --allow-read=/dev/shm --allow-write=/dev/shm turns.ts
 * import { Mutex } from "@ipckit/ipckit";
 *
 * using mutex = Mutex.open("/turns", { create: true });
 * {
 *   using guard = await mutex.lock({ timeout: 5000 });
 *   if (guard.recovered) console.warn("the last holder died holding the lock");
 *   // … one process at a time …
 * }
 * ```
 *
 * @module
 */

export * from "./mechanisms/errors.ts";
export * from "./mechanisms/codec.ts";
export * from "./mechanisms/channel.ts";
export * from "./mechanisms/select.ts";
export * from "./mechanisms/message_queue.ts";
export * from "./mechanisms/framing.ts";
export * from "./mechanisms/layout.ts";
export * from "./mechanisms/shared_memory.ts";
export * from "./mechanisms/mapped_file.ts";
export * from "./mechanisms/socket.ts";
export * from "./mechanisms/datagram.ts";
export * from "./mechanisms/signal.ts";
export * from "./mechanisms/duplex.ts";
export * from "./mechanisms/rpc.ts";
export * from "./mechanisms/fifo.ts";
export * from "./mechanisms/pipe.ts";
export * from "./mechanisms/semaphore.ts";
export * from "./mechanisms/mutex.ts";
export * from "./mechanisms/sysv_message_queue.ts";
export * from "./mechanisms/sysv_shared_memory.ts";
export * from "./mechanisms/sysv_semaphore.ts";
export * from "./mechanisms/file_lock.ts";
