// The Node.js client (client/node/dist) against real sdksign servers that
// test_node_client.py starts: one plaintext, one TLS, the same apps and callers.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  Code,
  ConnectError,
  ProblemCode,
  Role,
  Severity,
  TokenKind,
  createSdkSignClient,
  statusOf,
} from "../../client/node/dist/index.js";
import { closedPort } from "./loopback.mjs";

const env = process.env;
const CA = readFileSync(env.SDKSIGN_CA_FILE);
const TRANSPORTS = {
  plaintext: { baseUrl: env.SDKSIGN_URL },
  TLS: { baseUrl: env.SDKSIGN_TLS_URL, ca: CA },
};
// The mutual TLS server's caller "scheduler" is named by this certificate (no bearer token).
const CLIENT_CERTIFICATE = { cert: readFileSync(env.SDKSIGN_CERT_FILE), key: readFileSync(env.SDKSIGN_KEY_FILE) };

function meeting(meetingNumber, role) {
  return { claims: { case: "meeting", value: { meetingNumber, role } } };
}

/** The error a call rejects with (the test fails when it resolves). */
async function failure(call) {
  try {
    await call;
  } catch (error) {
    return error;
  }
  assert.fail("the call succeeded; a refusal was expected");
}

for (const [name, transport] of Object.entries(TRANSPORTS)) {
  test(`Sign then Verify a meeting token over ${name}`, async () => {
    const client = createSdkSignClient({ ...transport, bearerToken: env.BACKEND_TOKEN });
    const signed = await client.sign(meeting("94843468909", Role.HOST));
    assert.equal(signed.sdkKey, env.MEETING_KEY);
    assert.equal(signed.app, "meeting");
    assert.equal(signed.expiresAt.seconds - signed.issuedAt.seconds, 7200n);
    const result = await client.verify({ token: signed.token, expectedMeetingNumber: "94843468909" });
    assert.equal(result.valid, true, JSON.stringify(result.problems));
    assert.equal(result.kind, TokenKind.MEETING_WEB);
    assert.equal(result.app, "meeting");
    assert.equal(result.claims.mn, "94843468909");
    assert.equal(result.claims.role, 1);
    assert.deepEqual(result.header, { alg: "HS256", typ: "JWT" });
  });
}

test("a host start: startAs gives the host's ZAK beside the token; a participant cannot", async () => {
  const client = createSdkSignClient({ ...TRANSPORTS.plaintext, bearerToken: env.BACKEND_TOKEN });
  const signed = await client.sign({ ...meeting("94843468909", Role.HOST), startAs: "alice@example.com" });
  assert.match(signed.zak, /^standin-zak-/);
  assert.notEqual(signed.zak, signed.token);
  const plain = await client.sign(meeting("94843468909", Role.HOST));
  assert.equal(plain.zak, "");
  const error = await failure(client.sign({ ...meeting("94843468909", Role.PARTICIPANT), startAs: "alice@example.com" }));
  assert.equal(error.code, Code.InvalidArgument);
  assert.deepEqual(statusOf(error).violations.map((v) => v.field), ["start_as"]);
});

test("joins outside the account: a grant, then onBehalfOf gives the OBF token, until removed", async () => {
  const client = createSdkSignClient({ ...TRANSPORTS.plaintext, bearerToken: env.BACKEND_TOKEN });
  const begun = await client.beginGrant({ redirectUri: "https://backend.example.com/zoom/callback" });
  // Zoom's authorize page (the stand-in's) sends the browser back with the code and the state.
  const answer = await fetch(begun.authorizeUrl, { redirect: "manual" });
  const back = new URL(answer.headers.get("location"));
  assert.equal(back.searchParams.get("state"), begun.state);
  const grant = await client.completeGrant({ state: begun.state, code: back.searchParams.get("code") });
  assert.deepEqual([grant.userId, grant.email], ["u-alice", "alice@example.com"]);
  const signed = await client.sign({ ...meeting("94843468909", Role.PARTICIPANT), onBehalfOf: "alice@example.com" });
  assert.match(signed.obfToken, /^standin-obf-/);
  const listed = await client.listGrants({});
  assert.deepEqual(listed.grants.map((g) => g.userId), ["u-alice"]);
  const removed = await client.removeGrant({ user: "u-alice" });
  assert.equal(removed.grant?.email, "alice@example.com");
  const error = await failure(client.sign({ ...meeting("94843468909", Role.PARTICIPANT), onBehalfOf: "u-alice" }));
  assert.equal(error.code, Code.PermissionDenied); // an ID the caller's patterns do not name
  const gone = await failure(client.sign({ ...meeting("94843468909", Role.PARTICIPANT), onBehalfOf: "alice@example.com" }));
  assert.equal(gone.code, Code.FailedPrecondition);
  assert.match(statusOf(gone).message, /must authorize again/);
  const kiosk = createSdkSignClient({ ...TRANSPORTS.plaintext, bearerToken: env.KIOSK_TOKEN });
  assert.equal((await failure(kiosk.listGrants({}))).code, Code.PermissionDenied);
});

