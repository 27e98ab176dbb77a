"""Fuzzed request bodies for Sign, Verify, Health/Check and Zoom's sample, and odd tokens for
Verify: random bytes, mutated and truncated valid encodings, valid tokens with bytes flipped,
odd claim values (huge integers, floats, NaN, lone surrogates, nesting), odd headers, odd shapes.

Everything comes from one seeded random.Random, so a run can be repeated case for case.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from google.api import httpbody_pb2
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2

from sdksign.client._limits import MAX_TOKEN_LENGTH
from sdksign.server.zoom.jwt import b64decode_lenient, b64url, hs256
from sdksign.v1 import signature_service_pb2 as pb

from .common import HEALTH, MEETING, SIGN, VERIFY, ZOOM_SAMPLE

METHODS = (SIGN, VERIFY, HEALTH, ZOOM_SAMPLE)

# JSON texts (not all of them JSON that Python's json writes) for claim values.
ODD_VALUES = (
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.5",
    "-0.0",
    "1e-320",
    "0.1e1",
    "12345678901234567890123456789012345678901234567890",
    "-99999999999999999999",
    str(2**63),
    str(2**64),
    str(-(2**63) - 1),
    "1795365677913",
    "0",
    "-1",
    "true",
    "false",
    "null",
    '""',
    '"1"',
    '" 0"',
    '"\\ud800"',
    '"\\udfff"',
    '"a\\ud800b"',
    '"\\u0000"',
    '"\\u202e123"',
    '"\U0001f4a5"',
    '"' + "9" * 300 + '"',
    '"' + "x" * 5000 + '"',
    "[]",
    "[1,2,3]",
    "{}",
    '{"a":{"b":{"c":[1,{"d":null}]}}}',
    "[" * 2500 + "]" * 2500,
    '{"a":' * 1000 + "1" + "}" * 1000,
)
# Bytes that are not UTF-8, or not the JSON they look like.
ODD_RAW_VALUES = (b'"\xed\xa0\x80"', b'"\xff\xfe"', b'"\xc0\xaf"', b"\xef\xbb\xbf1", b"1 2")
ODD_HEADERS = (
    '{"alg":"none","typ":"JWT"}',
    '{"alg":"HS512","typ":"JWT"}',
    '{"alg":"hs256","typ":"JWT"}',
    '{"alg":null}',
    '{"alg":1e400}',
    '{"alg":["HS256"]}',
    '{"alg":"HS256","alg":"none"}',
    '{"alg":"HS256","typ":"JWT","kid":"' + "k" * 2000 + '"}',
    '{"alg":"HS256","crit":["exp"]}',
    '["HS256"]',
    "1",
    '"HS256"',
    "null",
    "{}",
    ' {"alg":"HS256","typ":"JWT"}',
    '{"alg":"\\ud800"}',
)
FLIP_CHARACTERS = "AZaz09-_.=+/ \t\n\x00\x7fé\u2028\U0001f4a5"


@dataclass(frozen=True)
class Token:
    """A valid token from the server, its claims as JSON texts, and the secret that signed it."""

    text: str
    claims: dict[str, bytes]
    secret: bytes


def token_from(text: str, secret: bytes) -> Token:
    payload = json.loads(b64decode_lenient(text.split(".")[1]))
    return Token(text, {k: json.dumps(v).encode() for k, v in payload.items()}, secret)


def resigned(token: Token, secret: bytes) -> Token:
    """The same token signed with another secret (a previous one, in a rotation)."""
    signing_input = token.text.rsplit(".", 1)[0]
    signature = b64url(hs256(secret, signing_input.encode())).decode()
    return Token(f"{signing_input}.{signature}", token.claims, secret)


def protobuf_field(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field, whatever its bytes (UTF-8 or not)."""
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def valid_messages() -> list[tuple[str, bytes]]:
    """Valid encodings of every method's request, some with odd values in them."""
    messages = [(SIGN, m.SerializeToString()) for m in _sign_requests()]
    # A role the enum does not have, written on the wire (the generated class refuses it).
    odd_role = pb.MeetingClaims(meeting_number="9" * 40).SerializeToString() + b"\x10\x07"
    messages.append((SIGN, protobuf_field(2, odd_role)))
    verify = pb.VerifyRequest(app="", expected_meeting_number="x")
    verify.token = "a.b.c"  # noqa: S105 (not a credential)
    health = health_pb2.HealthCheckRequest(service="sdksign.v1.SignatureService")
    number = httpbody_pb2.HttpBody(
        content_type="application/json",
        data=b'{"meetingNumber":1e300,"role":1,"expirationSeconds":-5}',
    )
    text = httpbody_pb2.HttpBody(
        content_type="application/json", data=f'{{"meetingNumber":"{MEETING}"}}'.encode()
    )
    messages += [(VERIFY, verify.SerializeToString()), (HEALTH, health.SerializeToString())]
    messages += [(ZOOM_SAMPLE, m.SerializeToString()) for m in (number, text)]
    return messages


