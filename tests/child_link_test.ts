/**
 * The parent's side of spawn()'s socket (mechanisms/_stream/child_link.ts),
 * driven directly: the order in which the child's connection and its first
 * bytes on stdout reach the parent must not decide wrongly.
 */
import { assert, assertEquals } from "@std/assert";
import {
  AF,
  connectSocket,
  openSocket,
  SOCK,
  unixAddress,
} from "../ffi/socket.ts";
import { libc } from "../ffi/load.ts";
import { ChildLink, inviteChild } from "../mechanisms/_stream/child_link.ts";
import { leakChecked } from "./_helpers.ts";

/**
 * Connects to the socket `invitation` offers as the child does (this
 * process plays the child: its pid is the one the link expects).
 */
function connectAsChild(
  invitation: NonNullable<ReturnType<typeof inviteChild>>,
): number {
  const name = invitation.value.slice(invitation.value.indexOf(":") + 1);
  const fd = openSocket(AF.UNIX, SOCK.STREAM);
  assertEquals(connectSocket(fd, unixAddress(name, true)), 0);
  return fd;
}

/**
 * Sends the child's first message on `fd` and checks that `reading`, a
 * read of the link's incoming side, gets it over the socket; closes the
 * link and `fd` either way.
 */
async function assertFirstMessageOverSocket(
  link: ChildLink,
  fd: number,
  reading: Promise<number | null>,
): Promise<void> {
  try {
    const frame = new Uint8Array([0, 0, 0, 2, 0x22, 0x22]);
    const written = libc().symbols.write(fd, frame, BigInt(frame.length));
    assertEquals(Number(written), frame.length);
    const count = await reading;
    assertEquals(link.mode, "socket");
    assertEquals(count, frame.length);
  } finally {
    link.incoming.close();
    link.outgoing.close();
    libc().symbols.close(fd);
  }
}

Deno.test(
  "ChildLink takes the child's connection even when the child's stdout is read first",
  leakChecked(async () => {
    const invitation = inviteChild();
    assert(invitation, "no socket could be offered here");
    // A line already waiting on stdout: its read resolves in a microtask,
    // long before the reactor can report a connection.
    const stdout = new ReadableStream<Uint8Array>({
      start(controller): void {
        controller.enqueue(new TextEncoder().encode("a log line\n"));
      },
    });
    const stdin = new WritableStream<Uint8Array>();
    const link = new ChildLink(stdout, stdin, Deno.pid, "child", invitation);
    // Its accept loop has spun in vain and parked on the reactor by now.
    await new Promise((resolve) => setTimeout(resolve, 50));
    // This process plays the child (its pid is the one the link expects):
    // it connects, as parentChannel() does, before it prints anything.
    const fd = connectAsChild(invitation);
    await assertFirstMessageOverSocket(
      link,
      fd,
      link.incoming.read(new Uint8Array(64)),
    );
  }),
);

Deno.test(
  "ChildLink takes the child's connection even when stdout is read between its accept and the accept's result",
  leakChecked(async () => {
    const invitation = inviteChild();
    assert(invitation, "no socket could be offered here");
    let stdoutController!: ReadableStreamDefaultController<Uint8Array>;
    const stdout = new ReadableStream<Uint8Array>({
      start(controller): void {
        stdoutController = controller;
      },
    });
    // The moment a busy event loop makes possible: the child's log line
    // arrives right as the accept(2) that takes its connection returns,
    // and the accept's result reaches the link several turns of the
    // microtask queue later than the line.
    const listener = invitation.listener;
    const wait = listener.wait.bind(listener);
    listener.wait = ((direction, attempt, wouldBlock, ...rest) =>
      wait(
        direction,
        () => {
          const outcome = attempt();
          if (!wouldBlock(outcome)) {
            stdoutController.enqueue(new TextEncoder().encode("a log line\n"));
          }
          return outcome;
        },
        wouldBlock,
        ...rest,
      ).then(async (outcome) => {
        for (let turn = 0; turn < 10; turn++) {
          await null;
        }
        return outcome;
      })) as typeof listener.wait;
    const stdin = new WritableStream<Uint8Array>();
    const link = new ChildLink(stdout, stdin, Deno.pid, "child", invitation);
    const reading = link.incoming.read(new Uint8Array(64));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await assertFirstMessageOverSocket(
      link,
      connectAsChild(invitation),
      reading,
    );
  }),
);
