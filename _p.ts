import { codecs, ShmChannel } from "./mod.ts";
const name = `/p-${Deno.pid}`;
using a = ShmChannel.open<Uint8Array>(name, { create: true, capacity: 1 << 16, codec: codecs.bytes(), unlinkOnClose: true });
using b = ShmChannel.open<Uint8Array>(name, { codec: codecs.bytes() });
const msg = new Uint8Array(64);
const t = performance.now();
for (let i = 0; i < 1000000; i++) { a.trySend(msg); b.tryReceive(); }
console.log("try send+receive us", ((performance.now() - t) / 1000).toFixed(3));
