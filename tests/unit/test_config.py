"""Configuration: TOML apps, Zoom's sample variables, development apps, and clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import cast

import pytest
from google.rpc import error_details_pb2

from sdksign.server import Config, ConfigError, load_config
from sdksign.server.access.buckets import TokenBuckets
from sdksign.server.config import App, Tls, config_warnings, exposure_problems
from sdksign.server.config.devapps import _create_dev_apps, dev_apps, dev_apps_file
from sdksign.server.config.files import MAX_CONFIG_BYTES, MAX_SECRET_BYTES
from sdksign.server.config.schema import parse_duration
from sdksign.server.errors import ResourceExhausted
from sdksign.server.runtime.rpc import _retry_details

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
drain = "3s"
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
    assert (
        config.listen,
        config.clock_skew,
        config.drain,
        config.shutdown_grace,
        config.log_level,
    ) == ("127.0.0.1:6000", 45, 3, 60, "warning")
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
        (APP, "exactly one of secret_env, secret_file and secret_vault"),
        (
            APP + 'secret_env = "S"\nsecret_file = "f"\n',
            "exactly one of secret_env, secret_file and secret_vault",
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


# --- callers, anonymous callers, rotation, TLS ----------------------------------------------

APP = '[[apps]]\nname = "m"\nkind = "meeting"\nsdk_key = "k"\nsecret_env = "S"\n'
HASH = "a" * 64


def test_callers_and_anonymous_rule(tmp_path: Path) -> None:
    text = APP + (
        f'[[callers]]\nname = "sched"\ntoken_sha256 = "{HASH}"\napps = ["m"]\nroles = ["host"]\n'
        'max_ttl = "1h"\nmeetings = ["94*"]\nrate = 5\n'
        '[[callers]]\nname = "svc"\ncert_identity = "spiffe://corp/svc"\nverify = false\n'
        '[anonymous]\nroles = ["participant"]\nverify = false\n'
    )
    config = load_config(write(tmp_path, text), {"S": "s" * 32})
    sched, svc = config.policy.callers
    assert (sched.name, sched.token_sha256, sched.cert_identity) == (
        "sched",
        bytes.fromhex(HASH),
        None,
    )
    assert sched.rule.apps == frozenset({"m"}) and sched.rule.roles == frozenset({"host"})
    assert (sched.rule.max_ttl, sched.rule.meetings, sched.rule.rate, sched.rule.burst) == (
        3600,
        ("94*",),
        5.0,
        5,
    )
    assert svc.cert_identity == "spiffe://corp/svc" and not svc.rule.verify
    assert svc.rule.roles == {"participant", "host"} and svc.rule.apps is None
    assert config.policy.anonymous is not None
    assert config.policy.anonymous.roles == {"participant"}
    assert config.policy_configured


def test_anonymous_defaults(tmp_path: Path) -> None:
    # A file without [anonymous]: participant tokens only. roles = [] and verify = false: none.
    plain = load_config(write(tmp_path, APP), {"S": "s" * 32})
    assert plain.policy.anonymous is not None
    assert plain.policy.anonymous.roles == {"participant"}
    assert not plain.policy_configured
    closed = load_config(
        write(tmp_path, APP + "[anonymous]\nroles = []\nverify = false\n"), {"S": "s" * 32}
    )
    assert closed.policy.anonymous is None and closed.policy_configured


@pytest.mark.parametrize(
    ("callers", "says"),
    [
        ('name = "a"\ntoken = "plain"\n', "tokens are never written inline"),
        ('name = "a"\n', "exactly one of token_sha256 and cert_identity"),
        (f'name = "a"\ntoken_sha256 = "{HASH}"\ncert_identity = "x"\n', "exactly one of"),
        ('name = "a"\ntoken_sha256 = "abc"\n', "64 hex digits"),
        (
            f'name = "a"\ntoken_sha256 = "{HASH}"\napps = ["nope"]\n',
            "'nope' is not a configured app",
        ),
        (f'name = "a"\ntoken_sha256 = "{HASH}"\nroles = ["admin"]\n', "'admin' is not one of"),
        (f'name = "a"\ntoken_sha256 = "{HASH}"\nmax_ttl = "10m"\n', "at least 1800 s"),
        (f'name = "a"\ntoken_sha256 = "{HASH}"\nrate = 0\n', "rate must be a number"),
        (f'name = "a"\ntoken_sha256 = "{HASH}"\ncolour = "red"\n', "unknown key 'colour'"),
        (f'name = "anonymous"\ntoken_sha256 = "{HASH}"\n', "kept for callers without"),
    ],
)
def test_bad_callers_are_named(tmp_path: Path, callers: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        load_config(write(tmp_path, APP + "[[callers]]\n" + callers), {"S": "s" * 32})
    assert "plain" not in str(raised.value)


def test_two_callers_with_one_token_are_refused(tmp_path: Path) -> None:
    text = APP + "".join(f'[[callers]]\nname = "{n}"\ntoken_sha256 = "{HASH}"\n' for n in "ab")
    with pytest.raises(ConfigError, match="same token"):
        load_config(write(tmp_path, text), {"S": "s" * 32})


def test_previous_secrets_for_rotation(tmp_path: Path) -> None:
    (tmp_path / "old-2").write_text("old-secret-two-0123456789\n")
    text = APP + 'previous_secret_envs = ["OLD1"]\nprevious_secret_files = ["old-2"]\n'
    config = load_config(write(tmp_path, text), {"S": "new" * 11, "OLD1": "old-one" * 5})
    app = config.apps[0]
    assert app.secret == b"new" * 11
    assert app.secrets == (b"new" * 11, b"old-one" * 5, b"old-secret-two-0123456789")
    assert "old-one" not in repr(app)
    with pytest.raises(ConfigError, match="'OLD2' is empty or not set"):
        load_config(write(tmp_path, APP + 'previous_secret_envs = ["OLD2"]\n'), {"S": "s" * 32})


def test_tls_files(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / "not.pem").write_text("hello")
    server = '[server]\ntls_cert_file = "c.pem"\ntls_key_file = "k.pem"\n'
    config = load_config(write(tmp_path, server + APP), {"S": "s" * 32})
    assert config.tls is not None and config.tls.client_ca is None
    assert "BEGIN PRIVATE" not in repr(config)
    for text, says in [
        ('[server]\ntls_cert_file = "c.pem"\n', "both tls_cert_file and tls_key_file"),
        ('[server]\ntls_client_ca_file = "c.pem"\n', "needs tls_cert_file"),
        (server + 'tls_client_ca_file = "not.pem"\n', "is not PEM"),
        (server.replace("k.pem", "missing.pem"), "No such file"),
    ]:
        with pytest.raises(ConfigError, match=says):
            load_config(write(tmp_path, text + APP), {"S": "s" * 32})


@pytest.mark.parametrize(
    ("listen", "tls", "policy", "problems"),
    [
        ("127.0.0.1:50051", False, False, []),
        ("localhost:1", False, False, []),
        ("[::1]:1", False, False, []),
        ("0.0.0.0:50051", False, False, ["no TLS", "no caller policy"]),
        ("10.1.2.3:50051", True, False, ["no caller policy"]),
        ("[::]:50051", False, True, ["no TLS"]),
        ("sdksign.internal:443", True, True, []),
    ],
)
def test_exposure_problems(listen: str, tls: bool, policy: bool, problems: list[str]) -> None:
    config = Config(
        apps=(),
        source="t",
        tls=Tls(b"cert", b"key") if tls else None,
        policy_configured=policy,
    )
    found = exposure_problems(config, listen)
    assert [p.split(" (")[0] for p in found] == problems


# --- every bad value is a ConfigError, never another exception -------------------------------

LATIN1 = "sécret-in-latin-1-0123456789"


def refusal(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    """The one-line message load_config gives for `text`; fails if it loads or raises another."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"S": "s" * 32} if env is None else env)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and len(message.splitlines()) == 1, message
    return message