def _sign_requests() -> list[pb.SignRequest]:
    meeting = pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_HOST, video_webrtc_mode=True)
    video = pb.VideoClaims(
        session_name="soak-\u00e9\U0001f4a5",
        role=pb.ROLE_PARTICIPANT,
        user_identity="u" * 40,
        geo_regions=["US", "EU", ""],
        cloud_recording_option=True,
    )
    return [
        pb.SignRequest(app="meeting", meeting=meeting, ttl=duration_pb2.Duration(seconds=3600)),
        pb.SignRequest(meeting=pb.MeetingClaims()),
        pb.SignRequest(video=video, ttl=duration_pb2.Duration(seconds=-1, nanos=-5)),
        pb.SignRequest(app="nope", ttl=duration_pb2.Duration(seconds=2**62)),
    ]


class Cases:
    """An endless supply of (kind, method, body), drawn from one seeded generator."""

    def __init__(self, rng: random.Random, tokens: list[Token]) -> None:
        self.rng = rng
        self.tokens = tokens
        self.messages = valid_messages()
        self.kinds: list[tuple[str, Callable[[], tuple[str, bytes]]]] = [
            ("random bytes", self.random_bytes),
            ("mutated encoding", self.mutated_encoding),
            ("truncated encoding", self.truncated_encoding),
            ("random health service", self.health_service),
            ("flipped token", lambda: self.verify(self.flipped_token())),
            ("odd claim", lambda: self.verify(self.odd_claim_token())),
            ("odd header", lambda: self.verify(self.odd_header_token())),
            ("odd shape", lambda: self.verify(self.odd_shape_token())),
            ("odd verify fields", self.odd_verify_fields),
        ]
        self.weights = [12, 14, 8, 4, 16, 22, 8, 10, 6]

    def next(self) -> tuple[str, str, bytes]:
        kind, make = self.rng.choices(self.kinds, self.weights)[0]
        method, body = make()
        return kind, method, body

    # --- raw bodies ---------------------------------------------------------------------

    def random_bytes(self) -> tuple[str, bytes]:
        size = self.rng.choice((0, 1, 2, 3, 5, 10, 40, 200, 2000, 70000))
        return self.rng.choice(METHODS), self.rng.randbytes(size)

    def mutated_encoding(self) -> tuple[str, bytes]:
        method, body = self.rng.choice(self.messages)
        data = bytearray(body)
        for _ in range(self.rng.randint(1, 4)):
            self._mutate(data)
        return method, bytes(data)

    def _mutate(self, data: bytearray) -> None:
        at = self.rng.randrange(len(data) + 1)
        choice = self.rng.randrange(5)
        if choice == 0 and at < len(data):
            data[at] ^= 1 << self.rng.randrange(8)
        elif choice == 1 and at < len(data):
            data[at] = self.rng.choice((0x00, 0x7F, 0x80, 0xFF, self.rng.randrange(256)))
        elif choice == 2:
            data[at:at] = self.rng.randbytes(self.rng.randint(1, 6))
        elif choice == 3:
            del data[at : at + self.rng.randint(1, 4)]
        else:
            data[at:at] = data[at : at + self.rng.randint(1, 20)]

    def truncated_encoding(self) -> tuple[str, bytes]:
        method, body = self.rng.choice(self.messages)
        if self.rng.random() < 0.5:
            body = self.verify(self.rng.choice(self.tokens).text.encode())[1]
            method = VERIFY
        return method, body[: self.rng.randrange(max(len(body), 1))]

    def health_service(self) -> tuple[str, bytes]:
        name = self.rng.randbytes(self.rng.choice((0, 1, 8, 300)))
        return HEALTH, protobuf_field(1, name)

    # --- Verify ---------------------------------------------------------------------------

    def verify(self, token: bytes) -> tuple[str, bytes]:
        return VERIFY, protobuf_field(1, token)

    def odd_verify_fields(self) -> tuple[str, bytes]:
        token = self.rng.choice(self.tokens).text.encode()
        odd = self.rng.choice((b"", b"\xed\xa0\x80", b"9" * 5000, b"meeting", b"\x00", b"-1"))
        field = self.rng.choice((2, 3))
        return VERIFY, protobuf_field(1, token) + protobuf_field(field, odd)

    def flipped_token(self) -> bytes:
        text = list(self.rng.choice(self.tokens).text)
        for _ in range(self.rng.randint(1, 3)):
            text[self.rng.randrange(len(text))] = self.rng.choice(FLIP_CHARACTERS)
        return "".join(text).encode("utf-8", "surrogatepass")

    def odd_claim_token(self) -> bytes:
        token = self.rng.choice(self.tokens)
        claims = list(token.claims.items())
        for _ in range(self.rng.randint(1, 3)):
            self._odd_claim(claims)
        payload = b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in claims) + b"}"
        return self._signed(b'{"alg":"HS256","typ":"JWT"}', payload, token.secret)

    def _odd_claim(self, claims: list[tuple[str, bytes]]) -> None:
        value = self._odd_value()
        at = self.rng.randrange(len(claims))
        choice = self.rng.randrange(4)
        if choice == 0:
            claims[at] = (claims[at][0], value)
        elif choice == 1:
            claims.append((claims[at][0], value))  # the key again
        elif choice == 2:
            del claims[at]
        else:
            claims.append((self.rng.choice(("", "mn", "\ud800", "x" * 100)), value))

    def _odd_value(self) -> bytes:
        if self.rng.random() < 0.1:
            return self.rng.choice(ODD_RAW_VALUES)
        return self.rng.choice(ODD_VALUES).encode("utf-8", "surrogatepass")

    def odd_header_token(self) -> bytes:
        token = self.rng.choice(self.tokens)
        header = self.rng.choice(ODD_HEADERS).encode("utf-8", "surrogatepass")
        payload = b64decode_lenient(token.text.split(".")[1])
        return self._signed(header, payload, token.secret)

    def _signed(self, header: bytes, payload: bytes, secret: bytes) -> bytes:
        """header.payload.signature, signed with the app's secret (or not, now and then)."""
        signing_input = b64url(header) + b"." + b64url(payload)
        key = secret if self.rng.random() < 0.8 else self.rng.randbytes(32)
        return signing_input + b"." + b64url(hs256(key, signing_input))

    def odd_shape_token(self) -> bytes:
        text = self.rng.choice(self.tokens).text
        header, payload, signature = text.split(".")
        noise = [b64url(self.rng.randbytes(n)).decode() for n in (30, 30)]
        brace = b64url(b"{" + self.rng.randbytes(20)).decode()
        shapes = (
            "",
            ".",
            "..",
            header,
            f"{header}.{payload}",
            f"{header}.{payload}.",
            f"{text}.{signature}",
            f"{text}..",
            f"{header}=.{payload}==.{signature}=",
            text.replace("-", "+").replace("_", "/"),
            f" {text} ",
            f"{header}.{payload}.{signature[:-1]}",
            f"{header}.{payload}.{signature}{signature}",
            f"Bearer {text}",
            text + "A" * (MAX_TOKEN_LENGTH - len(text)),
            text + "A" * (MAX_TOKEN_LENGTH + 1 - len(text)),
            "eyJ" * 3000,
            f"{noise[0]}.{noise[1]}.{signature}",
            f"{brace}.{payload}.{signature}",
        )
        return self.rng.choice(shapes).encode()
