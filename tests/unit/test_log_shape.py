"""No caller's value reaches a log line, a span or an error message unless it has its field's
shape (zoom.rules: shown, quoted): a token put in any field of Sign, Verify or Zoom's sample
JSON, its dots written as ",", "%2E" or "\\u002e", its segments put apart by white space or
glued, leaves neither itself nor its payload nor its signature in the log or the answer."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
import pytest
from google.api import httpbody_pb2
from grpc_status import rpc_status

from bench.reliability.logscan import token_pieces, whole_tokens
from sdksign.server import App
from sdksign.server.errors import NotFound
from sdksign.server.zoom.jwt import encode, fingerprint
from sdksign.server.zoom.rules import (
    is_app_name,
    is_meeting_number,
    is_method_path,
    is_zoom_user,
    placeholder,
    quoted,
    shown,
)
from sdksign.server.zoomapi.grants import GrantKeeper, MustAuthorize
from sdksign.server.zoomapi.grantstore import GrantStore
from sdksign.server.zoomapi.userauth import UserOAuth
from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from sdksign.v1 import zoom_sample_pb2_grpc as zs_grpc
from tests.conftest import rpc_lines
from tests.helpers import meeting_claims


def live_token(app: App) -> str:
    """A token of `app`, as Sign writes one: anyone who has it can join."""
    return encode(meeting_claims(app.sdk_key, int(time.time()), role=1), app.secret)


def written(token: str) -> dict[str, str]:
    """`token` the ways a caller may put it in a field by mistake."""
    header, payload, signature = token.split(".")
    return {
        "as it is": token,
        "dots as commas": token.replace(".", ","),
        "dots as %2E": token.replace(".", "%2E"),
        "dots as \\u002e": token.replace(".", "\\u002e"),
        "payload, space, signature": f"{header}.{payload} {signature}",
        "spaces for dots": token.replace(".", " "),
        "segments glued": header + payload + signature,
        "glued twice": token + token,
        "after digits": "94843468909" + token.replace(".", ","),
        "signature in an email": f"{signature}%2E{payload[:20]}@example.com",
    }


def assert_no_piece(text: str, token: str) -> None:
    """Neither `token`, nor its payload, nor its signature is in `text`, and the soak's log
    scan finds nothing there."""
    _, payload, signature = token.split(".")
    assert token not in text and payload not in text and signature not in text
    for line in text.splitlines() or [""]:
        assert list(whole_tokens(line)) == [] and list(token_pieces(line)) == [], line


# --- the shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shaped", "kept"),
    [
        ("94843468909", is_meeting_number, True),
        ("9" * 21, is_meeting_number, False),
        ("9484 3468 909", is_meeting_number, False),
        ("meeting", is_app_name, True),
        ("web-prod_2.eu", is_app_name, True),
        ("a" * 41, is_app_name, False),
        ("my app", is_app_name, False),
        ("Alice@Example.com", is_zoom_user, True),
        ("o'brien+zoom@mail.example.co.uk", is_zoom_user, True),
        ("KDcuGIm1QgePTO8WbOqwIQ", is_zoom_user, True),
        ("u-carol", is_zoom_user, True),
        ("a%2Eb@example.com", is_zoom_user, False),
        ("x" * 43 + "@example.com", is_zoom_user, False),
        ("alice@" + "d" * 43 + ".com", is_zoom_user, False),
        ("alice@localhost", is_zoom_user, False),
        ("u" * 33, is_zoom_user, False),
        ("/sdksign.v1.SignatureService/Nope", is_method_path, True),
        ("/x.Y/Z", is_method_path, True),
        ("/a,b/c", is_method_path, False),
        ("/" + "a" * 43 + "/c", is_method_path, False),
    ],
)
def test_a_value_is_shown_only_in_its_shape(
    value: str, shaped: Callable[[str], bool], kept: bool
) -> None:
    assert shaped(value) is kept
    assert shown(value, shaped) == (
        value if kept else f"<{len(value)} chars, fp {fingerprint(value)}>"
    )
    assert quoted(value, shaped) == (repr(value) if kept else placeholder(value))


def test_an_empty_value_is_shown_empty_and_a_token_by_its_token_fingerprint() -> None:
    assert shown("", is_meeting_number) == ""
    token = encode({"sdkKey": "k", "iat": 1}, b"secret")
    assert shown(token, is_meeting_number) == f"<{len(token)} chars, fp {fingerprint(token)}>"


def test_no_shape_can_hold_a_signature() -> None:
    # The soak's log scan looks for runs of 43 base64url characters: no shown value has one.
    signature = encode({"a": 1}, b"secret").rsplit(".", 1)[1]
    for shaped in (is_meeting_number, is_app_name, is_zoom_user, is_method_path):
        for value in (
            signature,
            f"{signature}@example.com",
            f"/{signature}/x",
            f"a@{signature}.io",
        ):
            assert not shaped(value), (shaped, value)


# --- Sign, Verify and the sample's JSON on a real server -------------------------------------


def sign_requests(value: str) -> dict[str, pb.SignRequest]:
    """A Sign request for each field a caller writes, `value` in it."""
    host = pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_HOST)

    def video(**claims: Any) -> pb.SignRequest:
        return pb.SignRequest(video=pb.VideoClaims(session_name="s", role=pb.ROLE_HOST, **claims))

    return {
        "app": pb.SignRequest(app=value, meeting=host),
        "meeting_number": pb.SignRequest(
            meeting=pb.MeetingClaims(meeting_number=value, role=pb.ROLE_HOST)
        ),
        "start_as": pb.SignRequest(meeting=host, start_as=value),
        "on_behalf_of": pb.SignRequest(meeting=host, on_behalf_of=value),
        # Each over its claim's length, so that each call is refused.
        "session_name": pb.SignRequest(
            video=pb.VideoClaims(session_name=value + "s" * 200, role=pb.ROLE_HOST)
        ),
        "user_identity": video(user_identity=value),
        "session_key": video(session_key=value),
        "telemetry_tracking_id": video(telemetry_tracking_id=value + "t" * 200),
        "geo_regions": video(geo_regions=["US", value]),
    }


# The log field of each Sign field a refusal logs as it was sent, when it has its shape.
LOGGED = {"app": "app", "meeting_number": "meeting", "start_as": "start_as"}


async def refused(call: Awaitable[object]) -> str:
    """The text of the refusal of `call`: its message and details."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    status = rpc_status.from_call(error)
    return f"{error.details()}\n{status}"


