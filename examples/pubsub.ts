/**
 * One publisher, three subscriber processes: the publisher creates a topic
 * of price ticks, waits until the three subscribers have joined, publishes
 * a burst of ticks and a last "close" tick, and each subscriber prints what
 * it received, how many it missed (none here: the topic blocks the
 * publisher rather than overwrite what a subscriber has not read) and the
 * average price it saw. The third subscriber joins with `history: 5`, so
 * it also gets the five ticks the publisher sent before anyone joined.
 *
 * Run: deno task example:pubsub
 */
import { Publisher, Subscriber } from "../mod.ts";

type Tick = { symbol: string; price: number; last?: boolean };

const SUBSCRIBERS = 3;
const TICKS = 10_000;

async function subscriber(id: string, topic: string): Promise<void> {
  const history = id === "3" ? 5 : 0;
  using ticks = Subscriber.open<Tick>(topic, { history });
  console.log(`subscriber ${id} (pid ${Deno.pid}) joined, history ${history}`);
  let count = 0;
  let sum = 0;
  for await (const { value } of ticks) {
    if (value.last) break;
    count++;
    sum += value.price;
  }
  console.log(
    `subscriber ${id}: ${count} ticks, ${ticks.missed} missed, average price ${
      (sum / count).toFixed(3)
    }`,
  );
}

async function main(): Promise<void> {
  const topic = `/ipckit-example-ticks-${Deno.pid}`;
  await using publisher = Publisher.open<Tick>(topic, {
    create: true,
    exclusive: true,
    overflow: "block",
    capacity: 128,
    maxMessageSize: 128,
    unlinkOnClose: true,
  });
  // Sent before anyone joined: only a subscriber that asks for history gets these.
  for (let i = 0; i < 5; i++) {
    await publisher.send({ symbol: "ACME", price: 100 });
  }
  const children = Array.from(
    { length: SUBSCRIBERS },
    (_, i) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-ffi",
          "--allow-read=/dev/shm,/proc",
          "--allow-write=/dev/shm",
          import.meta.filename!,
          "subscribe",
          String(i + 1),
          topic,
        ],
      }).spawn(),
  );
  // Wait until every subscriber holds its slot, so each gets every tick.
  const joinedBy = performance.now() + 20_000;
  while (publisher.subscribers < SUBSCRIBERS) {
    if (performance.now() > joinedBy) {
      throw new Error("subscribers never joined");
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const started = performance.now();
  for (let i = 0; i < TICKS; i++) {
    await publisher.send({ symbol: "ACME", price: 100 + Math.sin(i / 100) });
  }
  await publisher.send({ symbol: "ACME", price: 0, last: true });
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `published ${TICKS} ticks to ${SUBSCRIBERS} subscribers in ${
      (seconds * 1000).toFixed(0)
    } ms (${Math.round(TICKS / seconds)} per second to each)`,
  );
  const statuses = await Promise.all(children.map((child) => child.status));
  if (statuses.some((status) => !status.success)) Deno.exitCode = 1;
}

if (Deno.args[0] === "subscribe") {
  await subscriber(Deno.args[1], Deno.args[2]);
} else {
  await main();
}
