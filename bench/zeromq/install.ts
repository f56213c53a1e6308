/**
 * Installs npm:zeromq into bench/zeromq/node_modules with npm, once: after
 * that the benchmark runs offline. Nothing here is part of the package.
 *
 * @module
 */

const DIR = new URL("./", import.meta.url).pathname;

/** Runs `npm ci` in bench/zeromq unless node_modules is already there. */
export async function ensureZeromq(): Promise<void> {
  try {
    Deno.statSync(`${DIR}node_modules/zeromq/package.json`);
    return;
  } catch { /* not installed yet */ }
  console.error(
    "installing npm:zeromq into bench/zeromq/node_modules (npm ci)",
  );
  try {
    const { success } = await new Deno.Command("npm", {
      args: ["ci", "--no-fund", "--no-audit", "--loglevel=error"],
      cwd: DIR,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!success) console.error("npm ci failed: the ZeroMQ row will say so");
  } catch (error) {
    console.error(`cannot run npm (${error}): the ZeroMQ row will say so`);
  }
}