test("Sign a Video SDK token with a ttl, and Verify names another meeting's token", async () => {
  const client = createSdkSignClient({ ...TRANSPORTS.TLS, bearerToken: env.BACKEND_TOKEN });
  const video = await client.sign({
    claims: { case: "video", value: { sessionName: "math-101", role: Role.PARTICIPANT, geoRegions: ["US", "DE"] } },
    ttl: { seconds: 3600n },
  });
  assert.equal(video.sdkKey, env.VIDEO_KEY);
  const verified = await client.verify({ token: video.token });
  assert.equal(verified.kind, TokenKind.VIDEO);
  assert.deepEqual(
    [verified.claims.tpc, verified.claims.role_type, verified.claims.geo_regions],
    ["math-101", 0, "US,DE"],
  );
  assert.equal(verified.claims.exp - verified.claims.iat, 3600);

  const signed = await client.sign(meeting("94843468909", Role.PARTICIPANT));
  const other = await client.verify({ token: signed.token, expectedMeetingNumber: "111222333" });
  assert.equal(other.valid, false);
  assert.deepEqual(
    other.problems.map((problem) => problem.code),
    [ProblemCode.MEETING_MISMATCH],
  );
});

test("a participant-only caller asking for a host token: PERMISSION_DENIED naming the rule", async () => {
  const kiosk = createSdkSignClient({ ...TRANSPORTS.plaintext, bearerToken: env.KIOSK_TOKEN });
  const error = await failure(kiosk.sign(meeting("94843468909", Role.HOST)));
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.PermissionDenied);
  const status = statusOf(error);
  assert.equal(status.code, "PERMISSION_DENIED");
  assert.match(status.message, /caller 'kiosk' may not mint host tokens/);
  assert.equal(status.reason, "ROLE_NOT_ALLOWED");
  assert.deepEqual(status.metadata, { rule: "role" });
  assert.ok(!JSON.stringify(status).includes(env.KIOSK_TOKEN));
  // The same caller within its rule is served.
  assert.equal((await kiosk.sign(meeting("94843468909", Role.PARTICIPANT))).app, "meeting");
});

test("no bearer token, or an unknown one: UNAUTHENTICATED", async () => {
  for (const bearerToken of [undefined, "not-a-known-caller-token"]) {
    const client = createSdkSignClient({ ...TRANSPORTS.TLS, bearerToken });
    const status = statusOf(await failure(client.sign(meeting("94843468909", Role.PARTICIPANT))));
    assert.equal(status.code, "UNAUTHENTICATED", status.message);
    assert.ok(!status.message.includes("not-a-known-caller-token"));
  }
});

test("a bad request: INVALID_ARGUMENT with google.rpc.BadRequest naming each field", async () => {
  const client = createSdkSignClient({ ...TRANSPORTS.plaintext, bearerToken: env.BACKEND_TOKEN });
  const request = { ...meeting("9484-3468", Role.UNSPECIFIED), ttl: { seconds: 60n } };
  const status = statusOf(await failure(client.sign(request)));
  assert.equal(status.code, "INVALID_ARGUMENT");
  assert.deepEqual(
    status.violations.map((violation) => violation.field).sort(),
    ["meeting.meeting_number", "meeting.role", "ttl"],
  );
  assert.ok(status.violations.every((violation) => violation.description.length > 0));
  assert.match(status.message, /^invalid request: /);
});

test("TLS without the server's CA is refused by the client; no server at all: UNAVAILABLE", async () => {
  const untrusted = createSdkSignClient({ baseUrl: env.SDKSIGN_TLS_URL, bearerToken: env.BACKEND_TOKEN });
  const tls = statusOf(await failure(untrusted.verify({ token: "a.b.c" })));
  // connect-node's code for a certificate Node does not trust (grpc's C core says UNAVAILABLE).
  assert.deepEqual(
    [tls.code, tls.message],
    [
      "INTERNAL",
      "the server's certificate is not signed by a CA this client trusts: pass ca, the PEM of the CA " +
        "that signed it (UNABLE_TO_VERIFY_LEAF_SIGNATURE)",
    ],
  );

  const down = createSdkSignClient({ baseUrl: `http://127.0.0.1:${await closedPort()}` });
  assert.equal(statusOf(await failure(down.verify({ token: "a.b.c" }))).code, "UNAVAILABLE");
});

