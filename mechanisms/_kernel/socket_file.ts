/**
 * The file a Unix socket lives at: checking it before binding, replacing a
 * stale one left by a crashed server, and removing ours when we close.
 *
 * @module
 */

/**
 * Makes `path` free for a new listener or datagram socket. A socket file that
 * nobody has bound (a stream connect is refused) is stale and removed;
 * anything else is left alone and reported. A live datagram socket answers a
 * stream connect with EPROTOTYPE rather than a refusal, so the probe tells
 * both kinds apart from leftovers.
 *
 * @throws {Deno.errors.AddrInUse} when a process is listening on `path`
 * @throws {Deno.errors.AlreadyExists} when `path` exists and is not a socket
 */
export async function freeUnixPathForListening(
  path: string,
  action: string,
): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (!info.isSocket) {
    throw new Deno.errors.AlreadyExists(
      `Cannot ${action}: the path exists and is not a socket, so it is left alone`,
    );
  }
  // A socket file survives its server when that server crashes. Only a
  // connection attempt tells a live listener from such a leftover.
  try {
    const probe = await Deno.connect({ transport: "unix", path });
    probe.close();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return; // removed meanwhile
    if (error instanceof Deno.errors.ConnectionRefused) {
      await _removeIfPresent(path);
      return;
    }
    if (error instanceof Deno.errors.NotCapable) throw error;
    // Anything else (EPROTOTYPE from a bound datagram socket) means it is alive.
  }
  throw new Deno.errors.AddrInUse(
    `Cannot ${action}: another process is using it`,
  );
}

/**
 * The socket file a listener or datagram socket has just bound, remembered
 * by identity so that closing removes that file only while it is still the
 * same one: another server may have replaced it since.
 */
export interface BoundSocketFile {
  /** Where the socket file is. */
  readonly path: string;
  /** Device and inode at bind time; undefined when it could not be read. */
  readonly identity: string | undefined;
}

/** Remembers the socket file just bound at `path`. */
export function boundSocketFile(path: string): BoundSocketFile {
  return { path, identity: _fileIdentity(path) };
}

/**
 * Closes a listener or datagram socket (one that Deno has closed already is
 * not an error), then removes its socket file if it is still ours.
 */
export function closeBoundSocket(
  socket: { close(): void },
  file: BoundSocketFile | undefined,
): void {
  try {
    socket.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
  if (file) _removeIfSame(file.path, file.identity);
}

/** The identity of the file at `path`, to tell our socket from a replacement. */
function _fileIdentity(path: string): string | undefined {
  try {
    const info = Deno.lstatSync(path);
    return `${info.dev}:${info.ino}`;
  } catch {
    return undefined;
  }
}

/** Removes `path` if it is still the file `identity` names. */
function _removeIfSame(path: string, identity: string | undefined): void {
  if (identity === undefined || _fileIdentity(path) !== identity) return;
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function _removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
