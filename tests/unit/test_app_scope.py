"""A caller sees only the apps of its rule: Sign's default app is chosen among them, and an app
outside them is answered word for word as one nobody configured (Sign and Verify alike), so
that no caller learns which other apps exist."""

from __future__ import annotations

import secrets

import pytest

from sdksign.server import Config, FailedPrecondition, InvalidArgument, mint
from sdksign.server.access.policy import ANONYMOUS, Caller, Rule
from sdksign.server.config.model import App
from sdksign.server.errors import PermissionDenied, RequestError, Unauthenticated
from sdksign.server.tokens.diagnose import check
from sdksign.server.zoom.rules import Sdk
from sdksign.v1 import signature_service_pb2 as pb

NOW = 1_790_000_000
APPS: tuple[tuple[str, Sdk], ...] = (
    ("meeting", "meeting"),
    ("meeting2", "meeting"),
    ("secret-video-project", "video"),
)
CONFIG = Config(
    apps=tuple(
        App(name=name, kind=kind, sdk_key=f"{name}-key", secret=secrets.token_bytes(32))
        for name, kind in APPS
    ),
    source="tests",
)
CLASSROOM = Caller(name="classroom", rule=Rule(apps=frozenset({"meeting"})))
ANONYMOUS_MEETING = Caller(name=ANONYMOUS, rule=Rule(apps=frozenset({"meeting"})))
EVERYONE = Caller(name="auditor", rule=Rule())
MEETING = pb.MeetingClaims(meeting_number="123456789", role=pb.ROLE_PARTICIPANT)
VIDEO = pb.VideoClaims(session_name="room", role=pb.ROLE_PARTICIPANT)


def sign(caller: Caller, app: str = "", video: bool = False) -> App:
    request = (
        pb.SignRequest(app=app, video=VIDEO) if video else pb.SignRequest(app=app, meeting=MEETING)
    )
    return mint(request, CONFIG, NOW, caller).app


def verify(caller: Caller, app: str) -> None:
    check(pb.VerifyRequest(token="a.b.c", app=app), CONFIG, NOW, caller)


def refusal(call: object, *args: object) -> RequestError:
    with pytest.raises(RequestError) as raised:
        call(*args)  # type: ignore[operator]
    return raised.value


def answer(error: RequestError) -> tuple[str, list[tuple[str, str]]]:
    return error.status, [(v.field, v.description) for v in error.violations]


@pytest.mark.parametrize("call", [sign, verify])
@pytest.mark.parametrize("caller", [CLASSROOM, ANONYMOUS_MEETING])
def test_an_app_outside_the_rule_reads_as_one_nobody_configured(
    call: object, caller: Caller
) -> None:
    unknown = refusal(call, caller, "nope")
    assert answer(unknown) == (
        "INVALID_ARGUMENT",
        [("app", "'nope' is not an app this caller may use (allowed: meeting)")],
    )
    for name in ("secret-video-project", "meeting2"):
        hidden = refusal(call, caller, name)
        # The same status, violation and message as for 'nope', but for the name.
        assert type(hidden) is type(unknown)
        assert answer(hidden) == (
            "INVALID_ARGUMENT",
            [("app", f"{name!r} is not an app this caller may use (allowed: meeting)")],
        )
        assert hidden.message == unknown.message.replace("'nope'", repr(name))
        # Only the name asked for: neither the other apps nor their kinds.
        other = "meeting2" if name == "secret-video-project" else "secret-video-project"
        assert other not in hidden.message and "video app" not in hidden.message


@pytest.mark.parametrize("call", [sign, verify])
def test_a_caller_without_apps_in_its_rule_is_told_every_app(call: object) -> None:
    assert answer(refusal(call, EVERYONE, "nope"))[1] == [
        (
            "app",
            "'nope' is not an app this caller may use "
            "(allowed: meeting, meeting2, secret-video-project)",
        )
    ]


def test_verify_apps_decide_what_verify_names() -> None:
    auditor = Caller(
        name="auditor",
        rule=Rule(apps=frozenset({"meeting"}), verify_apps=frozenset({"secret-video-project"})),
    )
    verify(auditor, "secret-video-project")
    assert "(allowed: secret-video-project)" in refusal(verify, auditor, "meeting").message
    nobody = Caller(name="n", rule=Rule(verify_apps=frozenset()))
    assert "(allowed: none)" in refusal(verify, nobody, "meeting").message


def test_sign_s_default_app_is_the_only_one_the_caller_may_use() -> None:
    # Two meeting apps are configured; the classroom may use one: Zoom's sample request,
    # which has no app, signs with it.
    assert sign(CLASSROOM).name == "meeting"
    assert sign(Caller(name="m2", rule=Rule(apps=frozenset({"meeting2"})))).name == "meeting2"
    assert sign(ANONYMOUS_MEETING).name == "meeting"


def test_app_is_required_only_among_the_apps_the_caller_may_use() -> None:
    both = Caller(
        name="b", rule=Rule(apps=frozenset({"meeting", "meeting2", "secret-video-project"}))
    )
    for caller in (both, EVERYONE):
        assert answer(refusal(sign, caller)) == (
            "INVALID_ARGUMENT",
            [("app", "is required: this caller may use several meeting apps (meeting, meeting2)")],
        )
    assert sign(both, video=True).name == "secret-video-project"


def test_no_app_of_the_kind_in_the_rule_is_a_refusal_that_hides_what_is_configured() -> None:
    denied = refusal(sign, CLASSROOM, "", True)
    assert isinstance(denied, PermissionDenied) and denied.rule == "app"
    assert denied.message == "caller 'classroom' may use no video app (allowed: meeting)"
    anonymous = refusal(sign, ANONYMOUS_MEETING, "", True)
    assert isinstance(anonymous, Unauthenticated)
    assert anonymous.message == "anonymous callers may use no video app (allowed: meeting)"
    # The same words when no video app is configured at all.
    meeting_only = Config(apps=CONFIG.apps[:1], source="tests")
    with pytest.raises(PermissionDenied) as raised:
        mint(pb.SignRequest(video=VIDEO), meeting_only, NOW, CLASSROOM)
    assert raised.value.message == denied.message
    # A caller whose rule has every app is told the truth: nothing is configured.
    with pytest.raises(FailedPrecondition, match="no video app is configured"):
        mint(pb.SignRequest(video=VIDEO), meeting_only, NOW, EVERYONE)


def test_the_request_is_validated_before_the_rule_is_told() -> None:
    bad = pb.SignRequest(video=pb.VideoClaims(role=pb.ROLE_PARTICIPANT))
    with pytest.raises(InvalidArgument) as raised:
        mint(bad, CONFIG, NOW, CLASSROOM)
    assert [v.field for v in raised.value.violations] == ["video.session_name"]
