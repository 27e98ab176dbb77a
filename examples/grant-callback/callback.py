"""A backend's two routes for users' grants (joins outside the account), over sdksign:
GET /zoom/authorize sends the user to Zoom's consent page; GET /zoom/callback, where Zoom
sends them back, completes the grant. The backend never sees a Zoom token.

  SDKSIGN_TARGET, SDKSIGN_BEARER_TOKEN   sdksign's address and this backend's caller token
  CALLBACK_URL                           this route's public URL, listed in the Zoom app
  PORT                                   where to listen on 127.0.0.1 (0: any free port)
"""

import os
import secrets
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from sdksign.client import Client, SdkSignError

client = Client(os.environ["SDKSIGN_TARGET"], bearer_token=os.environ["SDKSIGN_BEARER_TOKEN"])


class GrantRoutes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/zoom/authorize":
            began = client.begin_grant(os.environ["CALLBACK_URL"])
            # The state also goes in a cookie: the callback must come from this browser.
            self.reply(302, "", location=began.authorize_url, cookie=began.state)
        elif url.path == "/zoom/callback":
            query = parse_qs(url.query)
            state, code = query.get("state", [""])[0], query.get("code", [""])[0]
            cookie = SimpleCookie(self.headers.get("cookie", "")).get("zoom_state")
            sent = "" if cookie is None else cookie.value
            if not state or not secrets.compare_digest(sent.encode(), state.encode()):
                self.reply(400, "this authorization was not started in this browser")
                return
            try:
                grant = client.complete_grant(state, code)
            except SdkSignError as error:
                self.reply(400, f"the authorization failed ({error.code}): try again")
                return
            self.reply(200, f"Thanks, {grant.email}: meetings can be joined on your behalf.")
        else:
            self.reply(404, "not found")

    def reply(self, status: int, text: str, location: str = "", cookie: str = "") -> None:
        self.send_response(status)
        if location:
            self.send_header("location", location)
        if cookie:
            self.send_header("set-cookie", f"zoom_state={cookie}; HttpOnly; Secure; SameSite=Lax")
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(text.encode())


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), GrantRoutes)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
