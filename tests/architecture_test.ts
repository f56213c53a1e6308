/**
 * The layering rules of DESIGN.md, checked on the module graph that
 * `deno info --json` reports, so they stay true:
 *
 * - no import cycle, counting type-only imports;
 * - nothing outside `mechanisms/` imports a private file of it (tests of
 *   private files aside; this test reads the graph of everything else);
 * - a private file imports a public module only for its types, except
 *   `errors.ts`, the error classes every layer throws;
 * - nothing in `ffi/` imports `mechanisms/`;
 * - no mechanism lays out a C struct by hand: none imports a struct layout
 *   from `ffi/` (those are for `ffi/` itself);
 * - every per-mechanism entry point in deno.json exports only what `mod.ts`
 *   exports, so the two surfaces agree.
 */
import { assert, assertEquals } from "@std/assert";
import { fromFileUrl, join, relative } from "@std/path";
import { leakChecked } from "./_helpers.ts";

const ROOT = fromFileUrl(new URL("../", import.meta.url));
const DECODER = new TextDecoder();

/** One module's dependencies on other files of this repository. */
interface _Edge {
  /** The file imported, relative to the repository. */
  to: string;
  /** Whether the import brings values (`import`), not only types (`import type`). */
  code: boolean;
}

/** Every `*.ts` file under `dir` (relative to the repository), recursively. */
function _files(dir: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(join(ROOT, dir))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory && entry.name !== "node_modules") {
      found.push(..._files(path));
    } else if (entry.isFile && entry.name.endsWith(".ts")) {
      found.push(path);
    }
  }
  return found;
}