@pytest.mark.parametrize("field", sorted(sign_requests("x")))
async def test_a_token_in_a_sign_field_reaches_no_log_line_and_no_answer(
    field: str, log_stream: io.BytesIO, target: str, meeting_app: App
) -> None:
    token = live_token(meeting_app)
    values = written(token)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        answers = [
            await refused(stub.Sign(sign_requests(value)[field])) for value in values.values()
        ]
    lines = await rpc_lines(log_stream, len(values))
    log = log_stream.getvalue().decode()
    assert_no_piece(log, token)
    assert_no_piece("\n".join(answers), token)
    assert {line["code"] for line in lines} <= {"INVALID_ARGUMENT", "UNAUTHENTICATED"}
    if field in LOGGED:
        for line, value in zip(lines, values.values(), strict=True):
            assert line[LOGGED[field]] == placeholder(value)


async def test_a_shaped_value_is_logged_as_it_was_sent(log_stream: io.BytesIO, target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        await refused(stub.Sign(sign_requests("alice@example.com")["start_as"]))
        await refused(stub.Sign(sign_requests("nope")["app"]))
    start_as, app = await rpc_lines(log_stream, 2)
    assert start_as["start_as"] == "alice@example.com" and start_as["meeting"] == "123456789"
    assert "'alice@example.com'" in start_as["reason"]
    assert app["app"] == "nope" and "'nope' is not an app" in app["reason"]


async def test_on_behalf_of_is_named_in_a_message_only_in_its_shape(
    log_stream: io.BytesIO, target: str, meeting_app: App
) -> None:
    """A refused on-behalf Sign's message names the user as sent only in a Zoom user's
    shape; its log line has the user's fingerprint, never the user."""
    signature = live_token(meeting_app).split(".")[2]
    odd = f"{signature}%2E@example.com"  # a user Sign takes (START_AS_RULE), not in shape
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        shaped = await refused(stub.Sign(sign_requests("alice@example.com")["on_behalf_of"]))
        unshaped = await refused(stub.Sign(sign_requests(odd)["on_behalf_of"]))
    first, second = await rpc_lines(log_stream, 2)
    assert "'alice@example.com'" in shaped and "'alice@example.com'" in first["reason"]
    assert signature not in unshaped and placeholder(odd) in unshaped
    assert "on_behalf_of" not in second and second["on_behalf_of_fp"] == fingerprint(odd.lower())
    assert signature not in log_stream.getvalue().decode()


async def test_a_grant_users_name_is_shown_only_in_its_shape(meeting_app: App) -> None:
    """RemoveGrant's `user` and an on-behalf Sign's user, echoed by the grant keeper's errors
    (no grant, none to remove), only in a Zoom user's shape."""

    class NoGrants:
        async def get(self, app: str, user: str) -> None:
            return None

    keeper = GrantKeeper(cast("GrantStore", NoGrants()), cast("UserOAuth", None))
    token = live_token(meeting_app)
    for value in [*written(token).values(), "alice@example.com"]:
        with pytest.raises(NotFound) as missing:
            await keeper.remove(meeting_app, value)
        with pytest.raises(MustAuthorize) as unauthorized:
            await keeper.obf(meeting_app, value, "123456789")
        text = f"{missing.value}\n{missing.value.subject}\n{unauthorized.value}"
        if is_zoom_user(value):
            assert repr(value) in str(missing.value) and missing.value.subject == value
            assert repr(value) in str(unauthorized.value)
        else:
            assert_no_piece(text, token)
            assert placeholder(value) in str(missing.value) and placeholder(value) in text


async def test_a_token_in_a_verify_field_reaches_no_log_line_and_no_answer(
    log_stream: io.BytesIO, target: str, meeting_app: App
) -> None:
    token = live_token(meeting_app)
    values = written(token)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SignatureServiceStub(channel)
        answers = []
        for value in values.values():
            answers.append(await refused(stub.Verify(pb.VerifyRequest(token="x.y.z", app=value))))
            answers.append(
                await refused(
                    stub.Verify(pb.VerifyRequest(token="x.y.z", expected_meeting_number=value))
                )
            )
    await rpc_lines(log_stream, 2 * len(values))
    assert_no_piece(log_stream.getvalue().decode(), token)
    assert_no_piece("\n".join(answers), token)


async def test_a_token_in_the_samples_json_reaches_no_log_line_and_no_answer(
    log_stream: io.BytesIO, target: str, meeting_app: App
) -> None:
    token = live_token(meeting_app)
    values = written(token)
    bodies = [
        body
        for value in values.values()
        for body in (
            {"meetingNumber": value, "role": 1},
            {"meetingNumber": "123456789", "role": 1, "app": value},
            {"meetingNumber": "123456789", "role": value},
            {"meetingNumber": "123456789", "role": 1, "expirationSeconds": value},
        )
    ]
    answers = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = zs_grpc.ZoomSampleServiceStub(channel)
        for body in bodies:
            request = httpbody_pb2.HttpBody(
                content_type="application/json", data=json.dumps(body).encode()
            )
            answers.append(await refused(stub.Sign(request)))
    await rpc_lines(log_stream, len(bodies))
    assert_no_piece(log_stream.getvalue().decode(), token)
    assert_no_piece("\n".join(answers), token)


async def test_an_unknown_methods_path_is_logged_only_in_a_methods_shape(
    log_stream: io.BytesIO, target: str, meeting_app: App
) -> None:
    token = live_token(meeting_app)
    paths = ["/x.Y/Z", "/" + token.replace(".", "%2E") + "/Z", f"/a.{token}/Z"]
    async with grpc.aio.insecure_channel(target) as channel:
        for path in paths:
            with pytest.raises(grpc.aio.AioRpcError):
                await channel.unary_unary(path)(b"")
    lines = await rpc_lines(log_stream, len(paths))
    assert [line["method"] for line in lines] == [paths[0], *map(placeholder, paths[1:])]
    assert_no_piece(log_stream.getvalue().decode(), token)


# --- the soak's log scan ----------------------------------------------------------------------


def test_the_log_scan_finds_a_payload_or_signature_whatever_surrounds_it() -> None:
    token = encode(meeting_claims("TestMeetingKey0123456", 1_700_000_000), b"s" * 32)
    header, payload, signature = token.split(".")
    for value in written(token).values():
        assert list(token_pieces(f'{{"meeting":"{value}"}}')) != [], value
    for alone in (signature, payload, f"x{signature}y", "u002e" + signature, f"2E{payload}"):
        assert list(token_pieces(f"got [{alone}] here")) != [], alone
    standard = payload.replace("-", "+").replace("_", "/") + "+/"
    assert list(token_pieces(f"got {standard}")) != []
    for clean in (
        '{"event":"rpc","method":"/sdksign.v1.SignatureService/Sign","peer":"ipv4:127.0.0.1:1"}',
        f'{{"token_fp":"{fingerprint(token)}","trace_id":"{"f" * 32}","app":"{header}"}}',
        '  File "/work/checkout/server/sdksign/server/runtime/rpc.py", line 3, in unary',
        placeholder(token),
    ):
        assert list(token_pieces(clean)) == [], clean