def test_a_secret_file_that_is_not_utf8_names_the_key_and_no_byte_of_it(tmp_path: Path) -> None:
    (tmp_path / "web.secret").write_bytes(LATIN1.encode("latin-1"))
    for key, value in [
        ("secret_file", '"web.secret"'),
        ("previous_secret_files", '["web.secret"]'),
    ]:
        text = APP.replace('secret_env = "S"\n', "") + f"{key} = {value}\n"
        if key != "secret_file":
            text += 'secret_env = "S"\n'
        message = refusal(tmp_path, text)
        assert f"{key} '{tmp_path / 'web.secret'}' is not UTF-8 text" in message
        assert "xe9" not in message and "cret-in" not in message


@pytest.mark.parametrize(
    "rate", ["inf", "nan", "-inf", "+nan", "1e999", "1_000_000_000_000", "0", "1e-300", "1e-5"]
)
def test_rates_that_are_not_finite_too_large_or_too_small(tmp_path: Path, rate: str) -> None:
    for table in (f'[[callers]]\nname = "a"\ntoken_sha256 = "{HASH}"\n', "[anonymous]\n"):
        message = refusal(tmp_path, APP + table + f"rate = {rate}\n")
        assert "rate must be a number of requests per second from 1/86400 (one a day) to 1e+09" in (
            message
        )


