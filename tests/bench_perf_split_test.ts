/**
 * How bench/cpu_profile.ts --perf reads `perf script` output: each
 * process's on-CPU time split into the kernel, libc, the deno binary and
 * JIT-compiled code.
 */

import { assertEquals, assertThrows } from "@std/assert";
import {
  describe,
  parsePerfScript,
  placeOf,
  splitByProcess,
} from "../bench/_perf_split.ts";

const SCRIPT = [
  "            deno  100/100     1000000  ffffffff81aab5db do_mq_timedreceive ([kernel.kallsyms])",
  "            deno  100/100     1000000  ffffffff81612825 do_syscall_64 ([kernel.kallsyms])",
  "            deno  100/100     1000000      7f32d4143829 __GI___mq_timedreceive (/usr/lib/x86_64-linux-gnu/libc.so.6)",
  "            deno  100/100     1000000      5620fdc67e9f [unknown] (/usr/lib/node_modules/deno/deno)",
  " V8 DefaultWorke  100/103     1000000      5620fdf883a8 [unknown] (/usr/lib/node_modules/deno/deno)",
  "            deno  100/100     1000000      7f329404d9c0 [unknown] (/tmp/perf-100.map)",
  "            deno  200/200     2000000  ffffffff81aab5db do_mq_timedreceive ([kernel.kallsyms])",
  "            deno  200/200     1000000      7f1 [unknown] ([vdso])",
  "",
].join("\n");

Deno.test("parsePerfScript() reads thread names with spaces and unknown symbols", () => {
  const samples = parsePerfScript(SCRIPT);
  assertEquals(samples.length, 8);
  assertEquals(samples[4], {
    comm: "V8 DefaultWorke",
    pid: 100,
    tid: 103,
    period: 1000000,
    symbol: "",
    dso: "/usr/lib/node_modules/deno/deno",
  });
  assertEquals(samples[0].symbol, "do_mq_timedreceive");
});

Deno.test("parsePerfScript() rejects a line that is not a sample", () => {
  assertThrows(
    () => parsePerfScript("perf: no samples\n"),
    TypeError,
    'got "perf: no samples"',
  );
});

Deno.test("placeOf() tells the kernel, libc, Deno and JIT code apart", () => {
  assertEquals(placeOf("[kernel.kallsyms]"), "kernel");
  assertEquals(placeOf("[vdso]"), "vdso (clock reads)");
  assertEquals(placeOf("/usr/lib/x86_64-linux-gnu/libc.so.6"), "libc");
  assertEquals(placeOf("/usr/bin/deno"), "deno binary");
  assertEquals(placeOf("/tmp/perf-4191.map"), "JIT");
  assertEquals(placeOf("[JIT] tid 4191"), "JIT");
  assertEquals(placeOf("/usr/lib/x86_64-linux-gnu/libm.so.6"), "other");
});

Deno.test("splitByProcess() sums each process's threads and its kernel symbols", () => {
  const [driver, peer] = splitByProcess(parsePerfScript(SCRIPT));
  assertEquals(driver.pid, 100);
  assertEquals(driver.total, 6_000_000);
  assertEquals(driver.mainThread, 5_000_000);
  assertEquals(Object.fromEntries(driver.places), {
    kernel: 2_000_000,
    libc: 1_000_000,
    "deno binary": 2_000_000,
    JIT: 1_000_000,
  });
  assertEquals(peer.total, 3_000_000);
  assertEquals(peer.kernelSymbols.get("do_mq_timedreceive"), 2_000_000);
  assertEquals(peer.kernelSymbols.size, 1);
  assertEquals(describe(peer, 1), [
    "pid 200 (deno): 3 ms on a CPU, 100.0% on its main thread",
    "   66.7%  kernel",
    "   33.3%  vdso (clock reads)",
    "  kernel: do_mq_timedreceive 66.7%",
  ]);
});
