// The Node.js client of sdksign: gRPC over HTTP/2 (@connectrpc/connect-node), with the
// messages generated from protos/sdksign/v1/signature_service.proto by protoc-gen-es
// (src/gen, built by `make node-client`). What is written by hand here is small: the
// transport (plaintext, or TLS with a CA and a client certificate), the caller's bearer
// token on every call, plain words for a connection that fails for TLS on one side only,
// and the google.rpc.Status details of a refusal in plain fields.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { SignatureService } from "./gen/sdksign/v1/signature_service_pb.js";

export * from "./gen/sdksign/v1/signature_service_pb.js";
export { Code, ConnectError };

/** The client of SignatureService: `sign(...)`, `verify(...)` and the grant calls
 * (`beginGrant(...)`, `completeGrant(...)`, `removeGrant(...)`, `listGrants(...)`), typed
 * from the proto. */
export type SdkSignClient = Client<typeof SignatureService>;

export interface SdkSignClientOptions {
  /** "http://127.0.0.1:50051" (plaintext, for loopback) or "https://sdksign.internal:50051" (TLS). */
  baseUrl: string;
  /** The caller's token, sent as `authorization: Bearer <token>` metadata on every call. */
  bearerToken?: string;
  /** PEM of the CA that signed the server's certificate (https only); default: Node's CAs. */
  ca?: string | Buffer;
  /** PEM of this caller's client certificate (https only, with `key`): for servers that name
   * callers by certificate (tls_client_ca_file, as in examples/production-mtls.toml). */
  cert?: string | Buffer;
  /** PEM of the client certificate's private key (with `cert`). */
  key?: string | Buffer;
  /** Each call's deadline in milliseconds (default 5000); a call may pass its own `timeoutMs`. */
  timeoutMs?: number;
}

const BASE_URL_FORM = "http://host:port (plaintext) or https://host:port (TLS)";

/** `baseUrl` as a URL, or an Error naming it and the form it must have. */
function parseBaseUrl(baseUrl: string): URL {
  const wrong = (why: string) =>
    new Error(`baseUrl ${JSON.stringify(baseUrl)} ${why}: write ${BASE_URL_FORM}, e.g. http://127.0.0.1:50051`);
  if (!/^https?:\/\//i.test(baseUrl)) throw wrong("does not start with http:// or https://");
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw wrong("is not a URL");
  }
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "" || url.username !== "") {
    throw wrong("has more than a scheme, host and port");
  }
  return url;
}

/** The TLS options, checked: each needs https, and a certificate goes with its key. */
function tlsOptions(options: SdkSignClientOptions, secure: boolean): Pick<SdkSignClientOptions, "ca" | "cert" | "key"> {
  const { ca, cert, key } = options;
  const given = Object.entries({ ca, cert, key }).filter(([, value]) => value !== undefined);
  if (given.length > 0 && !secure) {
    const names = new Intl.ListFormat("en").format(given.map(([name]) => name));
    const verb = given.length === 1 ? "is" : "are";
    throw new Error(`${names} ${verb} given but baseUrl ${options.baseUrl} is not https: use https://host:port`);
  }
  if ((cert === undefined) !== (key === undefined)) {
    throw new Error("cert and key go together: the client certificate's PEM and its private key's");
  }
  return Object.fromEntries(given);
}

/** A client over one HTTP/2 connection, opened on the first call and reused. */
export function createSdkSignClient(options: SdkSignClientOptions): SdkSignClient {
  const secure = parseBaseUrl(options.baseUrl).protocol === "https:";
  const nodeOptions = tlsOptions(options, secure);
  const connection = { baseUrl: options.baseUrl, secure, withCert: nodeOptions.cert !== undefined };
  const interceptors: Interceptor[] = [explainConnectionFailures(connection)];
  const { bearerToken } = options;
  if (bearerToken !== undefined) {
    interceptors.push((next) => (request) => {
      request.header.set("authorization", `Bearer ${bearerToken}`);
      return next(request);
    });
  }
  const transport = createGrpcTransport({
    baseUrl: options.baseUrl,
    interceptors,
    defaultTimeoutMs: options.timeoutMs ?? 5000,
    nodeOptions,
  });
  return createClient(SignatureService, transport);
}

