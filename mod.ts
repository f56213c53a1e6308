/**
 * ipckit: typed, async, permission-aware inter-process communication for
 * Deno, binding the C library directly with `Deno.dlopen`.
 *
 * Each mechanism is also its own entry point (`@ipckit/ipckit/message-queue`,
 * …); this module names everything they export, grouped by the categories
 * of the documentation. NATS (`@ipckit/ipckit/nats`), the inventory of IPC
 * objects (`@ipckit/ipckit/inventory`) and the CLI (`@ipckit/ipckit/cli`)
 * are entry points of their own.
 *
 * @example Send typed jobs through a POSIX message queue
 * ```ts
 * // deno run --allow-ffi --allow-read=/dev/mqueue --allow-write=/dev/mqueue jobs.ts
 * import { MessageQueue } from "@ipckit/ipckit";
 *
 * type Job = { id: number; file: string };
 * await using jobs = MessageQueue.open<Job>(`/jobs-${Deno.pid}`, {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * await jobs.send({ id: 1, file: "a.png" }, { priority: 1 });
 * const { value } = await jobs.receive({ timeout: 1000 });
 * console.log(value.file); // a.png
 * ```
 *
 * @example Share a typed record through shared memory
 * ```ts
 * // deno run --allow-ffi --allow-read=/dev/shm --allow-write=/dev/shm sensor.ts
 * import { array, layout, SharedMemory, utf8 } from "@ipckit/ipckit";
 *
 * const sensor = layout({ id: "u32", temperature: "f64", label: utf8(32), samples: array("f32", 64) });
 * using record = SharedMemory.openStruct(`/sensor-${Deno.pid}`, sensor, {
 *   create: true,
 *   unlinkOnClose: true,
 * });
 * record.label = "kitchen";
 * record.samples[0] = 0.5; // written straight into the shared pages
 * record.$atomic.id.add(1);
 * ```
 *
 * @example Take turns with other processes, surviving a killed holder
 * ```ts
 * // deno run --allow-ffi --allow-read=/dev/shm --allow-write=/dev/shm turns.ts
 * import { Mutex } from "@ipckit/ipckit";
 *
 * using mutex = Mutex.open(`/turns-${Deno.pid}`, { create: true, unlinkOnClose: true });
 * {
 *   using guard = await mutex.lock({ timeout: 5000 });
 *   if (guard.recovered) console.warn("the last holder died holding the lock");
 *   // … one process at a time …
 * }
 * ```
 *
 * @module
 */

// Errors
export {
  DecodeError,
  IpcError,
  type SystemErrorDetails,
} from "./mechanisms/errors.ts";

// Typed messages
export {
  type Codec,
  type CodecOptions,
  codecs,
  type StandardSchemaIssue,
  type StandardSchemaResult,
  type StandardSchemaV1,
  validated,
} from "./mechanisms/codec.ts";

// Channels: what every message-carrying mechanism offers
export {
  type Channel,
  type Message,
  type Selectable,
  type WaitOptions,
} from "./mechanisms/channel.ts";
export { select } from "./mechanisms/select.ts";
export { duplex, DuplexChannel } from "./mechanisms/duplex.ts";
export {
  type ByteIO,
  type ByteIOWait,
  FramedChannel,
  type FramedChannelOptions,
  type Framing,
} from "./mechanisms/framing.ts";

// Message queues
export {
  MessageQueue,
  type MessageQueueOptions,
  MQ_PRIO_MAX,
  type QueueAttributes,
  type QueueMessage,
  type SendOptions,
} from "./mechanisms/message_queue.ts";

// Shared memory, mapped files and the records laid out in them
export {
  SharedMemory,
  type SharedMemoryOptions,
  type SharedStructOptions,
  type TypedArray,
  type TypedArrayConstructor,
} from "./mechanisms/shared_memory.ts";
export {
  type FlushOptions,
  MappedFile,
  type MappedFileOptions,
} from "./mechanisms/mapped_file.ts";
export {
  array,
  type ArrayType,
  type AtomicField,
  type AtomicFieldsOf,
  type Endian,
  type FieldInfo,
  type FieldSpec,
  type FieldType,
  type FieldTypeOf,
  type FieldValue,
  type IntegerFieldsOf,
  type IntegerType,
  type Layout,
  layout,
  type LayoutOptions,
  type LayoutSpec,
  type MappedStruct,
  type PlacedField,
  type RecordOf,
  type ScalarType,
  type ScalarValue,
  type StructView,
  type TypedArrayOf,
  utf8,
  type Utf8Type,
} from "./mechanisms/layout.ts";

