// The Node.js client of sdksign: gRPC over HTTP/2 (@connectrpc/connect-node), with the
// messages generated from protos/sdksign/v1/signature_service.proto by protoc-gen-es
// (src/gen, built by `make node-client`). What is written by hand here is small: the
// transport (plaintext or TLS with a CA), the caller's bearer token on every call, and
// the google.rpc.Status details of a refusal in plain fields.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { SignatureService } from "./gen/sdksign/v1/signature_service_pb.js";

export * from "./gen/sdksign/v1/signature_service_pb.js";
export { Code, ConnectError };

/** The client of SignatureService: `sign(...)` and `verify(...)`, typed from the proto. */
export type SdkSignClient = Client<typeof SignatureService>;

export interface SdkSignClientOptions {
  /** "http://127.0.0.1:50051" (plaintext, for loopback) or "https://sdksign.internal:50051" (TLS). */
  baseUrl: string;
  /** The caller's token, sent as `authorization: Bearer <token>` metadata on every call. */
  bearerToken?: string;
  /** PEM of the CA that signed the server's certificate (https only); default: Node's CAs. */
  ca?: string | Buffer;
  /** Each call's deadline in milliseconds (default 5000); a call may pass its own `timeoutMs`. */
  timeoutMs?: number;
}

/** A client over one HTTP/2 connection, opened on the first call and reused. */
export function createSdkSignClient(options: SdkSignClientOptions): SdkSignClient {
  const secure = new URL(options.baseUrl).protocol === "https:";
  if (options.ca !== undefined && !secure) {
    throw new Error(`ca is given but baseUrl ${options.baseUrl} is not https: use https://host:port`);
  }
  const interceptors: Interceptor[] = [];
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
    nodeOptions: options.ca === undefined ? {} : { ca: options.ca },
  });
  return createClient(SignatureService, transport);
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
