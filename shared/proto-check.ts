/**
 * What the admin API and the data plane check of a proto's text: that protobufjs parses it (its message, with the
 * line it gives and the column found here, since protobufjs gives none), and which files it imports, each one a
 * well-known type (`google/protobuf/<name>.proto`, bundled with protobufjs) or another proto by `"<id>.proto"`.
 * protobufjs (CommonJS, already in the tree through @grpc/proto-loader) is loaded on first use.
 */
import { createRequire } from 'node:module';

export type Protobuf = typeof import('protobufjs');
let protobuf: Protobuf | undefined;

/** protobufjs, loaded on first use (both planes: a process without protos never loads it). */
export function loadProtobuf(): Protobuf {
  protobuf ??= createRequire(import.meta.url)('protobufjs') as Protobuf;
  return protobuf;
}

/** `import "x.proto"` of another proto object: its id. */
const PROTO_IMPORT = /^([A-Za-z0-9_.-]{1,64})\.proto$/;
const WELL_KNOWN = /^google\/protobuf\/[a-z_]+\.proto$/;

export interface ParsedProto {
  /** Ids of the other protos it imports (`"<id>.proto"`). */
  readonly protoImports: readonly string[];
}

/** The proto's imports, or a message saying why it cannot be used (`line 4, column 1: illegal token '}' …`). */
export function checkProtoText(content: string): ParsedProto | string {
  const pb = loadProtobuf();
  let parsed: ReturnType<Protobuf['parse']>;
  try {
    parsed = pb.parse(content, { keepCase: true });
  } catch (err) {
    return located(content, err instanceof Error ? err.message : String(err));
  }
  const protoImports: string[] = [];
  for (const file of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) {
    if (WELL_KNOWN.test(file)) {
      if (!(file in pb.common)) return `import "${file}": not a well-known type protobufjs bundles (${Object.keys(pb.common).filter((k) => k !== 'get').join(', ')})`;
      continue;
    }
    const id = PROTO_IMPORT.exec(file)?.[1];
    if (id === undefined) return `import "${file}": a proto imports google/protobuf/*.proto or another proto by "<id>.proto"`;
    protoImports.push(id);
  }
  return { protoImports };
}

/** protobufjs's `… (line N)` with the column of the token it names, found on that line. */
function located(content: string, message: string): string {
  const line = /\(line (\d+)\)$/.exec(message);
  if (line === null) return message;
  const lineNumber = Number(line[1]);
  const text = content.split('\n')[lineNumber - 1] ?? '';
  const token = /'([^']*)'/.exec(message)?.[1];
  const index = token === undefined || token === '' ? -1 : text.indexOf(token);
  const where = index >= 0 ? `line ${String(lineNumber)}, column ${String(index + 1)}` : `line ${String(lineNumber)}`;
  return `${where}: ${message.slice(0, line.index).trimEnd()}`;
}

/** Imports followed from one proto at most (a bound on a chain or a web of imports). */
export const MAX_PROTO_FILES = 256;
const WELL_KNOWN_PREFIX = 'google/protobuf/';

export type ProtoRoot = InstanceType<Protobuf['Root']>;

export type CompiledProtoText = { readonly ok: true; readonly root: ProtoRoot; readonly ids: readonly string[] } | { readonly ok: false; readonly error: string; readonly ids: readonly string[] };

/**
 * Proto `id` compiled with what it imports into one protobufjs Root, every type resolved: other protos by
 * `"<id>.proto"`, their text from `textOf` (undefined: absent), and the well-known types protobufjs bundles. `ids`:
 * the protos read, `id` first. What fails (a missing import, a type no file defines, too many files) is the error.
 */
export function compileProtoText(id: string, textOf: (id: string) => string | undefined): CompiledProtoText {
  const pb = loadProtobuf();
  const root = new pb.Root();
  const ids: string[] = [];
  const added = new Set<string>();
  const pending = [`${id}.proto`];
  try {
    while (pending.length > 0) {
      const file = pending.shift() as string;
      if (added.has(file)) continue;
      if (added.size >= MAX_PROTO_FILES) throw new Error(`more than ${String(MAX_PROTO_FILES)} files imported`);
      added.add(file);
      if (file.startsWith(WELL_KNOWN_PREFIX)) {
        const common = (pb.common as unknown as Record<string, { nested?: Parameters<ProtoRoot['addJSON']>[0] } | undefined>)[file];
        if (common?.nested === undefined) throw new Error(`import "${file}": not a well-known type protobufjs bundles`);
        root.addJSON(common.nested);
        continue;
      }
      const importedId = file.slice(0, -'.proto'.length);
      const text = textOf(importedId);
      if (text === undefined) throw new Error(`import "${file}": no proto ${importedId}`);
      ids.push(importedId);
      const parsed = pb.parse(text, root, { keepCase: true });
      for (const next of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) pending.push(next);
    }
    root.resolveAll();
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err), ids };
  }
  return { ok: true, root, ids };
}

/**
 * The text of proto `id` (given: `text`) and of every proto it imports, transitively, read with `fetch` (the admin
 * API's store): what compileProtoText needs at write time. An import that cannot be read is left out (the compile
 * then names it).
 */
export async function gatherProtoTexts(id: string, text: string, fetch: (id: string) => Promise<string | undefined>): Promise<Map<string, string>> {
  const texts = new Map<string, string>([[id, text]]);
  const pending = [text];
  while (pending.length > 0 && texts.size < MAX_PROTO_FILES) {
    const parsed = checkProtoText(pending.shift() as string);
    if (typeof parsed === 'string') continue;
    for (const imported of parsed.protoImports) {
      if (texts.has(imported)) continue;
      const found = await fetch(imported);
      if (found === undefined) continue;
      texts.set(imported, found);
      pending.push(found);
    }
  }
  return texts;
}

export type TranscodeMethod = ReturnType<ProtoRoot['lookupService']>['methods'][string];

/** The method `service`/`method` of `root` that grpc-transcode calls, or why it cannot call it. */
export function findTranscodeMethod(root: ProtoRoot, protoId: string, service: string, method: string): TranscodeMethod | string {
  let found: ReturnType<ProtoRoot['lookupService']>;
  try {
    found = root.lookupService(service);
  } catch {
    return `proto ${protoId} defines no service ${service}`;
  }
  const rpc = found.methods[method];
  if (rpc === undefined) return `service ${service} of proto ${protoId} has no method ${method}`;
  if (rpc.requestStream === true) return `${service}/${method} is client-streaming; an HTTP request carries one message`;
  return rpc;
}