// Waiting on shared memory: futex words and events
export { Futex, FUTEX_SIZE, type FutexFieldsOf } from "./mechanisms/futex.ts";
export {
  SHM_EVENT_MAX_IDS,
  ShmEvent,
  type ShmEventListener,
  type ShmEventOptions,
} from "./mechanisms/shm_event.ts";

export {
  SHM_CHANNEL_DEFAULT_CAPACITY,
  ShmChannel,
  type ShmChannelOptions,
} from "./mechanisms/shm_channel.ts";

// Publish-subscribe over shared memory
export {
  Publisher,
  type PublisherOptions,
  Subscriber,
  type SubscriberOptions,
  type TopicMessage,
  type TopicOptions,
} from "./mechanisms/pubsub.ts";

// Semaphores and the mutex
export {
  type InMemorySemaphoreOptions,
  SEM_VALUE_MAX,
  Semaphore,
  SEMAPHORE_ALIGN,
  SEMAPHORE_SIZE,
  type SemaphoreOptions,
} from "./mechanisms/semaphore.ts";
export {
  Mutex,
  MUTEX_ALIGN,
  MUTEX_SIZE,
  MutexGuard,
  type MutexOptions,
} from "./mechanisms/mutex.ts";

// FIFOs and pipes to a child
export {
  Fifo,
  type FifoCreateOptions,
  type FifoDuplexOptions,
  type FifoReaderOptions,
  type FifoWriterOptions,
  SHARED_FIFO_MAX_MESSAGE,
} from "./mechanisms/fifo.ts";
export {
  ChildChannel,
  ChildProcessError,
  parentChannel,
  type ParentChannelOptions,
  PipeChannel,
  type PipeChannelOptions,
  spawn,
  type SpawnOptions,
} from "./mechanisms/pipe.ts";

// Sockets
export {
  type AbstractSocketOptions,
  connect,
  listen,
  type ListenOptions,
  type PassedHandle,
  type PeerCredentials,
  SEQPACKET_DEFAULT_MAX,
  SEQPACKET_MAX,
  SocketChannel,
  type SocketChannelOptions,
  type SocketMessage,
  type SocketOptions,
  socketpair,
  type SocketPairOptions,
  type SocketReceiveOptions,
  type SocketSendOptions,
  SocketServer,
  type SocketType,
  type TcpSocketOptions,
  type UnixSocketOptions,
} from "./mechanisms/socket.ts";
export {
  bindDatagram,
  type DatagramAddress,
  DatagramChannel,
  type DatagramMessage,
  type DatagramOptions,
  type DatagramSendOptions,
  UDP_MAX_PAYLOAD_IPV4,
  UDP_MAX_PAYLOAD_IPV6,
  UNIX_DATAGRAM_DEFAULT_MAX,
} from "./mechanisms/datagram.ts";

// Signals
export {
  type CatchableSignal,
  type FaultSignal,
  onSignal,
  sendSignal,
  type SendSignalOptions,
  type SignalName,
  signals,
  type SignalStream,
  type SignalSubscription,
  type UncatchableSignal,
} from "./mechanisms/signal.ts";

// Request and response on any channel
export {
  client,
  type ClientOptions,
  RemoteError,
  type RequestContext,
  type RequestOptions,
  RpcClient,
  type RpcEnvelope,
  type RpcErrorInfo,
  type RpcHandler,
  type RpcServer,
  serve,
  type ServeOptions,
} from "./mechanisms/rpc.ts";

// System V IPC: queues with message types, segments, semaphore sets
export {
  SYSV_MAX_MESSAGE_TYPE,
  type SysvKey,
  type SysvMessage,
  SysvMessageQueue,
  type SysvMessageQueueOptions,
  type SysvQueueAttributes,
  type SysvReceiveOptions,
  type SysvSendOptions,
} from "./mechanisms/sysv_message_queue.ts";
export {
  type SysvSegmentAttributes,
  SysvSharedMemory,
  type SysvSharedMemoryOptions,
} from "./mechanisms/sysv_shared_memory.ts";
export {
  SYSV_SEM_VALUE_MAX,
  type SysvSemaphoreLock,
  type SysvSemaphoreOp,
  SysvSemaphoreSet,
  type SysvSemaphoreSetOptions,
  type SysvSemaphoreWaiters,
  type SysvWaitOptions,
} from "./mechanisms/sysv_semaphore.ts";

// File locks
export {
  FileLock,
  type FileLockHold,
  type FileLockOptions,
  type LockHolder,
  type LockOptions,
} from "./mechanisms/file_lock.ts";
