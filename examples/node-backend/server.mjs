// A Node.js backend route in the shape of Zoom's sample auth endpoint: POST /zoom/signature
// with {"meetingNumber": ..., "role": 0 | 1} answers {"signature": ..., "sdkKey": ...}. The
// token comes from sdksign's Sign over gRPC; this backend never holds the SDK secret.
//
//   SDKSIGN_URL            sdksign's address (default http://127.0.0.1:50051; https://... for TLS)
//   SDKSIGN_BEARER_TOKEN   this backend's caller token ([[callers]] token_sha256 in sdksign's config)
//   SDKSIGN_CA_FILE        PEM of the CA that signed sdksign's certificate (with https)
//   HOST, PORT             where this backend listens (default 127.0.0.1:4000; PORT=0: any free port)
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { Role, createSdkSignClient, statusOf } from "@sdksign/client";

const MAX_BODY = 4096;

const client = createSdkSignClient({
  baseUrl: process.env.SDKSIGN_URL || "http://127.0.0.1:50051",
  bearerToken: process.env.SDKSIGN_BEARER_TOKEN || undefined,
  ca: process.env.SDKSIGN_CA_FILE ? readFileSync(process.env.SDKSIGN_CA_FILE) : undefined,
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

// Zoom's sample takes meetingNumber as a number or a string, and role as 0/1 or "0"/"1".
// It also takes the role from the browser; a real backend takes it from its own session
// (who is signed in), and sdksign's caller rule bounds what this backend may mint anyway.
function signRequest(body) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new Reply(400, { error: "the body must be a JSON object with meetingNumber and role" });
  }
  const { meetingNumber, role } = body;
  if (typeof meetingNumber !== "string" && !Number.isSafeInteger(meetingNumber)) {
    throw refuse("meetingNumber", "required: the meeting number, as a JSON number or a string of digits");
  }
  if (![0, 1, "0", "1"].includes(role)) {
    throw refuse("role", "required: 0 (participant) or 1 (host)");
  }
  const value = { meetingNumber: String(meetingNumber), role: Number(role) === 1 ? Role.HOST : Role.PARTICIPANT };
  return { claims: { case: "meeting", value } };
}

// sdksign's refusals, as this endpoint's HTTP answers; its field names become the request's.
const HTTP_STATUS = { INVALID_ARGUMENT: 400, PERMISSION_DENIED: 403, RESOURCE_EXHAUSTED: 429, UNAVAILABLE: 503 };
const FIELDS = { "meeting.meeting_number": "meetingNumber", "meeting.role": "role" };

function failed(error) {
  const status = statusOf(error);
  const http = HTTP_STATUS[status.code] ?? 502;
  if (http >= 500) console.error(`sdksign answered ${status.code}: ${status.message}`);
  const violations = status.violations.map(({ field, description }) => ({ field: FIELDS[field] ?? field, description }));
  const retry = status.retryAfterMs === undefined ? {} : { "retry-after": String(Math.ceil(status.retryAfterMs / 1000)) };
  return new Reply(http, { error: status.message, code: status.code, violations }, retry);
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