def test_the_smallest_rate_refuses_with_a_retry_info_of_a_day_at_most(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            APP + f'[[callers]]\nname = "a"\ntoken_sha256 = "{HASH}"\n'
            "rate = 1.1574074074074073e-05\n",
        ),
        {"S": SECRET},
    )
    caller = config.policy.callers[0]
    buckets = TokenBuckets()
    buckets.take(caller, now=0.0)
    with pytest.raises(ResourceExhausted) as refused:
        buckets.take(caller, now=0.0)
    assert 86000 < refused.value.retry_after <= 86400
    (retry, _quota) = _retry_details(refused.value)
    assert cast(error_details_pb2.RetryInfo, retry).retry_delay.seconds <= 86400


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("burst = 10_000_000_000", "burst must be a whole number of requests from 0 to"),
        ("burst = nan", "burst must be a whole number"),
        ("max_ttl = 172801", "at most 172800 s (48 h)"),
        ("max_ttl = 'soon'", "[anonymous]: max_ttl: 'soon' is not a duration"),
        (f"max_ttl = '{'9' * 5000}s'", "max_ttl: '99999999"),
        ("max_ttl = nan", "max_ttl: nan is not a duration"),
        ("roles = ['x', 1]", "roles must be a list of non-empty strings"),
        ("verify = 1", "verify must be true or false"),
    ],
)
def test_bad_rule_values(tmp_path: Path, line: str, says: str) -> None:
    assert says in refusal(tmp_path, APP + "[anonymous]\n" + line + "\n")


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ("clock_skew = 901", "[server] clock_skew: 901 s is too long; at most 900 s"),
        ("shutdown_grace = '2h'", "[server] shutdown_grace: 7200 s is too long; at most 3600 s"),
        ("clock_skew = inf", "[server] clock_skew: inf is not a duration"),
        ("drain = '2h'", "[server] drain: 7200 s is too long; at most 3600 s"),
        ("drain = -1", "[server] drain: -1 is not a duration"),
        ("shutdown_grace = 1e400", "[server] shutdown_grace: inf is not a duration"),
        ("log_level = nan", "[server] log_level: nan is not one of"),
        ("listen = 5", "[server] listen: must be a string"),
        (
            "tls_cert_file = 5\ntls_key_file = 'k.pem'",
            "[server]: tls_cert_file must be a non-empty",
        ),
        ("tls_cert_file = ['c']\ntls_key_file = 'k'", "tls_cert_file must be a non-empty string"),
        ('tls_cert_file = "a\\u0000b"\ntls_key_file = "k"', "it holds a NUL character"),
        ("tls_cert_file = '.'\ntls_key_file = 'k'", "Is a directory"),
    ],
)
def test_bad_server_values(tmp_path: Path, lines: str, says: str) -> None:
    assert says in refusal(tmp_path, f"[server]\n{lines}\n" + APP)


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("secret_env = 5", "secret_env must be a non-empty string"),
        ('secret_env = ""', "secret_env must be a non-empty string"),
        ("secret_file = 1979-05-27", "secret_file must be a non-empty string"),
        ('secret_file = "a\\u0000b"', "it holds a NUL character"),
        ('secret_file = "."', "secret_file '"),
        ('secret_file = "big"', f"larger than {MAX_SECRET_BYTES} bytes"),
        ('secret_env = "BAD"', "environment variable 'BAD' is not UTF-8 text"),
    ],
)
def test_bad_secret_sources(tmp_path: Path, secret: str, says: str) -> None:
    (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    text = APP.replace('secret_env = "S"\n', secret + "\n")
    message = refusal(tmp_path, text, {"BAD": "bad-\udcff"})
    assert says in message
    assert "xxxx" not in message


def test_a_directory_as_secret_file_says_so(tmp_path: Path) -> None:
    message = refusal(tmp_path, APP.replace('secret_env = "S"', 'secret_file = "."'))
    assert message.endswith(f"secret_file '{tmp_path}': Is a directory")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("[server]\nlisten = 'é'\n".encode("latin-1"), "not UTF-8 text (byte 19)"),
        (f"x = {'9' * 5000}\n".encode(), "not valid TOML: a number is too long"),
        (b"x = " + b"[" * 5000 + b"]" * 5000, "not valid TOML: arrays or tables nested too deeply"),
    ],
)
def test_documents_that_are_not_toml(tmp_path: Path, data: bytes, says: str) -> None:
    path = tmp_path / "sdksign.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_config(path, {})
    assert says in str(caught.value)


