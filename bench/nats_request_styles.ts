/**
 * Which request/reply to build `Nats.client()` on: NATS's own (a reply
 * subject per request, the payload as it is) or ipckit's RPC envelope over
 * two subjects (`serve`/`client` of the rpc module on `Nats.channel()`),
 * with nats.js alone as the floor. All three run against one server and one
 * peer process, taking turns round after round, so that a change of load on
 * the machine, or of how the three processes land on its cores (the driver
 * shows whole sessions at 80 µs and others at 260 µs), hits them alike.
 *
 *   deno task bench:nats-requests [rounds] [requests per round]
 *
 * Prints each round's medians and, at the end, the median of each style
 * over all requests and how many rounds each style won.
 *
 * @module
 */

import { connect as natsConnect } from "@nats-io/transport-node";
import { client, codecs, duplex, type RpcEnvelope } from "../mod.ts";
import { Nats, NatsServer } from "../mechanisms/nats.ts";
import { summarize } from "./_stats.ts";
import { firstLine, spawnPeer, stopPeer } from "./transports/_transport.ts";

const rounds = Number(Deno.args[0] ?? 10);
const perRound = Number(Deno.args[1] ?? 2_000);
const payload = new Uint8Array(64).fill(0x5a);
const text = "x".repeat(64);

await using server = await NatsServer.start();
const peer = spawnPeer(
  "nats_echo.ts",
  [`--allow-net=127.0.0.1:${server.port}`],
  [server.url, "core"],
  "piped",
);
await firstLine(peer);
const nats = await Nats.connect({ servers: server.url });
const nc = await natsConnect({ servers: server.url });

const native = nats.client<Uint8Array, Uint8Array>("bench.rpc", {
  requestCodec: codecs.bytes(),
  responseCodec: codecs.bytes(),
});
type Envelope = RpcEnvelope<string, string>;
const inbox = nats.inbox();
const envelope = client<string, string>(duplex(
  await nats.channel<Envelope>("bench.envelope", {
    read: false,
    replyTo: inbox,
  }),
  await nats.channel<Envelope>(inbox, { write: false }),
));

const styles: Record<string, () => Promise<unknown>> = {
  "NATS request/reply (Nats.client)": () =>
    native.request(payload, { timeout: 10_000 }),
  "ipckit envelope over subjects": () =>
    envelope.request(text, { timeout: 10_000 }),
  "nats.js request() alone": () =>
    nc.request("bench.raw", payload, { timeout: 10_000 }),
};
const all = new Map<string, number[]>(Object.keys(styles).map((k) => [k, []]));
const wins = new Map<string, number>(Object.keys(styles).map((k) => [k, 0]));

for (const style of Object.values(styles)) {
  for (let i = 0; i < 500; i++) await style(); // warm-up
}
for (let round = 1; round <= rounds; round++) {
  const medians: [string, number][] = [];
  for (const [name, style] of Object.entries(styles)) {
    const samples: number[] = [];
    for (let i = 0; i < perRound; i++) {
      const start = performance.now();
      await style();
      samples.push((performance.now() - start) * 1000);
    }
    all.get(name)!.push(...samples);
    medians.push([name, summarize(samples).median]);
  }
  // Only the two ipckit styles compete; nats.js alone is the floor.
  const [a, b] = medians.slice(0, 2);
  const winner = a[1] <= b[1] ? a[0] : b[0];
  wins.set(winner, wins.get(winner)! + 1);
  console.log(
    `round ${round}: ` +
      medians.map(([name, m]) => `${name} ${m.toFixed(1)} µs`).join(", "),
  );
}
console.log(`\n${rounds} rounds of ${perRound} sequential 64 B requests each:`);
for (const [name, samples] of all) {
  const { median, p99 } = summarize(samples);
  const won = name.startsWith("nats.js")
    ? ""
    : `, fastest ipckit style in ${wins.get(name)} of ${rounds} rounds`;
  console.log(
    `  ${name}: median ${median.toFixed(1)} µs, p99 ${p99.toFixed(1)} µs${won}`,
  );
}

native.close();
envelope.close();
await nc.close();
await nats.close();
peer.kill("SIGTERM");
await stopPeer(peer);