/** The entry points deno.json publishes, relative to the repository. */
function _exports(): Record<string, string> {
  const config = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  return Object.fromEntries(
    Object.entries(config.exports as Record<string, string>).map((
      [name, path],
    ) => [name, path.replace(/^\.\//, "")]),
  );
}

/**
 * The graph of `roots` and everything they import, from one `deno info`
 * of a module that imports them all: file -> its imports of repository files.
 */
async function _graph(roots: string[]): Promise<Map<string, _Edge[]>> {
  const dir = await Deno.makeTempDir({ prefix: "ipckit-test-architecture-" });
  try {
    const all = join(dir, "all.ts");
    await Deno.writeTextFile(
      all,
      roots.map((root) =>
        `import ${JSON.stringify(new URL(root, `file://${ROOT}`).href)};\n`
      ).join(""),
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `--config=${join(ROOT, "deno.json")}`, all],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(output.success, DECODER.decode(output.stderr));
    const info = JSON.parse(DECODER.decode(output.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: {
          code?: { specifier: string };
          type?: { specifier: string };
        }[];
      }[];
    };
    const local = (specifier: string) =>
      specifier.startsWith(`file://${ROOT}`)
        ? relative(ROOT, fromFileUrl(specifier))
        : undefined;
    const graph = new Map<string, _Edge[]>();
    for (const module of info.modules) {
      const from = local(module.specifier);
      if (from === undefined) continue;
      const edges: _Edge[] = [];
      for (const dependency of module.dependencies ?? []) {
        const target = dependency.code ?? dependency.type;
        const to = target && local(target.specifier);
        if (to !== undefined) edges.push({ to, code: !!dependency.code });
      }
      graph.set(from, edges);
    }
    return graph;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What everything but the tests is: the published graph, the examples, the benchmarks. */
function _roots(): string[] {
  return [
    ...new Set([
      "mod.ts",
      "cli.ts",
      ...Object.values(_exports()),
      ..._files("examples"),
      ..._files("bench"),
    ]),
  ];
}

const _isPrivate = (file: string) => /^mechanisms\/_[^/]+\//.test(file);
const _isPublic = (file: string) => /^mechanisms\/[^_/][^/]*\.ts$/.test(file);

/**
 * Files outside `mechanisms/` that reach a private file on purpose, each
 * with its reason. The test fails when another appears, or one of these
 * stops needing it (so the list only shrinks).
 */
const _KNOWN_REACHES: Record<string, string> = {
  // No public API makes a raw pipe to wait on; the idle-wait benchmark
  // measures exactly the descriptor streams parentChannel({ direct }) uses.
  "bench/fixtures/idle_waiter.ts": "mechanisms/_stream/fd_streams.ts",
  // The benchmark sizes its queues to the system limits, read as ipckit does.
  "bench/transports/message_queue.ts": "mechanisms/_kernel/mq_limits.ts",
};

Deno.test(
  "The module graph has no import cycle, type-only imports included",
  leakChecked(async () => {
    const graph = await _graph(_roots());
    assert(graph.size > 100, `only ${graph.size} modules in the graph`);
    const state = new Map<string, "visiting" | "done">();
    const cycles: string[] = [];
    const visit = (file: string, path: string[]) => {
      state.set(file, "visiting");
      for (const { to } of graph.get(file) ?? []) {
        if (state.get(to) === "visiting") {
          cycles.push([...path.slice(path.indexOf(to)), to].join(" -> "));
        } else if (!state.has(to)) {
          visit(to, [...path, to]);
        }
      }
      state.set(file, "done");
    };
    for (const file of graph.keys()) {
      if (!state.has(file)) visit(file, [file]);
    }
    assertEquals(cycles, []);
  }),
);

Deno.test(
  "Nothing outside mechanisms/ imports a private file of it, and ffi/ imports nothing of mechanisms/",
  leakChecked(async () => {
    const graph = await _graph(_roots());
    const reaches: string[] = [];
    const ffiReaches: string[] = [];
    for (const [file, edges] of graph) {
      for (const { to } of edges) {
        if (!file.startsWith("mechanisms/") && _isPrivate(to)) {
          if (_KNOWN_REACHES[file] !== to) reaches.push(`${file} -> ${to}`);
        }
        if (file.startsWith("ffi/") && to.startsWith("mechanisms/")) {
          ffiReaches.push(`${file} -> ${to}`);
        }
      }
    }
    assertEquals(reaches, [], "files outside mechanisms/ reach inside");
    assertEquals(ffiReaches, [], "ffi/ imports mechanisms/");
    for (const [file, target] of Object.entries(_KNOWN_REACHES)) {
      const edges = graph.get(file);
      if (edges === undefined) continue; // that file is gone: fine
      assert(
        edges.some(({ to }) => to === target),
        `${file} no longer imports ${target}: remove it from _KNOWN_REACHES`,
      );
    }
  }),
);

Deno.test(
  "A private file imports a public module only for its types, errors.ts aside",
  leakChecked(async () => {
    const graph = await _graph(_roots());
    const found: string[] = [];
    for (const [file, edges] of graph) {
      if (!_isPrivate(file)) continue;
      for (const { to, code } of edges) {
        if (code && _isPublic(to) && to !== "mechanisms/errors.ts") {
          found.push(`${file} -> ${to}`);
        }
      }
    }
    assertEquals(found, []);
  }),
);

/**
 * The exports of ffi/ that lay out a C struct (offsets, sizes to build one):
 * only ffi/ itself may use them.
 */
const _STRUCT_LAYOUTS = new Set([
  "STAT",
  "STATVFS",
  "STATFS",
  "DIRENT",
  "MQ_ATTR",
  "RLIMIT",
  "TIMESPEC_SIZE",
  "POLLFD_SIZE",
  "EPOLL_EVENT",
  "FUTEX_WAITV",
  "SOCKADDR_UN",
  "SOCKADDR_STORAGE_SIZE",
  "IPC_PERM",
  "MSQID_DS",
  "SHMID_DS",
  "SEMID_DS",
  "SEMBUF",
  "MTYPE_SIZE",
  "FLOCK",
]);

Deno.test(
  "No mechanism lays out a C struct by hand: none imports a struct layout from ffi/",
  leakChecked(() => {
    const found: string[] = [];
    const imports =
      /import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*"((?:\.\.\/)+ffi\/[^"]+)"/g;
    for (const file of _files("mechanisms")) {
      const source = Deno.readTextFileSync(join(ROOT, file));
      for (const [, names, from] of source.matchAll(imports)) {
        for (const name of names.split(",")) {
          const imported = name.trim().replace(/^type\s+/, "").split(/\s+/)[0];
          if (_STRUCT_LAYOUTS.has(imported)) {
            found.push(`${file} imports ${imported} from ${from}`);
          }
        }
      }
    }
    assertEquals(found, []);
    // The check sees imports at all: semaphore.ts takes SEM_T's size from ffi.
    const semaphore = Deno.readTextFileSync(
      join(ROOT, "mechanisms/semaphore.ts"),
    );
    assert([...semaphore.matchAll(imports)].length > 0);
  }),
);

/** The names an entry point exports, types included, from `deno doc --json`. */
async function _exportedNames(entry: string): Promise<Set<string>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, DECODER.decode(output.stderr));
  const doc = JSON.parse(DECODER.decode(output.stdout)) as {
    nodes: Record<
      string,
      {
        symbols: {
          name: string;
          declarations: { declarationKind?: string }[];
        }[];
      }
    >;
  };
  const names = new Set<string>();
  for (const node of Object.values(doc.nodes)) {
    for (const symbol of node.symbols) {
      if (symbol.declarations.some((d) => d.declarationKind === "export")) {
        names.add(symbol.name);
      }
    }
  }
  return names;
}

/** Entry points of their own, which mod.ts does not re-export. */
const _OWN_ENTRY_POINTS = new Set([".", "./nats", "./inventory", "./cli"]);

Deno.test(
  "Every per-mechanism entry point exports only what mod.ts exports",
  leakChecked(async () => {
    const root = await _exportedNames("mod.ts");
    assert(root.has("MessageQueue") && root.has("Channel"));
    for (const hidden of ["FRAME_HEADER_BYTES", "SHM_DIR", "OWNER_CHECK_MS"]) {
      assert(!root.has(hidden), `mod.ts exports ${hidden}`);
    }
    const extra: string[] = [];
    for (const [name, path] of Object.entries(_exports())) {
      if (_OWN_ENTRY_POINTS.has(name)) continue;
      for (const symbol of await _exportedNames(path)) {
        if (!root.has(symbol)) extra.push(`${name} (${path}): ${symbol}`);
      }
    }
    assertEquals(extra, []);
  }),
);
