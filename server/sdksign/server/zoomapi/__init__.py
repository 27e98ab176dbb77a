"""Zoom's REST API, for host starts: a user's ZAK through the account's Server-to-Server OAuth
app.

answers: what Zoom's answers mean (pure: a status, headers and body to a value or a
RequestError), its bodies read, never echoed whole; client: ZakSource, the asyncio HTTP
client (httpx, the zoom extra) with its access token cache and its shared calls.

Users' grants (joins outside the account): sealing (AES-256-GCM for tokens at rest),
grantstore (the store's contract and SqliteGrants), grantredis (RedisGrants), userauth (Zoom's
user OAuth and the OBF token, over httpx) and grants (GrantKeeper: begin, complete, remove,
the OBF token, refreshes once at a time).

Nothing here is imported when no app has [apps.s2s]: runtime.service imports the client on
the first host start (runtime.grantrpc on the first grant call), so that a server without
the zoom extra serves plain Signs as before.

May import zoom, errors, observe (to count Zoom's requests) and config (its settings);
never gRPC. tokens and config never import it.
"""
