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
    const name = invitation.value.slice(invitation.value.indexOf(":") + 1);
    const fd = openSocket(AF.UNIX, SOCK.STREAM);
    assertEquals(connectSocket(fd, unixAddress(name, true)), 0);
    try {
      const reading = link.incoming.read(new Uint8Array(64));
      // The child's first message, over the socket.
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
  }),
);
