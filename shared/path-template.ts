/**
 * `grpc-transcode`'s `path_template` (this gateway's extension; APISIX reads no path parameters, Envoy reads them
 * from google.api.http annotations): `/users/{user_id}/posts/{post.id}` names the request message's fields that path
 * segments fill. A segment is a literal, `*` (any one segment), or `{field}` / `{field.sub}` (one segment, percent-
 * decoded, read as a query parameter of that name is: coerced to the field's type). Checked at admin write time and
 * compiled once per route build.
 */

export interface PathTemplate {
  /** The fields the path fills, as [field path, value] pairs; undefined when the path does not fit the template. */
  match(path: string): [string, string][] | undefined;
}

const FIELD = /^\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}$/;
const LITERAL = /^[A-Za-z0-9._~!$&'()+,;=:@%-]*$/;
/** Segments a template may have: more is no real API's path. */
const MAX_SEGMENTS = 32;

type Segment = { readonly literal: string } | { readonly field: string } | { readonly any: true };

/** The template compiled, or why it cannot be. */
export function compilePathTemplate(template: string): PathTemplate | string {
  if (!template.startsWith('/')) return 'path_template must start with "/"';
  const parts = template.slice(1).split('/');
  if (parts.length > MAX_SEGMENTS) return `path_template has more than ${String(MAX_SEGMENTS)} segments`;
  const segments: Segment[] = [];
  const seen = new Set<string>();
  for (const part of parts) {
    const field = FIELD.exec(part)?.[1];
    if (field !== undefined) {
      if (seen.has(field)) return `path_template names the field ${field} twice`;
      seen.add(field);
      segments.push({ field });
    } else if (part === '*') segments.push({ any: true });
    else if (LITERAL.test(part)) segments.push({ literal: part });
    else return `path_template segment ${JSON.stringify(part)} is neither a literal, "*" nor "{field}"`;
  }
  return {
    match(path: string): [string, string][] | undefined {
      const query = path.indexOf('?');
      const given = (query < 0 ? path : path.slice(0, query)).slice(1).split('/');
      if (given.length !== segments.length) return undefined;
      const out: [string, string][] = [];
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i] as Segment;
        const text = given[i] as string;
        if ('literal' in segment) {
          if (text !== segment.literal) return undefined;
        } else if ('field' in segment) {
          if (text === '') return undefined;
          try {
            out.push([segment.field, decodeURIComponent(text)]);
          } catch {
            return undefined;
          }
        } else if (text === '') return undefined;
      }
      return out;
    },
  };
}
