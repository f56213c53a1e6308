// The ZeroMQ alternative of the benchmark driver, in its own Deno process
// because npm:zeromq needs `--node-modules-dir=manual` and the node_modules
// that `npm install` put in this folder. REQ/REP over ipc://, as ZeroMQ's
// authors intend for request/reply.
//
//   deno run --node-modules-dir=manual <flags> run.mjs '<plan as JSON>'
//   deno run --node-modules-dir=manual <flags> run.mjs peer <endpoint> <bytes>
//
// The client starts the peer, runs the plan and prints one JSON line:
// { samples } (µs per round trip, or MiB/s per one-way sample) or { error }.
import * as zmq from "zeromq";

const ONE_WAY_BYTES = 64 * 1024;
const FIRST_REPLY_MS = 10_000;

if (Deno.args[0] === "peer") {
  const [, endpoint, bytes] = Deno.args;
  const oneWay = Number(bytes) >= ONE_WAY_BYTES;
  // An orphaned peer must not wait forever for a client.
  setTimeout(() => Deno.exit(0), 15 * 60_000);
  const reply = new zmq.Reply();
  await reply.bind(endpoint);
  console.log("ready");
  const ack = new Uint8Array(0);
  for await (const [message] of reply) {
    if (message.byteLength === 1 && message[0] === 0xff) break; // stop
    await reply.send(oneWay ? ack : message);
  }
  reply.close();
} else {
  const plan = JSON.parse(Deno.args[0]);
  const dir = await Deno.makeTempDir({ prefix: "ipckit-bench-zmq-" });
  const endpoint = `ipc://${dir}/bench.ipc`;
  const peer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--node-modules-dir=manual",
      ...Deno.args.slice(1),
      import.meta.filename,
      "peer",
      endpoint,
      String(plan.bytes),
    ],
    stdout: "piped",
  }).spawn();
  // Whatever hangs (the peer's bind, the first reply), the driver hears back.
  const watchdog = setTimeout(() => {
    peer.kill("SIGKILL");
    Deno.removeSync(dir, { recursive: true });
    console.log(JSON.stringify({
      error: `no answer within ${
        FIRST_REPLY_MS / 500
      } s in Deno ${Deno.version.deno}`,
    }));
    Deno.exit(0);
  }, FIRST_REPLY_MS * 2);
  const request = new zmq.Request();
  try {
    const reader = peer.stdout.getReader();
    await reader.read(); // "ready"
    reader.releaseLock();
    request.connect(endpoint);
    const message = new Uint8Array(plan.bytes).fill(0x5a);
    const exchange = async () => {
      await request.send(message);
      await request.receive();
    };
    // A first reply that never comes must not hang the driver.
    let timer;
    await Promise.race([
      exchange(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `no reply within ${
                  FIRST_REPLY_MS / 1000
                } s: in Deno ${Deno.version.deno} npm:zeromq sends, but its receive never completes`,
              ),
            ),
          FIRST_REPLY_MS,
        );
      }),
    ]);
    clearTimeout(timer);
    clearTimeout(watchdog);
    const samples = [];
    if (plan.bytes < ONE_WAY_BYTES) {
      for (let i = 0; i < plan.warmUp; i++) await exchange();
      for (let i = 0; i < plan.roundTrips; i++) {
        const start = performance.now();
        await exchange();
        samples.push((performance.now() - start) * 1000);
      }
    } else {
      // REQ/REP allows one message in flight: each waits for its ack.
      for (let sample = 0; sample <= plan.samples; sample++) {
        const start = performance.now();
        for (let i = 0; i < plan.count; i++) await exchange();
        const seconds = (performance.now() - start) / 1000;
        if (sample > 0) {
          samples.push(plan.count * plan.bytes / 2 ** 20 / seconds);
        }
      }
    }
    await request.send(new Uint8Array([0xff]));
    console.log(JSON.stringify({ samples }));
  } catch (error) {
    console.log(JSON.stringify({ error: error.message }));
    peer.kill("SIGKILL");
  } finally {
    request.close();
    await peer.status;
    await Deno.remove(dir, { recursive: true });
    // A pending zeromq receive would keep the process alive.
    Deno.exit(0);
  }
}
