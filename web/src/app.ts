// The gateway's page: Sign for a Meeting SDK or Video SDK token (its header and
// claims decoded for display), and Verify's diagnosis of any pasted token. The
// client is generated from protos/sdksign/v1/signature_service.proto
// (protoc-gen-es); nothing here encodes protobuf by hand.
import { create, toBinary, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";
import {
  ProblemCode,
  Role,
  MeetingClaimsSchema,
  Severity,
  SignRequestSchema,
  SignatureCheck,
  SignatureService,
  TokenKind,
  VideoClaimsSchema,
  type Problem,
  type SignResponse,
  type VerifyResponse,
} from "./gen/sdksign/v1/signature_service_pb.js";

/** The server's gRPC message limit (MAX_MESSAGE_BYTES in client/sdksign/client/_limits.py). */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** The longest token Verify reads (MAX_TOKEN_LENGTH in client/sdksign/client/_limits.py). */
const MAX_TOKEN_LENGTH = 8192;
/** Zoom's data-centre regions for `geo_regions` (GEO_REGIONS in server/sdksign/server/_zoom.py). */
const GEO_REGIONS = ["AU", "BR", "CA", "CN", "DE", "HK", "IN", "JP", "MX", "NL", "SG", "US"];

const KINDS: Record<TokenKind, string> = {
  [TokenKind.UNSPECIFIED]: "could not be told",
  [TokenKind.MEETING_WEB]: "Meeting SDK, web (with meeting number and role)",
  [TokenKind.MEETING_NATIVE]: "Meeting SDK, native (no meeting number or role)",
  [TokenKind.VIDEO]: "Video SDK",
  [TokenKind.LEGACY_SIGNATURE]: "the pre-2023 Web SDK signature (not a JWT)",
};

/** Each request field the server may name in a refusal (google.rpc.BadRequest's proto path,
 * without an index such as [0]) -> the page's input for it, whose label the page shows. */
const FIELD_INPUTS: Record<string, string> = {
  "meeting.meeting_number": "meeting-number",
  "meeting.role": "role",
  "meeting.video_webrtc_mode": "meeting-video-webrtc",
  start_as: "start-as",
  "video.session_name": "session-name",
  "video.role": "role",
  "video.user_identity": "user-identity",
  "video.session_key": "session-key",
  "video.geo_regions": "geo-regions",
  "video.video_webrtc_mode": "video-video-webrtc",
  "video.audio_webrtc_mode": "video-audio-webrtc",
  "video.cloud_recording_option": "cloud-recording-option",
  "video.cloud_recording_election": "cloud-recording-election",
  "video.telemetry_tracking_id": "telemetry-tracking-id",
  ttl: "ttl",
  token: "pasted",
  expected_meeting_number: "expected-meeting",
};

const client = createClient(
  SignatureService,
  createGrpcWebTransport({ baseUrl: window.location.origin }),
);

type SignInit = MessageInitShape<typeof SignRequestSchema>;

// --- the page's elements ----------------------------------------------------------------

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

function value(id: string): string {
  return element<HTMLInputElement | HTMLSelectElement>(id).value.trim();
}

/** An optional 0/1 claim's select: "" leaves it out (undefined), "1" is true, "0" false. */
function flag(id: string): boolean | undefined {
  const chosen = value(id);
  return chosen === "" ? undefined : chosen === "1";
}

function show(id: string, text: string): void {
  element(id).textContent = text;
}

/** What the page shows for a failed call: a sentence, then optionally one line per refused
 * field and a detail, with the inputs concerned marked invalid. */
interface Failure {
  text: string;
  items?: string[];
  detail?: string;
  invalid?: HTMLElement[];
}

function paragraph(text: string, className = ""): HTMLParagraphElement {
  const shown = document.createElement("p");
  shown.textContent = text;
  shown.className = className;
  return shown;
}

/** A request's result area: each request first clears what the last one showed. */
class Results {
  private latest = 0;

  constructor(
    private readonly formId: string,
    private readonly errorId: string,
    private readonly resultId: string,
    private readonly buttonId: string,
  ) {}

  /** Clears the previous results; returns a ticket that only the newest request's is current. */
  start(): number {
    this.clear();
    element<HTMLButtonElement>(this.buttonId).disabled = true;
    return ++this.latest;
  }

  /** Nothing shown: the error and every output (marked data-out) emptied and hidden. */
  clear(): void {
    for (const id of [this.errorId, this.resultId]) {
      const area = element(id);
      area.hidden = true;
      area.querySelectorAll("[data-out]").forEach((output) => output.replaceChildren());
    }
    element(this.errorId).replaceChildren();
    element(this.formId)
      .querySelectorAll("[aria-invalid]")
      .forEach((input) => ["aria-invalid", "aria-errormessage"].forEach((name) => input.removeAttribute(name)));
    element<HTMLButtonElement>(this.buttonId).disabled = false;
    this.latest++; // an answer still on its way is no longer shown
  }

  current(ticket: number): boolean {
    return ticket === this.latest;
  }

  finish(ticket: number): void {
    if (this.current(ticket)) element<HTMLButtonElement>(this.buttonId).disabled = false;
  }

  /** An error, alone: nothing of an earlier result stays beside it. */
  fail(ticket: number, failure: Failure | string): void {
    if (!this.current(ticket)) return;
    const { text, items = [], detail, invalid = [] }: Failure = typeof failure === "string" ? { text: failure } : failure;
    const area = element(this.errorId);
    area.replaceChildren(paragraph(text));
    if (items.length > 0) {
      const list = document.createElement("ul");
      list.append(...items.map((item) => Object.assign(document.createElement("li"), { textContent: item })));
      area.append(list);
    }
    if (detail !== undefined) area.append(paragraph(detail, "hint"));
    for (const input of invalid) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-errormessage", this.errorId);
    }
    area.hidden = false;
  }

  succeed(ticket: number, render: () => void): void {
    if (!this.current(ticket)) return;
    render();
    element(this.resultId).hidden = false;
  }
}

