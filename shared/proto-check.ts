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
