/**
 * gRPC metadata as text, both ways: grpcurl's `-H 'name: value'` strings into grpc-js Metadata, and Metadata into a
 * flat record for recording and printing. Binary (`-bin`) values travel as base64 text.
 */
import { Metadata } from '@grpc/grpc-js';

/** grpcurl's MetadataFromHeaders: `name: value`, name trimmed and lower-cased, `-bin` values base64-decoded. */
export function metadataFromHeaders(headers: readonly string[]): Metadata {
  const metadata = new Metadata();
  for (const header of headers) {
    const colon = header.indexOf(':');
    const name = (colon === -1 ? header : header.slice(0, colon)).trim().toLowerCase();
    const value = colon === -1 ? '' : header.slice(colon + 1).trim();
    // grpc-js throws on names that are not valid metadata keys; the message says which.
    if (name.endsWith('-bin')) metadata.add(name, Buffer.from(value, 'base64'));
    else metadata.add(name, value);
  }
  return metadata;
}

/** Repeated keys joined with ", " (as HTTP would), binary values in base64. */
export function flattenMetadata(metadata: Metadata): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    flat[key] = values.map((value) => (typeof value === 'string' ? value : value.toString('base64'))).join(', ');
  }
  return flat;
}
