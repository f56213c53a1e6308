/**
 * The cross-process benchmark driver: for each transport, the round trip of a
 * 64-byte and a 4 KiB message to an echoing peer process, as median and p99
 * over many round trips after a warm-up.
 *
 *   deno task bench:driver            full run (10,000 round trips per row)
 *   deno task bench:driver --quick    a quick look (1,000 round trips per row)
 *   deno task bench:driver --only=message   rows whose name contains "message"
 *
 * Writes bench/results.json beside the table it prints.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { summarize, type Summary } from "./_stats.ts";
import type { Transport } from "./transports/_transport.ts";
import { messageQueueTransports } from "./transports/message_queue.ts";
import { sharedMemoryTransports } from "./transports/shared_memory.ts";

const TRANSPORTS: Transport[] = [
  ...messageQueueTransports,
  ...sharedMemoryTransports,
];
const SIZES = [64, 4096];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    out: {
      type: "string",
      default: new URL("./results.json", import.meta.url).pathname,
    },
  },
});
const roundTrips = values.quick ? 1_000 : 10_000;
const warmUp = Math.ceil(roundTrips / 10);

interface Row extends Summary {
  transport: string;
  kind: Transport["kind"];
  bytes: number;
}

async function measure(transport: Transport, bytes: number): Promise<Row> {
  const session = await transport.connect(bytes);
  const message = new Uint8Array(bytes).fill(0x5a);
  const samples = new Float64Array(roundTrips);
  try {
    for (let i = 0; i < warmUp; i++) await session.roundTrip(message);
    for (let i = 0; i < roundTrips; i++) {
      const start = performance.now();
      await session.roundTrip(message);
      samples[i] = (performance.now() - start) * 1000;
    }
  } finally {
    await session.close();
  }
  return {
    transport: transport.name,
    kind: transport.kind,
    bytes,
    ...summarize([...samples]),
  };
}

const rows: Row[] = [];
const selected = TRANSPORTS.filter((t) =>
  !values.only || t.name.includes(values.only)
);
console.log(
  `ipckit cross-process round trips: ${roundTrips} per row after ${warmUp} warm-up`,
);
console.log(
  "transport".padEnd(36),
  "size".padStart(6),
  "median µs".padStart(10),
  "p99 µs".padStart(10),
);
for (const transport of selected) {
  for (const bytes of SIZES) {
    const row = await measure(transport, bytes);
    rows.push(row);
    console.log(
      row.transport.padEnd(36),
      String(bytes).padStart(6),
      row.median.toFixed(1).padStart(10),
      row.p99.toFixed(1).padStart(10),
    );
  }
}

await Deno.writeTextFile(
  values.out!,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      deno: Deno.version.deno,
      os: `${Deno.build.os}/${Deno.build.arch}`,
      cpus: navigator.hardwareConcurrency,
      roundTrips,
      rows,
    },
    null,
    2,
  ) + "\n",
);
console.log(`wrote ${values.out}`);
