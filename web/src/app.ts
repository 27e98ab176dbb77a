// The gateway's page: a signature over gRPC-web, its decoded claims, and
// Verify's diagnosis of any pasted token. The client is generated from
// protos/sdksign/v1/signature_service.proto (protoc-gen-es); nothing here
// encodes protobuf by hand.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ProblemCode, Role, SignatureService } from "./gen/sdksign/v1/signature_service_pb.js";

const client = createClient(
  SignatureService,
  createGrpcWebTransport({ baseUrl: window.location.origin }),
);

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

/** The payload of a JWT, decoded for display only (the server is what checks it). */
function decodeClaims(token: string): unknown {
  const payload = token.split(".")[1] ?? "";
  const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function failure(error: unknown): string {
  return error instanceof ConnectError ? `${Code[error.code]}: ${error.rawMessage}` : String(error);
}

async function sign(): Promise<void> {
  const role = element<HTMLSelectElement>("role").value === "host" ? Role.HOST : Role.PARTICIPANT;
  element("sign-error").textContent = "";
  try {
    const signed = await client.sign({
      claims: {
        case: "meeting",
        value: { meetingNumber: element<HTMLInputElement>("meeting-number").value.trim(), role },
      },
    });
    element("token").textContent = signed.token;
    element("sdk-key").textContent = signed.sdkKey;
    element("claims").textContent = JSON.stringify(decodeClaims(signed.token), null, 2);
    element<HTMLTextAreaElement>("pasted").value = signed.token;
  } catch (error) {
    element("sign-error").textContent = failure(error);
  }
}

async function verify(): Promise<void> {
  const verdict = element("verdict");
  const problems = element("problems");
  problems.replaceChildren();
  try {
    const result = await client.verify({ token: element<HTMLTextAreaElement>("pasted").value.trim() });
    verdict.textContent = result.valid ? `valid (app ${result.app})` : "invalid";
    verdict.className = result.valid ? "valid" : "invalid";
    for (const problem of result.problems) {
      const item = document.createElement("li");
      item.textContent = `${ProblemCode[problem.code]}: ${problem.message}`;
      problems.append(item);
    }
    element("verified-claims").textContent = JSON.stringify(result.claims ?? {}, null, 2);
  } catch (error) {
    verdict.textContent = failure(error);
    verdict.className = "error";
  }
}

element("sign").addEventListener("click", () => void sign());
element("verify").addEventListener("click", () => void verify());
