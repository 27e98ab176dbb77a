// A Node.js backend route in the shape of Zoom's sample auth endpoint: POST /zoom/signature
// with {"meetingNumber": ..., "role": 0 | 1} (and, as the sample, optional "expirationSeconds"
// and "videoWebRtcMode") answers {"signature": ..., "sdkKey": ...}. The token comes from
// sdksign's Sign over gRPC; this backend never holds the SDK secret.
//
//   SDKSIGN_URL            sdksign's address (default http://127.0.0.1:50051; https://... for TLS)
//   SDKSIGN_BEARER_TOKEN   this backend's caller token ([[callers]] token_sha256 in sdksign's config)
//   SDKSIGN_CA_FILE        PEM of the CA that signed sdksign's certificate (with https)
//   SDKSIGN_CERT_FILE      PEM of this backend's client certificate, for a server that names
//   SDKSIGN_KEY_FILE       callers by certificate ([[callers]] cert_identity), and its key
//   HOST, PORT             where this backend listens (default 127.0.0.1:4000; PORT=0: any free port)
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { Role, createSdkSignClient, statusOf } from "@sdksign/client";

const MAX_BODY = 4096;

const pem = (variable) => (process.env[variable] ? readFileSync(process.env[variable]) : undefined);
const client = createSdkSignClient({
  baseUrl: process.env.SDKSIGN_URL || "http://127.0.0.1:50051",
  bearerToken: process.env.SDKSIGN_BEARER_TOKEN || undefined,
  ca: pem("SDKSIGN_CA_FILE"),
  cert: pem("SDKSIGN_CERT_FILE"),
  key: pem("SDKSIGN_KEY_FILE"),
});

/** An answer with a JSON body. */
class Reply {
  constructor(status, body, headers = {}) {
    Object.assign(this, { status, body, headers });
  }
}

function refuse(field, description) {
  return new Reply(400, { error: `${field}: ${description}`, violations: [{ field, description }] });
}

async function readJson(request) {
  let size = 0;
  const chunks = [];
  for await (const chunk of request) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Reply(413, { error: `the body is over ${MAX_BODY} bytes` });
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new Reply(400, { error: 'the body must be JSON: {"meetingNumber": "94843468909", "role": 0}' });
  }
}

const absent = (value) => value === undefined || value === null;
const FLAG = [0, 1, "0", "1"];

// Zoom's sample takes meetingNumber as a number or a string, role and videoWebRtcMode as 0/1
// or "0"/"1", and expirationSeconds (the token's lifetime; absent or 0: sdksign's 2 h).
// It also takes the role from the browser; a real backend takes it from its own session
// (who is signed in), and sdksign's caller rule bounds what this backend may mint anyway.
function signRequest(body) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new Reply(400, { error: "the body must be a JSON object with meetingNumber and role" });
  }
  const { meetingNumber, role, expirationSeconds, videoWebRtcMode } = body;
  if (!(typeof meetingNumber === "string" && meetingNumber !== "") && !Number.isSafeInteger(meetingNumber)) {
    throw refuse("meetingNumber", "required: the meeting number, as a JSON number or a string of digits");
  }
  if (!FLAG.includes(role)) throw refuse("role", "required: 0 (participant) or 1 (host)");
  if (!absent(videoWebRtcMode) && !FLAG.includes(videoWebRtcMode)) {
    throw refuse("videoWebRtcMode", "0 or 1, or left out");
  }
  const seconds = typeof expirationSeconds === "string" ? Number(expirationSeconds) : expirationSeconds;
  if (!absent(expirationSeconds) && !Number.isSafeInteger(seconds)) {
    throw refuse("expirationSeconds", "whole seconds from 1800 (30 min) to 172800 (48 h), or left out (7200)");
  }
  const value = {
    meetingNumber: String(meetingNumber),
    role: Number(role) === 1 ? Role.HOST : Role.PARTICIPANT,
    videoWebrtcMode: absent(videoWebRtcMode) ? undefined : Number(videoWebRtcMode) === 1,
  };
  // sdksign checks the lifetime's range (and its caller rule's max_ttl) and names it.
  return { claims: { case: "meeting", value }, ttl: seconds ? { seconds: BigInt(seconds) } : undefined };
}

// sdksign's refusals, as this endpoint's HTTP answers; its field names become the request's.
const HTTP_STATUS = { INVALID_ARGUMENT: 400, PERMISSION_DENIED: 403, RESOURCE_EXHAUSTED: 429, UNAVAILABLE: 503 };
const FIELDS = {
  "meeting.meeting_number": "meetingNumber",
  "meeting.role": "role",
  "meeting.video_webrtc_mode": "videoWebRtcMode",
  ttl: "expirationSeconds",
};

/** sdksign's words with the request's names for its fields, as this endpoint's caller sent them. */
function renamed(text) {
  return Object.entries(FIELDS).reduce(
    (words, [field, name]) => words.replace(new RegExp(`\\b${field.replace(".", "\\.")}\\b`, "g"), name),
    text,
  );
}

function failed(error) {
  const status = statusOf(error);
  const http = HTTP_STATUS[status.code] ?? 502;
  if (http >= 500) console.error(`sdksign answered ${status.code}: ${status.message}`);
  const violations = status.violations.map(({ field, description }) => ({
    field: FIELDS[field] ?? field,
    description: renamed(description),
  }));
  const message = violations.length ? violations.map((v) => `${v.field}: ${v.description}`).join("; ") : status.message;
  const retry = status.retryAfterMs === undefined ? {} : { "retry-after": String(Math.ceil(status.retryAfterMs / 1000)) };
  return new Reply(http, { error: message, code: status.code, violations }, retry);
}

async function answer(request) {
  const path = new URL(request.url ?? "/", "http://backend").pathname;
  if (path !== "/zoom/signature") return new Reply(404, { error: "POST /zoom/signature is the only route" });
  if (request.method !== "POST") return new Reply(405, { error: "use POST" }, { allow: "POST" });
  // JSON is not a CORS "simple request": a page on another origin cannot send it without a
  // preflight, which this backend does not answer.
  if (!/^application\/json\s*(;|$)/i.test(request.headers["content-type"] ?? "")) {
    return new Reply(415, { error: "send the body as content-type: application/json" });
  }
  try {
    const signed = await client.sign(signRequest(await readJson(request)));
    return new Reply(200, { signature: signed.token, sdkKey: signed.sdkKey });
  } catch (error) {
    return error instanceof Reply ? error : failed(error);
  }
}

const server = createServer((request, response) => {
  answer(request).then((reply) => {
    response.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
    response.end(JSON.stringify(reply.body));
  });
});
server.listen(Number(process.env.PORT ?? 4000), process.env.HOST || "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}/zoom/signature`);
});