// --- formatting -------------------------------------------------------------------------

/** One segment of a JWT, decoded for display only (the server is what checks it). */
function decodeSegment(token: string, index: number): unknown {
  const segment = token.split(".")[index] ?? "";
  const base64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function pretty(json: unknown): string {
  return JSON.stringify(json, null, 2);
}

function duration(seconds: number): string {
  const whole = Math.round(Math.abs(seconds));
  const [hours, minutes] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60)];
  if (hours === 0 && minutes === 0) return `${whole} s`;
  return [hours ? `${hours} h` : "", minutes ? `${minutes} min` : ""].filter(Boolean).join(" ");
}

/** Epoch seconds as "2025-01-31 14:05:09 UTC (in 2 h)". */
function when(epochSeconds: number): string {
  const date = new Date(epochSeconds * 1000);
  if (Number.isNaN(date.getTime())) return String(epochSeconds);
  const text = date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  const delta = epochSeconds - Date.now() / 1000;
  return `${text} (${delta >= 0 ? `in ${duration(delta)}` : `${duration(delta)} ago`})`;
}

function timestamp(at: Timestamp | undefined): string {
  return at === undefined ? "" : when(Number(at.seconds));
}

function claimTime(claims: JsonObject | undefined, name: string): string {
  if (claims === undefined) return "—";
  const at = claims[name];
  return typeof at === "number" ? when(at) : "not a number in the token";
}

/** The inputs a field names: its input, or the boxes of a group such as the regions. */
function inputsOf(field: string): HTMLElement[] {
  const id = FIELD_INPUTS[field.replace(/\[\d+\]$/, "")];
  const found = id === undefined ? null : document.getElementById(id);
  if (found === null) return [];
  return found.matches("input, select, textarea") ? [found] : Array.from(found.querySelectorAll<HTMLElement>("input"));
}

