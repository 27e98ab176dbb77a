"""Zoom's rules for SDK JWTs, and how such a token is spelled.

rules: the claims each SDK takes, their types and limits (the one home of Zoom's rules);
jwt: base64url, HS256 and the exact bytes of an encoded token.

Imports nothing of sdksign: everything else builds on it.
"""
