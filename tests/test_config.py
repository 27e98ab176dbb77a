"""Configuration: TOML apps, Zoom's sample variables, development apps, and clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sdksign.server import ConfigError, load_config
from sdksign.server._config import dev_apps, parse_duration

SECRET = "s3cret-value-never-shown-0123456789abcdefgh"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sdksign.toml"
    path.write_text(text)
    return path


def test_toml_apps_with_secret_env_and_secret_file(tmp_path: Path) -> None:
    (tmp_path / "video.secret").write_text(SECRET + "-video\n")
    path = write(
        tmp_path,
        """
[server]
listen = "127.0.0.1:6000"
clock_skew = "45s"
shutdown_grace = "1m"
log_level = "warning"

[[apps]]
name = "web"
kind = "meeting"
sdk_key = "key-a"
secret_env = "WEB_SECRET"

[[apps]]
name = "classes"
kind = "video"
sdk_key = "key-b"
secret_file = "video.secret"
""",
    )
    config = load_config(path, {"WEB_SECRET": SECRET})
    assert [(a.name, a.kind, a.sdk_key, a.secret) for a in config.apps] == [
        ("web", "meeting", "key-a", SECRET.encode()),
        ("classes", "video", "key-b", (SECRET + "-video").encode()),
    ]
    assert (config.listen, config.clock_skew, config.shutdown_grace, config.log_level) == (
        "127.0.0.1:6000",
        45,
        60,
        "warning",
    )
    assert SECRET not in repr(config)


def test_zoom_sample_variables(tmp_path: Path) -> None:
    env = {"ZOOM_MEETING_SDK_KEY": "mk", "ZOOM_MEETING_SDK_SECRET": SECRET}
    config = load_config(None, env)
    assert [(a.name, a.kind, a.sdk_key) for a in config.apps] == [("meeting", "meeting", "mk")]
    assert not config.development


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ZOOM_MEETING_SDK_KEY": "mk"}, "ZOOM_MEETING_SDK_SECRET"),
        ({"ZOOM_VIDEO_SDK_SECRET": SECRET}, "ZOOM_VIDEO_SDK_KEY"),
    ],
)
def test_half_set_sample_variables_are_an_error(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env)
    assert named in str(caught.value)
    assert SECRET not in str(caught.value)


APP = '[[apps]]\nname = "a"\nkind = "meeting"\nsdk_key = "k"\n'


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not toml [", "not valid TOML"),
        ("", "no apps"),
        (
            '[[apps]]\nname = "a"\nkind = "webinar"\nsdk_key = "k"\nsecret_env = "S"\n',
            "kind 'webinar'",
        ),
        (APP + f'secret = "{SECRET}"\n', "never written inline"),
        (APP, "exactly one of secret_env and secret_file"),
        (
            APP + 'secret_env = "S"\nsecret_file = "f"\n',
            "exactly one of secret_env and secret_file",
        ),
        (APP + 'secret_env = "UNSET_VARIABLE"\n', "'UNSET_VARIABLE' is empty or not set"),
        (APP + 'secret_file = "missing.secret"\n', "missing.secret"),
        ('[[apps]]\nname = "a"\nkind = "meeting"\nsecret_env = "S"\n', "sdk_key is required"),
        (APP + 'secret_env = "S"\nsdk_kee = "typo"\n', "unknown key 'sdk_kee'"),
        (
            APP
            + 'secret_env = "S"\n'
            + APP.replace('sdk_key = "k"', 'sdk_key = "k2"')
            + 'secret_env = "S"\n',
            "two apps have the name 'a'",
        ),
        (APP + 'secret_env = "S"\n[server]\nclock_skew = "soon"\n', "clock_skew"),
        (APP + 'secret_env = "S"\n[server]\nlog_level = "loud"\n', "log_level"),
        (APP + 'secret_env = "S"\n[sever]\n', "unknown table or key 'sever'"),
    ],
)
def test_bad_files_give_one_line_naming_the_problem(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"S": SECRET})
    message = str(caught.value)
    assert says in message
    assert str(path) in message
    assert "\n" not in message
    assert SECRET not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", {})


def test_development_apps_are_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / ".sdksign" / "dev-apps.json"
    first = dev_apps(path)
    assert [a.kind for a in first] == ["meeting", "video"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_apps(path) == first
    secret = first[0].secret.decode()
    assert len(secret) % 2 == 1  # odd length: jsrsasign can never read it as hex
    assert json.loads(path.read_text())["meeting"]["sdk_key"] == first[0].sdk_key


def test_unreadable_development_file(tmp_path: Path) -> None:
    path = tmp_path / "dev-apps.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match="delete the file"):
        dev_apps(path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30), ("30s", 30), ("90m", 5400), ("2h", 7200), ("1h30m", 5400), ("2d", 172800)],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "2 hours", True, -1])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(text, "x")
