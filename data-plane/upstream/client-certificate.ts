/** A client certificate an upstream presents to its `grpcs` nodes (`upstream.tls`: inline, or an `ssls` object by id). */
export interface ClientCertificate {
  /** Where it came from, so sessions are pooled per certificate (`inline@<upstream>` or `ssl/<id>@<revision>`). */
  id: string;
  cert: string;
  key: string;
}