/** The label the page shows for a field (the first words of its label or legend). */
function labelOf(field: string): string {
  const [input] = inputsOf(field);
  const label =
    input instanceof HTMLInputElement && input.type === "checkbox"
      ? input.closest("fieldset")?.querySelector("legend")
      : (input as HTMLInputElement | undefined)?.labels?.[0];
  return label?.firstChild?.textContent?.trim() || field;
}

/** The server's words with the page's labels for the fields it names. */
function relabelled(description: string): string {
  return description.replace(/\b(meeting|video)\.[a-z_]+/g, (field) =>
    field in FIELD_INPUTS ? `“${labelOf(field)}”` : field,
  );
}

/** A call that never reached the server (or got no answer from it), said plainly. */
function unreachable(error: ConnectError): Failure | undefined {
  const retry = "Nothing was done: try again in a moment.";
  if (error.cause instanceof TypeError) {
    // fetch itself failed: nothing answered at the gateway's address.
    return { text: `Could not reach the signing service: ${window.location.origin} did not answer. ${retry}`, detail: error.rawMessage };
  }
  if (error.code === Code.Unavailable) {
    return { text: `Could not reach the signing service: it is not answering. ${retry}`, detail: error.rawMessage };
  }
  if (error.code === Code.DeadlineExceeded) {
    return { text: `Could not reach the signing service: it did not answer in time. ${retry}`, detail: error.rawMessage };
  }
  return undefined;
}

function failure(error: unknown): Failure {
  if (!(error instanceof ConnectError)) return { text: `The call failed: ${String(error)}` };
  const violations = error.findDetails(BadRequestSchema).flatMap((bad) => bad.fieldViolations);
  if (error.code === Code.InvalidArgument && violations.length > 0) {
    return {
      text: "The server refused the request:",
      items: violations.map(({ field, description }) =>
        field ? `${labelOf(field)}: ${relabelled(description)}` : relabelled(description),
      ),
      invalid: violations.flatMap(({ field }) => inputsOf(field)),
    };
  }
  return unreachable(error) ?? { text: `The server refused it (${Code[error.code]}): ${error.rawMessage}` };
}

/** Why a request may not go to the server, or undefined when it may. */
function oversized(bytes: number): string | undefined {
  if (bytes <= MAX_MESSAGE_BYTES) return undefined;
  return (
    `The request is ${bytes} bytes; the server takes at most ${MAX_MESSAGE_BYTES} (64 KiB). ` +
    "Nothing was sent: shorten the longest field."
  );
}

function tooLongToken(token: string): string | undefined {
  const length = [...token].length;
  if (length <= MAX_TOKEN_LENGTH) return undefined;
  return (
    `This token has ${length} characters; the server reads at most ${MAX_TOKEN_LENGTH}, and a ` +
    "Zoom SDK token is a few hundred (at most a few KB). Nothing was sent: paste the token " +
    "alone, not a whole response or log."
  );
}

// --- Sign -------------------------------------------------------------------------------

const signResults = new Results("sign-form", "sign-error", "signed", "sign");
const verifyResults = new Results("verify-form", "verify-error", "verified", "verify");

function signRequest(): SignInit {
  const role = value("role") === "host" ? Role.HOST : Role.PARTICIPANT;
  const video = element<HTMLInputElement>("sdk-video").checked;
  const request: SignInit = {
    claims: video
      ? { case: "video", value: videoClaims(role) }
      : { case: "meeting", value: meetingClaims(role) },
  };
  const ttl = value("ttl");
  if (ttl !== "") request.ttl = lifetime(Number(ttl));
  // A host start: the server asks Zoom for this user's ZAK (a meeting host token only).
  if (!video) request.startAs = value("start-as");
  return request;
}

function meetingClaims(role: Role): MessageInitShape<typeof MeetingClaimsSchema> {
  return { meetingNumber: value("meeting-number"), role, videoWebrtcMode: flag("meeting-video-webrtc") };
}

