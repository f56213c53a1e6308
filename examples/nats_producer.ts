/**
 * The producer of `deno task example:nats`: sends each line it is given
 * as a job, on whatever channel the transport opens.
 *
 * @module
 */

import { channelsOn, type Transport } from "./nats_channels.ts";

const [transport, ...texts] = Deno.args;
await using channels = await channelsOn(JSON.parse(transport) as Transport);
const jobs = await channels.jobs("send");
for (const [id, text] of texts.entries()) {
  await jobs.send({ id, text });
  console.log(`→ job ${id}: ${JSON.stringify(text)}`);
}
