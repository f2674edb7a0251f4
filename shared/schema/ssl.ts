/**
 * The SSL certificate schema (APISIX `_M.ssl`; docs/admin-api.md). `type: server` objects are chosen by SNI on
 * the data plane's TLS listener. Certificates are parsed at validation time (shared/validate.ts), so a bad PEM or
 * a key that does not match its certificate never reaches etcd.
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  CertificateSchema,
  Enum,
  HostSchema,
  ObjectMetaFields,
  PrivateKeySchema,
  StatusSchema,
} from './common.ts';

export const SslSchema = Type.Object(
  {
    ...ObjectMetaFields,
    type: Type.Optional(Enum(['server', 'client'] as const)),
    cert: CertificateSchema,
    key: PrivateKeySchema,
    certs: Type.Optional(Type.Array(CertificateSchema)),
    keys: Type.Optional(Type.Array(PrivateKeySchema)),
    sni: Type.Optional(HostSchema),
    snis: Type.Optional(Type.Array(HostSchema, { minItems: 1 })),
    status: Type.Optional(StatusSchema),
  },
  { additionalProperties: false },
);

export type SslConf = Static<typeof SslSchema>;