function videoClaims(role: Role): MessageInitShape<typeof VideoClaimsSchema> {
  return {
    // The session's name and password as typed, spaces included: they must match the session's.
    sessionName: element<HTMLInputElement>("session-name").value,
    role,
    userIdentity: value("user-identity"),
    sessionKey: element<HTMLInputElement>("session-key").value,
    geoRegions: GEO_REGIONS.filter((region) => element<HTMLInputElement>(`geo-${region}`).checked),
    videoWebrtcMode: flag("video-video-webrtc"),
    audioWebrtcMode: flag("video-audio-webrtc"),
    cloudRecordingOption: flag("cloud-recording-option"),
    cloudRecordingElection: flag("cloud-recording-election"),
    telemetryTrackingId: value("telemetry-tracking-id"),
  };
}

/** The lifetime as typed: a fraction or a value out of range is the server's to explain. */
function lifetime(seconds: number): { seconds: bigint; nanos: number } {
  if (!Number.isFinite(seconds)) throw new RangeError("the lifetime must be a number of seconds");
  const whole = Math.trunc(seconds);
  return { seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) };
}

function showSigned(signed: SignResponse): void {
  show("token", signed.token);
  show("sdk-key", signed.sdkKey);
  show("signed-app", signed.app);
  show("issued-at", timestamp(signed.issuedAt));
  show("expires-at", timestamp(signed.expiresAt));
  show("zak", signed.zak);
  element("zak-block").hidden = signed.zak === "";
  show("header", pretty(decodeSegment(signed.token, 0)));
  show("claims", pretty(decodeSegment(signed.token, 1)));
  element<HTMLTextAreaElement>("pasted").value = signed.token;
  verifyResults.clear(); // the box holds a new token: the last diagnosis is not about it
}

async function sign(): Promise<void> {
  const ticket = signResults.start();
  try {
    const request = signRequest();
    const refused = oversized(toBinary(SignRequestSchema, create(SignRequestSchema, request)).length);
    if (refused !== undefined) return signResults.fail(ticket, refused);
    const signed = await client.sign(request);
    signResults.succeed(ticket, () => showSigned(signed));
  } catch (error) {
    signResults.fail(ticket, failure(error));
  } finally {
    signResults.finish(ticket);
  }
}

// --- Verify -----------------------------------------------------------------------------

function problemRow(problem: Problem): HTMLTableRowElement {
  const row = document.createElement("tr");
  const code = ProblemCode[problem.code] ?? String(problem.code);
  // A warning (a deprecated claim) leaves the token valid; the row says so.
  const warning = problem.severity === Severity.WARNING;
  const cells = [warning ? `${code} (warning)` : code, problem.claim || "—", problem.message];
  if (warning) row.className = "warning";
  for (const [index, text] of cells.entries()) {
    const cell = document.createElement("td");
    if (index < 2 && text !== "—") cell.className = "code";
    cell.textContent = text;
    row.append(cell);
  }
  return row;
}

function showVerdict(result: VerifyResponse): void {
  const verdict = element("verdict");
  const count = result.problems.length;
  const warnings = result.problems.filter((p) => p.severity === Severity.WARNING).length;
  const errors = count - warnings;
  const valid = result.valid === true;
  const noted = warnings ? ` ${warnings} warning${warnings === 1 ? "" : "s"} below.` : "";
  verdict.textContent = valid
    ? `Valid: Zoom should accept it (app ${result.app}).${noted}`
    : `Invalid: ${errors} problem${errors === 1 ? "" : "s"}.${noted}`;
  verdict.className = `verdict ${valid ? "valid" : "invalid"}`;
  const table = element<HTMLTableElement>("problems");
  table.tBodies[0].replaceChildren(...result.problems.map(problemRow));
  table.hidden = count === 0;
}

/** What the signature check found, with the fingerprints of the secrets concerned. */
function signatureCheck(result: VerifyResponse): string {
  const fingerprint = `secret fingerprint ${result.secretFingerprint}`;
  switch (result.signature) {
    case SignatureCheck.MATCHED:
      return `matched: made with a secret of app ${result.app} (${fingerprint})`;
    case SignatureCheck.MATCHED_OTHER_APP:
      return `made with another configured app's secret (${fingerprint})`;
    case SignatureCheck.MISMATCHED: {
      const tried = result.triedSecretFingerprints.join(", ");
      return `no secret tried made it${tried ? ` (tried: ${tried})` : ""}`;
    }
    case SignatureCheck.NOT_CHECKED:
      return "not checked";
    default: // a server from before the field
      return result.secretFingerprint ? fingerprint : "—";
  }
}