test("a CA with a plaintext URL is refused when the client is made", () => {
  assert.throws(
    () => createSdkSignClient({ baseUrl: env.SDKSIGN_URL, ca: CA }),
    /ca is given but baseUrl http:\/\/127\.0\.0\.1:\d+ is not https/,
  );
  assert.throws(
    () => createSdkSignClient({ baseUrl: env.SDKSIGN_URL, ...CLIENT_CERTIFICATE }),
    /^Error: cert and key are given but baseUrl http:\/\/127\.0\.0\.1:\d+ is not https: use https:\/\/host:port$/,
  );
  assert.throws(
    () => createSdkSignClient({ baseUrl: env.SDKSIGN_MTLS_URL, ca: CA, cert: CLIENT_CERTIFICATE.cert }),
    /cert and key go together/,
  );
});

test("a baseUrl without http:// or https:// is refused when the client is made, naming the form", () => {
  const port = new URL(env.SDKSIGN_URL).port;
  const form = "write http://host:port (plaintext) or https://host:port (TLS), e.g. http://127.0.0.1:50051";
  for (const [baseUrl, why] of [
    [`127.0.0.1:${port}`, "does not start with http:// or https://"],
    [`localhost:${port}`, "does not start with http:// or https://"],
    [`grpc://127.0.0.1:${port}`, "does not start with http:// or https://"],
    ["http://", "is not a URL"],
    [`${env.SDKSIGN_URL}/sdksign`, "has more than a scheme, host and port"],
  ]) {
    assert.throws(() => createSdkSignClient({ baseUrl }), { message: `baseUrl "${baseUrl}" ${why}: ${form}` });
  }
});

test("mutual TLS: the client certificate names the caller; without it the call says what may help", async () => {
  const scheduler = createSdkSignClient({ baseUrl: env.SDKSIGN_MTLS_URL, ca: CA, ...CLIENT_CERTIFICATE });
  const signed = await scheduler.sign(meeting("94843468909", Role.HOST));
  assert.equal(signed.sdkKey, env.MEETING_KEY);
  assert.equal((await scheduler.verify({ token: signed.token })).valid, true);

  const anonymous = createSdkSignClient({ baseUrl: env.SDKSIGN_MTLS_URL, ca: CA });
  const refused = statusOf(await failure(anonymous.sign(meeting("94843468909", Role.HOST))));
  assert.equal(refused.code, "CANCELED");
  assert.equal(
    refused.message,
    `the server at ${env.SDKSIGN_MTLS_URL} closed the connection without an answer: it may want a client ` +
      "certificate (cert and key) (http/2 stream closed with error code CANCEL (0x8))",
  );
});

test("TLS on one side only: the message says which scheme to use, not OpenSSL's words", async () => {
  const plainToTls = createSdkSignClient({ baseUrl: env.SDKSIGN_TLS_URL.replace("https:", "http:") });
  const closed = statusOf(await failure(plainToTls.verify({ token: "a.b.c" })));
  assert.equal(closed.code, "CANCELED");
  assert.match(closed.message, /closed the connection without an answer: if it serves TLS, use https:\/\/ \(with ca\)/);

  const tlsToPlain = createSdkSignClient({ baseUrl: env.SDKSIGN_URL.replace("http:", "https:"), ca: CA });
  const wrong = statusOf(await failure(tlsToPlain.verify({ token: "a.b.c" })));
  assert.deepEqual(
    [wrong.code, wrong.message],
    [
      "INTERNAL",
      `the server at ${env.SDKSIGN_URL.replace("http:", "https:")} does not answer TLS: if it serves ` +
        "plaintext, use http:// (ERR_SSL_WRONG_VERSION_NUMBER)",
    ],
  );
});

test("a deprecated claim is a warning: the token stays valid, the replacement is named", async () => {
  const client = createSdkSignClient({ ...TRANSPORTS.plaintext, bearerToken: env.BACKEND_TOKEN });
  const result = await client.verify({ token: env.DEPRECATED_TOKEN });
  assert.equal(result.valid, true, JSON.stringify(result.problems));
  assert.equal(result.problems.length, 1);
  const [problem] = result.problems;
  assert.equal(problem.code, ProblemCode.DEPRECATED_CLAIM);
  assert.equal(problem.severity, Severity.WARNING);
  assert.equal(problem.claim, "audio_compatible_mode");
  assert.match(problem.message, /audio_webrtc_mode/);
});
