"""Zoom's rules for SDK JWTs, and how such a token is spelled.

rules: the claims each SDK takes, their types and limits (the one home of Zoom's rules),
and the shapes in which a caller's values may be shown in logs, spans and errors;
jwt: base64url, HS256 and the exact bytes of an encoded token.

Imports no other room (only the protos, sdksign.v1, and the client's limits,
sdksign.client._limits): everything else builds on it.
"""