/** JSON as the server read it: the token's own key order (the *_json text) when sent. */
function asRead(text: string, struct: JsonObject | undefined): string {
  if (text !== "") return pretty(JSON.parse(text));
  return struct === undefined ? "could not be decoded" : pretty(struct);
}

function showVerified(result: VerifyResponse): void {
  showVerdict(result);
  show("verified-kind", KINDS[result.kind] ?? String(result.kind));
  show("verified-app", result.app || "none (no configured app's key)");
  show("verified-signature", signatureCheck(result));
  show("verified-iat", claimTime(result.claims, "iat"));
  show("verified-exp", claimTime(result.claims, "exp"));
  show("verified-header", asRead(result.headerJson, result.header));
  show("verified-claims", asRead(result.claimsJson, result.claims));
}

async function verify(): Promise<void> {
  const ticket = verifyResults.start();
  const token = element<HTMLTextAreaElement>("pasted").value.trim();
  const expected = value("expected-meeting");
  try {
    const refused = tooLongToken(token);
    if (refused !== undefined) return verifyResults.fail(ticket, refused);
    const result = await client.verify({ token, expectedMeetingNumber: expected || undefined });
    verifyResults.succeed(ticket, () => showVerified(result));
  } catch (error) {
    verifyResults.fail(ticket, failure(error));
  } finally {
    verifyResults.finish(ticket);
  }
}

// --- wiring -----------------------------------------------------------------------------

function addRegions(): void {
  element("geo-regions").append(
    ...GEO_REGIONS.map((region) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.id = `geo-${region}`;
      box.value = region;
      label.append(box, ` ${region}`);
      return label;
    }),
  );
}

/** The choices of each optional 0/1 claim (a select marked data-flag): left out, 1 or 0. */
function addFlagChoices(): void {
  document.querySelectorAll("select[data-flag]").forEach((select) => {
    const choices = [["", "left out"], ["1", "1 (on)"], ["0", "0 (off)"]];
    select.append(...choices.map(([value, text]) => new Option(text, value)));
  });
}

/** Shows the fields of the chosen SDK; the other's are disabled and hidden. */
function chooseSdk(): void {
  const video = element<HTMLInputElement>("sdk-video").checked;
  for (const [id, shown] of [["video-fields", video], ["meeting-fields", !video]] as const) {
    const fields = element<HTMLFieldSetElement>(id);
    fields.hidden = !shown;
    fields.disabled = !shown;
  }
}

/** The lifetime asked for, in words, and the range allowed: the input's min and max (MIN_TTL and
 * MAX_TTL in client/sdksign/client/_limits.py); empty, the server's DEFAULT_TTL, 7200. */
function describeTtl(): void {
  const input = element<HTMLInputElement>("ttl");
  const [min, max] = [Number(input.min), Number(input.max)];
  const seconds = Number(value("ttl") || "7200");
  const allowed = `${min} (${duration(min)}) to ${max} (${duration(max)})`;
  show("ttl-hint", Number.isFinite(seconds) && seconds > 0 ? `${duration(seconds)}; ${allowed}` : allowed);
}

async function copyToken(): Promise<void> {
  await navigator.clipboard.writeText(element("token").textContent ?? "");
  show("copy-token", "Copied");
  setTimeout(() => show("copy-token", "Copy"), 1500);
}

addRegions();
addFlagChoices();
for (const id of ["sdk-meeting", "sdk-video"]) element(id).addEventListener("change", chooseSdk);
element("ttl").addEventListener("input", describeTtl);
element("copy-token").addEventListener("click", () => {
  copyToken().catch(() => show("copy-token", "Copy failed"));
});
element("sign-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void sign();
});
element("verify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void verify();
});
chooseSdk();
describeTtl();
