// examples/node-backend/server.mjs as its own process, in front of the real sdksign
// servers that test_node_client.py starts: its route's answers, and what they sign.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { TokenKind, createSdkSignClient } from "../../client/node/dist/index.js";
import { closedPort } from "./loopback.mjs";

const env = process.env;
const SERVER = fileURLToPath(new URL("../../examples/node-backend/server.mjs", import.meta.url));
const running = [];

/** Start the example with these variables; resolves to its route's URL once it listens. */
function startBackend(variables) {
  const child = spawn(process.execPath, [SERVER], {
    env: { PATH: env.PATH, PORT: "0", ...variables },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (data) => (stderr += data));
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (data) => {
      stdout += data;
      const listening = /listening on (\S+)/.exec(stdout);
      if (listening) resolve(listening[1]);
    });
    child.once("exit", (code) => reject(new Error(`the example exited (${code}): ${stderr}`)));
  });
}

const backends = {};
before(async () => {
  const nowhere = `http://127.0.0.1:${await closedPort()}`;
  const tls = { SDKSIGN_URL: env.SDKSIGN_TLS_URL, SDKSIGN_CA_FILE: env.SDKSIGN_CA_FILE };
  const mtls = {
    SDKSIGN_URL: env.SDKSIGN_MTLS_URL,
    SDKSIGN_CA_FILE: env.SDKSIGN_CA_FILE,
    SDKSIGN_CERT_FILE: env.SDKSIGN_CERT_FILE,
    SDKSIGN_KEY_FILE: env.SDKSIGN_KEY_FILE,
  };
  [backends.host, backends.kiosk, backends.stranger, backends.down, backends.certificate] = await Promise.all([
    startBackend({ ...tls, SDKSIGN_BEARER_TOKEN: env.BACKEND_TOKEN }),
    startBackend({ SDKSIGN_URL: env.SDKSIGN_URL, SDKSIGN_BEARER_TOKEN: env.KIOSK_TOKEN }),
    startBackend({ SDKSIGN_URL: env.SDKSIGN_URL, SDKSIGN_BEARER_TOKEN: "not-a-known-caller-token" }),
    startBackend({ SDKSIGN_URL: nowhere, SDKSIGN_BEARER_TOKEN: env.BACKEND_TOKEN }),
    startBackend(mtls), // named by its client certificate, no bearer token
  ]);
});
after(() => running.forEach((child) => child.kill()));

async function post(url, body, init = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** The JWT's HMAC-SHA256, computed here with the meeting app's secret. */
function signedWith(token, secret) {
  const [header, payload, signature] = token.split(".");
  return createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url") === signature;
}

test("POST /zoom/signature answers Zoom's sample shape, and the signature verifies", async () => {
  const verifier = createSdkSignClient({ baseUrl: env.SDKSIGN_URL, bearerToken: env.BACKEND_TOKEN });
  for (const [body, role] of [
    [{ meetingNumber: 94843468909, role: 1 }, 1],
    [{ meetingNumber: "94843468909", role: "0" }, 0],
  ]) {
    const answer = await post(backends.host, body);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(Object.keys(answer.body).sort(), ["sdkKey", "signature"]);
    assert.equal(answer.body.sdkKey, env.MEETING_KEY);
    assert.ok(signedWith(answer.body.signature, env.MEETING_SECRET));
    const result = await verifier.verify({ token: answer.body.signature, expectedMeetingNumber: "94843468909" });
    assert.equal(result.valid, true, JSON.stringify(result.problems));
    assert.equal(result.kind, TokenKind.MEETING_WEB);
    assert.deepEqual([result.claims.mn, result.claims.role], ["94843468909", role]);
  }
});

/** A JWT's claims (the signature is checked elsewhere). */
function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

test("expirationSeconds and videoWebRtcMode, as Zoom's sample takes them, over mutual TLS", async () => {
  for (const [body, lifetime, mode] of [
    [{ meetingNumber: "94843468909", role: 1, expirationSeconds: 3600, videoWebRtcMode: 1 }, 3600, 1],
    [{ meetingNumber: "94843468909", role: 0, expirationSeconds: "1800", videoWebRtcMode: "0" }, 1800, 0],
    [{ meetingNumber: "94843468909", role: 0, expirationSeconds: null }, 7200, undefined],
  ]) {
    const answer = await post(backends.certificate, body);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.ok(signedWith(answer.body.signature, env.MEETING_SECRET));
    const claims = claimsOf(answer.body.signature);
    assert.deepEqual([claims.exp - claims.iat, claims.tokenExp, claims.video_webrtc_mode], [lifetime, claims.exp, mode]);
  }
});

test("bad input: 400 naming the request's field, whether the example or sdksign refused it", async () => {
  for (const [body, field] of [
    [{ meetingNumber: "94843468909", role: 2 }, "role"],
    [{ role: 0 }, "meetingNumber"],
    [{ meetingNumber: "", role: 0 }, "meetingNumber"],
    [{ meetingNumber: "9484-3468", role: 0 }, "meetingNumber"],
    [{ meetingNumber: "94843468909", role: 0, expirationSeconds: 60 }, "expirationSeconds"],
    [{ meetingNumber: "94843468909", role: 0, expirationSeconds: "2h" }, "expirationSeconds"],
    [{ meetingNumber: "94843468909", role: 0, videoWebRtcMode: 2 }, "videoWebRtcMode"],
  ]) {
    const answer = await post(backends.host, body);
    assert.equal(answer.status, 400);
    assert.deepEqual(answer.body.violations.map((violation) => violation.field), [field]);
    // The error text names the same field as the violations, in the request's words.
    const [{ description }] = answer.body.violations;
    assert.equal(answer.body.error, `${field}: ${description}`);
    assert.doesNotMatch(JSON.stringify(answer.body), /meeting\.|ttl/);
  }
  for (const body of ["{not json", "[1, 2]", "null"]) {
    const answer = await post(backends.host, body);
    assert.equal(answer.status, 400);
    assert.match(answer.body.error, /JSON/);
  }
  assert.equal((await post(backends.host, "x".repeat(5000))).status, 413);
});

test("only POST /zoom/signature with JSON is served", async () => {
  const get = await fetch(backends.host);
  assert.deepEqual([get.status, get.headers.get("allow")], [405, "POST"]);
  assert.equal((await post(new URL("/other", backends.host), {})).status, 404);
  const body = { meetingNumber: "94843468909", role: 0 };
  for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]) {
    assert.equal((await post(backends.host, body, { headers: { "content-type": type } })).status, 415);
  }
  const charset = { "content-type": "application/json; charset=utf-8" };
  assert.equal((await post(backends.host, body, { headers: charset })).status, 200);
});

test("sdksign's refusals: 403 for a participant-only caller, 502 for unknown credentials, 503 down", async () => {
  const body = { meetingNumber: "94843468909", role: 1 };
  const denied = await post(backends.kiosk, body);
  assert.equal(denied.status, 403);
  assert.equal(denied.body.code, "PERMISSION_DENIED");
  assert.match(denied.body.error, /may not mint host tokens/);
  assert.equal((await post(backends.kiosk, { ...body, role: 0 })).status, 200);

  const stranger = await post(backends.stranger, body);
  assert.deepEqual([stranger.status, stranger.body.code], [502, "UNAUTHENTICATED"]);
  assert.ok(!JSON.stringify(stranger.body).includes("not-a-known-caller-token"));

  const down = await post(backends.down, body);
  assert.deepEqual([down.status, down.body.code], [503, "UNAVAILABLE"]);
});