def test_a_directory_or_an_oversized_file_as_the_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        load_config(tmp_path, {})
    (tmp_path / "huge.toml").write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match=f"cannot read: larger than {MAX_CONFIG_BYTES} bytes"):
        load_config(tmp_path / "huge.toml", {})


def test_sample_variables_that_are_not_utf8(tmp_path: Path) -> None:
    # os.environ keeps bytes that are not UTF-8 as surrogates.
    for env, says in [
        ({"ZOOM_MEETING_SDK_KEY": "k", "ZOOM_MEETING_SDK_SECRET": SECRET + "\udcff"}, "SECRET"),
        ({"ZOOM_MEETING_SDK_KEY": "k\udce9", "ZOOM_MEETING_SDK_SECRET": SECRET}, "KEY"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_config(None, env)
        assert (
            str(caught.value)
            == f"ZOOM_MEETING_SDK_{says} is not UTF-8 text; it must hold the value as text"
        )


def test_development_apps_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot create development apps: File exists"):
        dev_apps(tmp_path / "file" / "dev-apps.json")


def test_long_values_are_cut_short_in_messages(tmp_path: Path) -> None:
    message = refusal(tmp_path, APP.replace('kind = "meeting"', f'kind = "{"w" * 10_000}"'))
    assert "kind 'wwww" in message and "..." in message and len(message) < 300


# A Zoom Client Secret's shape: 32 letters and digits, mixed case.
PASTED = "Zq8xR2mK9vL4nB7cW1pT6yH3jF5gD0sA"


@pytest.mark.parametrize(
    "where",
    [
        f'secret_env = "{PASTED}"',
        f'secret_file = "{PASTED}"',
        f'secret_env = "S"\nprevious_secret_envs = ["{PASTED}"]',
        f'secret_env = "S"\nprevious_secret_files = ["{PASTED}"]',
    ],
)
def test_a_secret_written_in_place_of_its_name_is_not_echoed(tmp_path: Path, where: str) -> None:
    message = refusal(tmp_path, APP.replace('secret_env = "S"', where))
    assert PASTED not in message and PASTED[:12] not in message
    assert "not shown: it may be a secret written there by mistake" in message


def test_a_file_or_variable_name_is_still_shown(tmp_path: Path) -> None:
    assert "'ZOOM_SECRET' is empty" in refusal(
        tmp_path, APP.replace('secret_env = "S"', 'secret_env = "ZOOM_SECRET"')
    )
    message = refusal(tmp_path, APP.replace('secret_env = "S"', 'secret_file = "zoom.secret"'))
    assert "zoom.secret" in message and "No such file" in message


def test_development_apps_file_is_one_per_user_whatever_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "mine.json"
    assert dev_apps_file({"SDKSIGN_DEV_APPS": str(chosen)}) == chosen
    state = tmp_path / "state"
    assert dev_apps_file({"XDG_STATE_HOME": str(state)}) == state / "sdksign" / "dev-apps.json"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".local" / "state" / "sdksign" / "dev-apps.json"
    for folder in (tmp_path, tmp_path / "home"):  # not relative to where the server starts
        (tmp_path / "home").mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        assert dev_apps_file({}) == default
    monkeypatch.chdir(tmp_path)
    relative = dev_apps_file({"SDKSIGN_DEV_APPS": "apps.json"})
    assert relative == tmp_path / "apps.json" and relative.is_absolute()


def test_development_apps_made_at_the_same_time_are_the_first_ones(tmp_path: Path) -> None:
    path = tmp_path / "sdksign" / "dev-apps.json"
    _create_dev_apps(path)
    first = path.read_text()
    _create_dev_apps(path)  # a second server that also found no file: the first one's stay
    assert path.read_text() == first
    assert [p.name for p in path.parent.iterdir()] == ["dev-apps.json"]  # no file left behind


def test_warnings_for_placeholder_keys_and_short_secrets() -> None:
    good = App(name="web", kind="meeting", sdk_key="AbCdEf12345", secret=b"x" * 32)
    assert config_warnings(Config(apps=(good,), source="test")) == []
    placeholder = App(
        name="web",
        kind="meeting",
        sdk_key="REPLACE_WITH_MEETING_SDK_CLIENT_ID",
        secret=b"s",
        previous_secrets=(b"y" * 32, b"tiny-old"),
    )
    warnings = config_warnings(Config(apps=(placeholder,), source="test"))
    assert len(warnings) == 3
    assert "'REPLACE_WITH_MEETING_SDK_CLIENT_ID' looks like a placeholder" in warnings[0]
    assert "its secret is 1 byte;" in warnings[1]
    assert "previous secret 2 is 8 bytes;" in warnings[2]
    assert not any("tiny-old" in w for w in warnings)
