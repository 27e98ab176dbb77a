// A backend's two routes for users' grants (joins outside the account), over sdksign:
// GET /zoom/authorize sends the user to Zoom's consent page; GET /zoom/callback, where Zoom
// sends them back, completes the grant. The backend never sees a Zoom token.
//
//   SDKSIGN_URL, SDKSIGN_BEARER_TOKEN   sdksign's address and this backend's caller token
//   CALLBACK_URL                        this route's public URL, listed in the Zoom app
//   PORT                                where to listen on 127.0.0.1 (0: any free port)
import { timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { createSdkSignClient, statusOf } from "@sdksign/client";

const client = createSdkSignClient({
  baseUrl: process.env.SDKSIGN_URL,
  bearerToken: process.env.SDKSIGN_BEARER_TOKEN,
});

// Compared as bytes: a string's length is not its bytes'.
const same = (a, b) => {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
};

async function route(request) {
  const url = new URL(request.url, "http://localhost");
  if (url.pathname === "/zoom/authorize") {
    const began = await client.beginGrant({ redirectUri: process.env.CALLBACK_URL });
    // The state also goes in a cookie: the callback must come from this browser.
    return [302, "", { location: began.authorizeUrl, "set-cookie": `zoom_state=${began.state}; HttpOnly; Secure; SameSite=Lax` }];
  }
  if (url.pathname !== "/zoom/callback") return [404, "not found"];
  const state = url.searchParams.get("state") ?? "";
  const cookie = /(?:^|;\s*)zoom_state=([^;]*)/.exec(request.headers.cookie ?? "")?.[1] ?? "";
  if (!state || !same(cookie, state)) return [400, "this authorization was not started in this browser"];
  try {
    const grant = await client.completeGrant({ state, code: url.searchParams.get("code") ?? "" });
    return [200, `Thanks, ${grant.email}: meetings can be joined on your behalf.`];
  } catch (error) {
    return [400, `the authorization failed (${statusOf(error).code}): try again`];
  }
}

const server = createServer(async (request, response) => {
  const [status, text, headers = {}] = await route(request).catch(() => [502, "sdksign did not answer: try again"]);
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  response.end(text);
});
server.listen(Number(process.env.PORT ?? 8000), "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
