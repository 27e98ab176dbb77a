"""Verify scoped like Sign: a caller's tokens are checked against the apps of its rule
(`verify_apps`, else `apps`) and no other; the others' tokens read as unknown SDK keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdksign.server import App, Config, ConfigError, load_config
from sdksign.server.access.policy import ANONYMOUS, Caller, Rule
from sdksign.server.errors import InvalidArgument
from sdksign.server.tokens.diagnose import check
from sdksign.server.tokens.diagnose.problems import Diagnosis, ProblemCode
from sdksign.v1 import signature_service_pb2 as pb
from tests.conftest import MEETING_KEY, VIDEO_KEY
from tests.helpers import HS256, meeting_claims, raw_token, video_claims

NOW = 1_800_000_000
MEETING_ONLY = Caller(name="classroom", rule=Rule(apps=frozenset({"meeting"})))
EVERYONE = Caller(name="auditor", rule=Rule())


@pytest.fixture
def video_token(video_secret: str) -> str:
    return raw_token(HS256, video_claims(VIDEO_KEY, NOW), video_secret.encode())


@pytest.fixture
def meeting_token(meeting_secret: str) -> str:
    return raw_token(HS256, meeting_claims(MEETING_KEY, NOW), meeting_secret.encode())


def verify(config: Config, caller: Caller, token: str, app: str | None = None) -> Diagnosis:
    request = pb.VerifyRequest(token=token)
    if app is not None:
        request.app = app
    return check(request, config, NOW, caller)


def test_verify_apps_default_to_the_rule_s_apps() -> None:
    assert Rule().verified_apps is None
    assert Rule(apps=frozenset({"meeting"})).verified_apps == frozenset({"meeting"})
    wider = Rule(apps=frozenset({"meeting"}), verify_apps=frozenset({"meeting", "video"}))
    assert wider.verified_apps == frozenset({"meeting", "video"})
    assert Rule(verify_apps=frozenset()).verified_apps == frozenset()


def test_a_token_of_another_app_reads_as_a_key_nobody_configured(
    config: Config, video_token: str, video_secret: str
) -> None:
    assert verify(config, EVERYONE, video_token).valid
    scoped = verify(config, MEETING_ONLY, video_token)
    # The same answer as for a key that no app has: nothing says the app exists.
    stranger = raw_token(HS256, video_claims("NobodysKey0123456789", NOW), video_secret.encode())
    unknown = verify(config, MEETING_ONLY, stranger)
    for diagnosis in (scoped, unknown):
        assert [p.code for p in diagnosis.problems] == [ProblemCode.UNKNOWN_SDK_KEY]
        assert (diagnosis.app, diagnosis.secret_fingerprint) == (None, "")
    assert scoped.problems[0].message.replace(VIDEO_KEY, "NobodysKey0123456789") == (
        unknown.problems[0].message
    )
    assert "video" not in scoped.problems[0].message.replace("Video SDK", "")


def test_no_secret_of_another_app_is_read(meeting_app: App, video_secret: str) -> None:
    reads: list[str] = []

    class Watched(App):
        """The video app, noting each read of its secrets."""

        @property
        def secrets(self) -> tuple[bytes, ...]:
            reads.append(self.name)
            return super().secrets

    video = Watched("video", "video", VIDEO_KEY, video_secret.encode())
    config = Config(apps=(meeting_app, video), source="tests")
    token = raw_token(HS256, video_claims(VIDEO_KEY, NOW), video_secret.encode())
    # A key claim holding the video secret is not recognised as that secret either.
    swapped = raw_token(HS256, video_claims(video_secret, NOW), b"x" * 32)
    assert not verify(config, MEETING_ONLY, token).valid
    assert "secret of app" not in verify(config, MEETING_ONLY, swapped).problems[0].message
    assert reads == []
    # A caller whose rule has the video app: its secrets are read, the swap is named.
    assert verify(config, EVERYONE, token).valid
    assert "secret of app 'video'" in verify(config, EVERYONE, swapped).problems[0].message
    assert reads


def test_verify_apps_widen_or_narrow_what_sign_allows(
    config: Config, video_token: str, meeting_token: str
) -> None:
    auditor = Caller(
        name="auditor",
        rule=Rule(apps=frozenset({"meeting"}), verify_apps=frozenset({"meeting", "video"})),
    )
    assert verify(config, auditor, video_token).valid
    assert verify(config, auditor, meeting_token).valid
    video_only = Caller(name="v", rule=Rule(verify_apps=frozenset({"video"})))
    assert verify(config, video_only, video_token).valid
    assert not verify(config, video_only, meeting_token).valid


def test_naming_an_app_outside_the_rule_is_refused_as_an_app_nobody_configured(
    config: Config, video_token: str
) -> None:
    # INVALID_ARGUMENT, as for 'nope': a PERMISSION_DENIED would say that 'video' exists.
    for caller in (MEETING_ONLY, Caller(name=ANONYMOUS, rule=Rule(apps=frozenset({"meeting"})))):
        for name in ("video", "nope"):
            with pytest.raises(InvalidArgument) as invalid:
                verify(config, caller, video_token, app=name)
            assert [(v.field, v.description) for v in invalid.value.violations] == [
                ("app", f"{name!r} is not an app this caller may use (allowed: meeting)")
            ]
    assert verify(config, MEETING_ONLY, video_token, app="meeting").problems


APPS = (
    '[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "K1"\nsecret_env = "S"\n'
    '[[apps]]\nname = "video"\nkind = "video"\nsdk_key = "K2"\nsecret_env = "S"\n'
)


def anonymous_rule(tmp_path: Path, lines: str) -> Rule | None:
    path = tmp_path / "sdksign.toml"
    path.write_text(APPS + "[anonymous]\n" + lines)
    return load_config(path, {"S": "s" * 32}).policy.anonymous


def test_the_configuration_key(tmp_path: Path) -> None:
    rule = anonymous_rule(tmp_path, 'apps = ["meeting"]\n')
    assert rule is not None and rule.verified_apps == frozenset({"meeting"})
    rule = anonymous_rule(tmp_path, 'apps = ["meeting"]\nverify_apps = ["meeting", "video"]\n')
    assert rule is not None and rule.verified_apps == frozenset({"meeting", "video"})
    for lines, says in [
        ('verify_apps = ["nope"]', "[anonymous]: verify_apps: 'nope' is not a configured app"),
        ("verify_apps = 'video'", "[anonymous]: verify_apps must be a list of non-empty strings"),
    ]:
        with pytest.raises(ConfigError) as raised:
            anonymous_rule(tmp_path, lines + "\n")
        assert str(raised.value).endswith(says)