// Node's codes for a server certificate it does not trust.
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
]);

/** How this client connects: what a failed connection's message names. */
interface Connection {
  baseUrl: string;
  secure: boolean;
  withCert: boolean;
}

/** The code of the Node error under a failure, such as "ERR_SSL_WRONG_VERSION_NUMBER". */
function causeCode(failure: ConnectError): string | undefined {
  const code = (failure.cause as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/** What may help when a connection fails for TLS on one side only, or an untrusted or
 * missing certificate; undefined for any other failure. */
function connectionHint(failure: ConnectError, { baseUrl, secure, withCert }: Connection): string | undefined {
  const cause = causeCode(failure);
  const closed = `the server at ${baseUrl} closed the connection without an answer`;
  if (failure.code === Code.Canceled && failure.rawMessage.includes("stream closed with error code CANCEL")) {
    if (!secure) return `${closed}: if it serves TLS, use https:// (with ca)`;
    return withCert
      ? `${closed}: it may not accept this client certificate (one signed by its tls_client_ca_file?)`
      : `${closed}: it may want a client certificate (cert and key)`;
  }
  if (failure.code !== Code.Internal) return undefined;
  if (cause === "ERR_SSL_WRONG_VERSION_NUMBER") {
    return `the server at ${baseUrl} does not answer TLS: if it serves plaintext, use http://`;
  }
  if (cause !== undefined && UNTRUSTED.has(cause)) {
    return "the server's certificate is not signed by a CA this client trusts: pass ca, the PEM of the CA that signed it";
  }
  return undefined;
}

/** Words for a connection failure with a known cause (the code stays; the cause is kept). */
function explainConnectionFailures(connection: Connection): Interceptor {
  return (next) => async (request) => {
    try {
      return await next(request);
    } catch (error) {
      const failure = ConnectError.from(error);
      const hint = connectionHint(failure, connection);
      if (hint === undefined) throw error;
      const detail = causeCode(failure) ?? failure.rawMessage; // Node's code, not OpenSSL's text
      throw new ConnectError(`${hint} (${detail})`, failure.code, failure.metadata, undefined, error);
    }
  };
}

/** One refused field of a request: its proto path (such as "meeting.role") and what is allowed. */
export interface Violation {
  field: string;
  description: string;
}

/** A failed call, as the server's google.rpc.Status says it. */
export interface SdkSignStatus {
  /** The gRPC status name: "INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAVAILABLE", ... */
  code: string;
  /** The server's message, without the code. */
  message: string;
  /** google.rpc.BadRequest: each refused field (INVALID_ARGUMENT). */
  violations: Violation[];
  /** google.rpc.ErrorInfo's reason, such as "ROLE_NOT_ALLOWED" (PERMISSION_DENIED). */
  reason?: string;
  /** google.rpc.ErrorInfo's metadata, such as { rule: "role" }. */
  metadata: Record<string, string>;
  /** google.rpc.RetryInfo: how long to wait before trying again (RESOURCE_EXHAUSTED). */
  retryAfterMs?: number;
}

/** The status of any error a call threw (one that is not a ConnectError reads as UNKNOWN). */
export function statusOf(error: unknown): SdkSignStatus {
  const failure = ConnectError.from(error);
  const info = failure.findDetails(ErrorInfoSchema)[0];
  const delay = failure.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return {
    code: Code[failure.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(),
    message: failure.rawMessage,
    violations: failure
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations)
      .map(({ field, description }) => ({ field, description })),
    reason: info?.reason,
    metadata: { ...info?.metadata },
    retryAfterMs:
      delay === undefined ? undefined : Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6),
  };
}
