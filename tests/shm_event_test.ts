import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { SharedMemory, ShmEvent } from "../mod.ts";
import { leakChecked, spawnFixture, uniqueName } from "./_helpers.ts";

const FLAGS = [
  "--allow-ffi",
  "--allow-read=/dev/shm",
  "--allow-write=/dev/shm",
];

function _memory(size = 256): SharedMemory {
  return SharedMemory.open(uniqueName("event"), {
    create: true,
    size,
    unlinkOnClose: true,
  });
}

Deno.test(
  "ShmEvent listeners hear each notified id once, with how many times it was notified",
  leakChecked(() => {
    using memory = _memory();
    using event = ShmEvent.at(memory, 0, { ids: 3 });
    const first = event.listen();
    event.notify(2);
    const second = event.listen();
    event.notify(0);
    event.notify(2);
    assertEquals(first.tryWait(), [0, 2]);
    assertEquals([...first.counts()], [[0, 1], [2, 2]]);
    assertEquals(first.tryWait(), [], "edge-triggered: heard once");
    assertEquals(second.tryWait(), [0, 2], "nothing is consumed");
    assertEquals(second.counts().get(2), 1);
  }),
);

Deno.test(
  "ShmEventListener.wait() sleeps until another process notifies",
  leakChecked(async () => {
    using memory = _memory();
    using event = ShmEvent.at(memory, 64, { ids: 4 });
    const listener = event.listen();
    const child = spawnFixture("futex_peer.ts", FLAGS, [
      "notify",
      memory.name,
      "3",
    ]);
    let heard = 0;
    while (heard < 3) {
      const ids = await listener.wait({ timeout: 5000 });
      assertEquals(ids, [3]);
      heard += listener.counts().get(3)!;
    }
    assertEquals(heard, 3);
    assertEquals((await child.output()).code, 0);
    const sleepers = memory.view(Int32Array, 64, 2)[1];
    assertEquals(sleepers, 0, "no sleeper is left counted");
  }),
);

Deno.test(
  "ShmEvent counts parked listeners, so notify() calls futex only when one sleeps",
  leakChecked(async () => {
    using memory = _memory();
    using event = ShmEvent.at(memory, 0);
    const listener = event.listen();
    const words = memory.view(Int32Array, 0, 3);
    event.notify();
    assertEquals(words[1], 0, "no sleeper");
    const waiting = listener.wait({ timeout: 5000 });
    assertEquals(await waiting, [0], "an id already notified is heard at once");
    const parked = listener.wait({ timeout: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assertEquals(words[1], 1, "a parked listener counts itself");
    event.notify();
    assertEquals(await parked, [0]);
    assertEquals(words[1], 0);
  }),
);

Deno.test(
  "ShmEventListener.waitSync() returns notified ids and times out otherwise",
  leakChecked(() => {
    using memory = _memory();
    using event = ShmEvent.at(memory, 0, { ids: 2 });
    const listener = event.listen();
    event.notify(1);
    assertEquals(listener.waitSync({ timeout: 100 }), [1]);
    assertThrows(
      () => listener.waitSync({ timeout: 20 }),
      Deno.errors.TimedOut,
    );
  }),
);

Deno.test(
  "Closing the memory ends a pending ShmEventListener.wait() with BadResource",
  leakChecked(async () => {
    const memory = _memory();
    const event = ShmEvent.at(memory, 0);
    const waiting = event.listen().wait();
    memory.close();
    await assertRejects(() => waiting, Deno.errors.BadResource, "is closed");
    assert(event.closed);
    assertThrows(() => event.notify(), Deno.errors.BadResource);
  }),
);

Deno.test(
  "ShmEvent refuses bad ids, offsets and regions before any system call",
  leakChecked(() => {
    using memory = _memory(64);
    assertThrows(() => ShmEvent.size(0), RangeError, "ids must be");
    assertEquals(ShmEvent.size(14), 64);
    assertThrows(
      () => ShmEvent.at(memory, 0, { ids: 15 }),
      RangeError,
      "do not fit",
    );
    assertThrows(() => ShmEvent.at(memory, 2), RangeError, "multiple of 4");
    assertThrows(
      // @ts-expect-error: an unknown option
      () => ShmEvent.at(memory, 0, { id: 1 }),
      TypeError,
    );
    using event = ShmEvent.at(memory, 0, { ids: 2 });
    assertThrows(() => event.notify(2), RangeError, "from 0 to 1");
  }),
);
