"""The `sdksign` command as its own process: flag values and their bounds, exit statuses,
messages that name flags, hints for a failed connection, the version and help; and the
certificates docs/security.md makes, serving examples/production-mtls.toml."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from sdksign.client._limits import MAX_MESSAGE_BYTES, MAX_TOKEN_LENGTH
from sdksign.server import encode
from tests.conftest import MEETING_KEY, ROOT, ServerProcess, run, start_server_process
from tests.helpers import meeting_claims
from tests.process.test_process import cli as sdksign

MEETING = ["--meeting-number", "94843468909", "--role", "host"]


def bash(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`script` as the README's sh blocks run: bash -e, from the checkout, in a HOME of its own."""
    return run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        {"PATH": os.environ["PATH"], "HOME": str(home)},
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One plaintext server (development apps) for this module's calls."""
    started = start_server_process(tmp_path_factory.mktemp("cli"), {}, ["--workers", "1"])
    try:
        yield started
    finally:
        assert started.stop(timeout=15) is not None, "the server did not stop within 15 s"


def free_port() -> int:
    """A loopback port nothing listens on (bound and let go at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- flag values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        *[("7200", 7200), ("1800", 1800), ("3600", 3600), ("172800", 172800)],
        *[("2h", 7200), ("1h30m", 5400), ("30m", 1800)],
    ],
)
def test_ttl_in_seconds_or_a_duration(server: ServerProcess, ttl: str, seconds: int) -> None:
    done = sdksign("sign", "--target", server.target, *MEETING, "--ttl", ttl, "--json")
    assert done.returncode == 0, done.stderr
    signed = json.loads(done.stdout)
    life = datetime.fromisoformat(signed["expires_at"]) - datetime.fromisoformat(
        signed["issued_at"]
    )
    assert life.total_seconds() == seconds


@pytest.mark.parametrize(
    ("command", "flag", "value", "bounds"),
    [
        ("sign", "--ttl", value, "from 1800 to 172800 (30 min to 48 h)")
        for value in ("1799", "172801", "3d", "7200x", "²", "-5", "", "9" * 5000)
    ]
    + [
        ("serve", "--drain", value, "from 0 to 3600 (0 s to 1 h)")
        for value in ("3601", "2h", "²", "-1", "soon", "9" * 5000)
    ],
)
def test_a_duration_out_of_bounds_is_refused_naming_the_flag_and_its_bounds(
    command: str, flag: str, value: str, bounds: str, tmp_path: Path
) -> None:
    done = sdksign(command, flag, value, cwd=tmp_path)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sdksign {command}: error: argument {flag}: ")
    assert bounds in last and "_seconds" not in done.stderr and "Traceback" not in done.stderr
    assert len(last) < 300  # a long value is shown cut short


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("127.0.0.1:99999", "the port 99999 is out of range: ports are 0 to 65535"),
        ("127.0.0.1:65536", "the port 65536 is out of range: ports are 0 to 65535"),
        ("localhost", "'localhost' has no port: write HOST:PORT"),
        ("[::1]", "'[::1]' has no port: write HOST:PORT"),
        ("127.0.0.1:http", "the port 'http' is not a number from 0 to 65535"),
        (":50051", "':50051' has no host"),
        ("http://127.0.0.1:50063", "has a scheme: write HOST:PORT, without a scheme"),
        ("::1:50063", "an IPv6 address goes in brackets: write [::1]:PORT"),
    ],
)
def test_listen_without_a_port_or_beyond_65535_is_refused(
    listen: str, says: str, tmp_path: Path
) -> None:
    done = sdksign("serve", "--listen", listen, cwd=tmp_path, env={"XDG_STATE_HOME": "state"})
    assert done.returncode == 2
    assert (
        "argument --listen: " in done.stderr
        and says in done.stderr
        and "beyond loopback" not in done.stderr
    )
    assert not (tmp_path / "state").exists()  # refused before anything else


def test_the_configuration_s_listen_is_checked_alike(tmp_path: Path) -> None:
    (tmp_path / "sdksign.toml").write_text(
        '[server]\nlisten = "127.0.0.1:99999"\n'
        '[[apps]]\nname = "m"\nkind = "meeting"\nsdk_key = "k"\nsecret_env = "S"\n'
    )
    done = sdksign("serve", "--config", "sdksign.toml", cwd=tmp_path, env={"S": "s" * 32})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sdksign: configuration error: [server] listen: '127.0.0.1:99999': the port 99999 "
        "is out of range: ports are 0 to 65535"
    ]


# --- version and help -----------------------------------------------------------------------


def test_version_everywhere_and_help_with_examples_and_exit_statuses() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for args in ([], ["serve"], ["sign"], ["verify"]):
        done = sdksign(*args, "--version")
        assert (done.returncode, done.stdout) == (0, f"sdksign {project['version']}\n")
    shown = sdksign("--help").stdout
    assert f"sdksign {project['version']}" in shown
    for example in (
        "sdksign serve",
        "sdksign sign --meeting-number 94843468909 --role host --ttl 7200",
        "sdksign sign --session math-101 --role participant",
        'sdksign verify "$TOKEN"',
    ):
        assert example in shown
    for status in range(5):
        assert re.search(rf"^  {status}  \w", shown, re.M), status
    assert "exit status" in sdksign("sign", "--help").stdout


# --- exit statuses, and messages in flags -----------------------------------------------------


def test_exit_statuses(server: ServerProcess, tmp_path: Path) -> None:
    target = ["--target", server.target]
    token = sdksign("sign", *target, *MEETING).stdout.strip()
    assert sdksign("verify", *target, token).returncode == 0
    assert sdksign("verify", *target, token, "--expect-meeting", "123456789").returncode == 1
    assert sdksign("sign", *target, "--session", "math-101").returncode == 2
    assert sdksign("sign", *target, "--cert-file", "c.pem").returncode == 2
    assert sdksign("sign", *target, "--bearer-file", str(tmp_path / "none")).returncode == 2
    refused = sdksign("sign", *target, "--app", "nope")
    assert refused.returncode == 3
    unreachable = sdksign("sign", "--target", f"127.0.0.1:{free_port()}")
    assert unreachable.returncode == 4 and "UNAVAILABLE" in unreachable.stderr
    assert "no server listens at 127.0.0.1:" in unreachable.stderr


@pytest.mark.parametrize(
    ("args", "says", "proto"),
    [
        (["sign", "--meeting-number", "12-34", "--role", "host"], "--meeting-number: ", "meeting."),
        (["sign", "--app", "nope"], "--app: 'nope' is not an app this caller may use", "app: "),
        (["sign", "--session", "s", "--role", "host", "--app", "meeting"], "--app: ", "app: "),
        (["verify", "a.b.c", "--expect-meeting", "x"], "--expect-meeting: ", "expected_"),
    ],
)
def test_refusals_name_the_flags(
    server: ServerProcess, args: list[str], says: str, proto: str
) -> None:
    done = sdksign(*args, "--target", server.target)
    assert done.returncode == 3
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"sdksign {args[0]}: INVALID_ARGUMENT: invalid request: ")
    assert says in line and proto not in line.replace(says, "") and "ROLE_" not in line


def test_a_token_or_request_over_the_limit_is_told_plainly(server: ServerProcess) -> None:
    target = ["--target", server.target]
    for length in (MAX_TOKEN_LENGTH + 1, 1024 * 1024):
        done = sdksign("verify", *target, "-", stdin="e" * length)
        assert done.returncode == 3
        assert done.stderr.splitlines() == [
            f"sdksign verify: INVALID_ARGUMENT: invalid request: token: has {length} characters; "
            f"at most {MAX_TOKEN_LENGTH} are allowed (a Zoom SDK token is a few hundred "
            "characters, a few KB at most): pass the token alone"
        ]
    big = sdksign("sign", *target, "--session", "s" * 100_000, "--role", "host")
    assert big.returncode == 3 and "RESOURCE_EXHAUSTED" in big.stderr
    assert big.stderr.splitlines()[0].endswith(
        f"the request is larger than the {MAX_MESSAGE_BYTES} bytes the server takes (a Sign "
        "request is a few hundred bytes: a session name, for one, is at most 200 characters)"
    )


# --- TLS: the certificates of docs/security.md, and what a mismatch says ----------------------


def readme_block(containing: str) -> str:
    """The sh block of docs/security.md holding `containing`."""
    text = (ROOT / "docs" / "security.md").read_text()
    (body,) = [b for b in re.findall(r"^```sh\n(.*?)^```$", text, re.S | re.M) if containing in b]
    return str(body)


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """examples/production-mtls.toml with docs/security.md's certificates, made as it says."""
    home = tmp_path_factory.mktemp("home")
    made = bash(readme_block("openssl req -x509"), home)
    assert made.returncode == 0, made.stderr
    config = home / "sdksign-tls" / "mtls.toml"
    server = start_server_process(
        tmp_path_factory.mktemp("mtls"),
        {"ZOOM_MEETING_SDK_SECRET": "m" * 43},
        ["--config", str(config), "--workers", "1"],
    )
    try:
        yield server, home
    finally:
        server.process.terminate()
        server.process.wait(timeout=15)


def test_the_readme_certificates_serve_the_mtls_example(mtls: tuple[ServerProcess, Path]) -> None:
    server, home = mtls
    serve = readme_block("sdksign serve --config ~/sdksign-tls/mtls.toml")
    assert "--config ~/sdksign-tls/mtls.toml" in serve  # the file the fixture serves
    port = server.target.rsplit(":", 1)[1]
    sign = readme_block("sdksign sign --target localhost:50443")  # run in another terminal
    command = sign.replace("localhost:50443", f"localhost:{port}")
    done = bash(command, home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(".") == 2


def test_a_tls_mismatch_says_what_may_help(
    mtls: tuple[ServerProcess, Path], server: ServerProcess
) -> None:
    tls_server, home = mtls
    files = home / "sdksign-tls"
    ca = ["--ca-file", str(files / "ca.crt")]
    plaintext = sdksign("verify", "a.b.c", "--target", tls_server.target)
    assert plaintext.returncode == 4
    assert "may use TLS: pass --tls" in plaintext.stderr and "--ca-file" in plaintext.stderr
    no_certificate = sdksign("verify", "a.b.c", "--target", tls_server.target, *ca)
    assert no_certificate.returncode == 4
    assert "may want a client certificate: --cert-file, --key-file" in no_certificate.stderr
    other_ca = ["--ca-file", str(files / "scheduler.crt")]
    untrusted = sdksign("verify", "a.b.c", "--target", tls_server.target, *other_ca)
    assert untrusted.returncode == 4
    assert "is not signed by the CA of --ca-file" in untrusted.stderr
    to_plaintext = sdksign("verify", "a.b.c", "--target", server.target, *ca)
    assert to_plaintext.returncode == 4
    assert "may not use TLS: leave out --tls, --ca-file and --cert-file" in to_plaintext.stderr


# --- the newcomer review: hints, --target, gRPC's own lines, PEM files, Bearer, roles ---------


def test_localhost_gets_the_hint_of_the_address_that_answered(
    mtls: tuple[ServerProcess, Path],
) -> None:
    """localhost is ::1 and 127.0.0.1 to gRPC: ::1 refuses (the server listens on 127.0.0.1),
    and what 127.0.0.1 said is what helps, as with 127.0.0.1 itself."""
    tls_server, home = mtls
    files = home / "sdksign-tls"
    target = ["--target", f"localhost:{tls_server.target.rsplit(':', 1)[1]}"]
    no_certificate = sdksign("verify", "a.b.c", *target, "--ca-file", str(files / "ca.crt"))
    assert no_certificate.returncode == 4
    assert "may want a client certificate: --cert-file, --key-file" in no_certificate.stderr
    assert "no server listens" not in no_certificate.stderr
    untrusted = sdksign("verify", "a.b.c", *target, "--tls")
    assert untrusted.returncode == 4
    assert "is not signed by the CA of --ca-file" in untrusted.stderr
    assert "no server listens" not in untrusted.stderr


@pytest.mark.parametrize(
    ("target", "says"),
    [
        (
            "http://127.0.0.1:50061",
            "'http://127.0.0.1:50061' has a scheme: write HOST:PORT, without a scheme",
        ),
        ("127.0.0.1", "'127.0.0.1' has no port: write HOST:PORT"),
        ("localhost:", "'localhost:' has no port: write HOST:PORT"),
        ("::1:50051", "an IPv6 address goes in brackets: write [::1]:PORT"),
        ("127.0.0.1:0", "the port 0 is out of range: ports are 1 to 65535"),
        (":50051", "':50051' has no host"),
    ],
)
def test_a_target_that_is_not_host_port_is_a_usage_error(target: str, says: str) -> None:
    for given in (["--target", target], []):
        done = sdksign("verify", "a.b.c", *given, env={"SDKSIGN_TARGET": target})
        assert done.returncode == 2, done.stderr
        assert "argument --target: " in done.stderr and says in done.stderr


def test_an_unknown_host_and_a_silent_server_get_a_hint() -> None:
    unknown = sdksign("verify", "a.b.c", "--target", "no-such-host.invalid:50051")
    assert unknown.returncode == 4
    assert unknown.stderr.splitlines()[1:] == [
        "sdksign verify: the host 'no-such-host.invalid' of --target could not be resolved: "
        "is it spelled right, and does this machine's DNS know it?"
    ]
    with socket.socket() as silent:  # takes connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        quiet = sdksign("verify", "a.b.c", "--target", target, "--timeout", "1")
    assert quiet.returncode == 4
    assert quiet.stderr.splitlines() == [
        "sdksign verify: DEADLINE_EXCEEDED: Deadline Exceeded",
        f"sdksign verify: no answer from {target} within 1 s: the server may be overloaded or "
        "stuck, or something on the way drops the traffic; --timeout waits longer",
    ]


@pytest.mark.parametrize("value", ["0", "601", "soon", "-1"])
def test_timeout_is_bounded(value: str) -> None:
    done = sdksign("verify", "a.b.c", "--timeout", value)
    assert done.returncode == 2
    assert "argument --timeout: " in done.stderr and "from 1 to 600 (1 s to 10 min)" in done.stderr


def test_grpc_s_own_lines_stay_out_unless_asked_for(mtls: tuple[ServerProcess, Path]) -> None:
    tls_server, _ = mtls
    untrusted = sdksign("verify", "a.b.c", "--target", tls_server.target, "--tls")
    assert untrusted.returncode == 4
    assert len(untrusted.stderr.splitlines()) == 2, untrusted.stderr  # the error, the hint
    assert "Handshake failed" not in untrusted.stderr
    asked = sdksign(
        "verify", "a.b.c", "--target", tls_server.target, "--tls", env={"GRPC_VERBOSITY": "info"}
    )
    assert "Handshake failed" in asked.stderr  # the user's own GRPC_VERBOSITY holds


@pytest.mark.parametrize(
    ("flag", "file", "says"),
    [
        ("--ca-file", "ca.key", "--ca-file: {path} holds a PRIVATE KEY, not a PEM certificate"),
        (
            "--cert-file",
            "scheduler.key",
            "--cert-file: {path} holds a PRIVATE KEY, not a PEM certificate",
        ),
        (
            "--key-file",
            "scheduler.crt",
            "--key-file: {path} holds a CERTIFICATE, not a PEM private key",
        ),
        ("--ca-file", "mtls.toml", "--ca-file: {path} holds no PEM (-----BEGIN CERTIFICATE-----)"),
    ],
)
def test_tls_files_must_hold_pem_of_their_kind(
    mtls: tuple[ServerProcess, Path], flag: str, file: str, says: str
) -> None:
    tls_server, home = mtls
    files = home / "sdksign-tls"
    given = {
        "--ca-file": files / "ca.crt",
        "--cert-file": files / "scheduler.crt",
        "--key-file": files / "scheduler.key",
        flag: files / file,
    }
    args = [str(part) for pair in given.items() for part in pair]
    done = sdksign("verify", "a.b.c", "--target", tls_server.target, *args)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"sdksign verify: {says.format(path=files / file)}"]


BEARER = "cli-test-caller-token-0123456789"
SECRET = "c" * 32


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose one caller is named by the bearer token BEARER (anonymous: Verify only)."""
    folder = tmp_path_factory.mktemp("guarded")
    digest = hashlib.sha256(BEARER.encode()).hexdigest()
    (folder / "sdksign.toml").write_text(
        f'[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "{MEETING_KEY}"\n'
        'secret_env = "MEETING_SECRET"\n'
        f'[[callers]]\nname = "backend"\ntoken_sha256 = "{digest}"\n'
        "[anonymous]\nroles = []\nverify = true\n"
    )
    server = start_server_process(
        folder, {"MEETING_SECRET": SECRET}, ["--config", "sdksign.toml", "--workers", "1"]
    )
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=15)


def test_a_bearer_token_given_with_its_scheme_is_sent_without_it(
    guarded: ServerProcess, tmp_path: Path
) -> None:
    target = ["--target", guarded.target]
    plain = sdksign("sign", *target, *MEETING, env={"SDKSIGN_BEARER_TOKEN": BEARER})
    assert (plain.returncode, plain.stderr) == (0, "")
    (tmp_path / "bearer").write_text(f"bearer  {BEARER}\n")
    for env, given in (
        ({"SDKSIGN_BEARER_TOKEN": f"Bearer {BEARER}"}, []),
        ({}, ["--bearer-file", str(tmp_path / "bearer")]),
    ):
        done = sdksign("sign", *target, *MEETING, *given, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count(".") == 2 and BEARER not in done.stderr
        assert done.stderr == (
            "sdksign sign: note: the bearer token starts with 'Bearer ', which sdksign adds "
            "itself: sending what follows it\n"
        )


def test_a_secret_read_the_wrong_way_is_summed_up_as_such(guarded: ServerProcess) -> None:
    now = int(time.time())
    token = encode(meeting_claims(MEETING_KEY, now), SECRET.encode("utf-16-le"))
    done = sdksign("verify", "--target", guarded.target, token)
    assert done.returncode == 1
    (problem,) = [line for line in done.stdout.splitlines() if line.startswith("  - ")]
    assert problem.startswith("  - SECRET_ENCODING: ")
    (said,) = [line for line in done.stdout.splitlines() if line.startswith("signature: ")]
    assert said.startswith("signature: not made with the secrets tried as configured (")
    assert said.endswith("): one of them, read another way, made it; see SECRET_ENCODING")


def test_a_missing_role_is_a_usage_error_for_both_kinds(server: ServerProcess) -> None:
    target = ["--target", server.target]
    for given, kind in (
        (["--meeting-number", "94843468909"], "--meeting-number (a web Meeting SDK token)"),
        (["--session", "math-101"], "--session (a Video SDK token)"),
    ):
        done = sdksign("sign", *target, *given)
        assert (done.returncode, done.stderr) == (
            2,
            f"sdksign sign: --role is required with {kind}: participant or host\n",
        )


# --- the optional claims' flags ----------------------------------------------------------------


def payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_the_optional_claims_flags_write_their_claims(server: ServerProcess) -> None:
    done = sdksign(
        *("sign", "--target", server.target, "--session", "s", "--role", "participant"),
        *("--audio-webrtc-mode", "1", "--user-identity", "ann", "--geo-regions", "US,DE"),
        *("--cloud-recording-option", "0", "--telemetry-tracking-id", "t-1"),
    )
    assert done.returncode == 0, done.stderr
    claims = payload(done.stdout.strip())
    assert {k: claims.get(k) for k in ("audio_webrtc_mode", "user_identity", "geo_regions")} == {
        "audio_webrtc_mode": 1,
        "user_identity": "ann",
        "geo_regions": "US,DE",
    }
    assert (claims["cloud_recording_option"], claims["telemetry_tracking_id"]) == (0, "t-1")
    assert "session_key" not in claims and "video_webrtc_mode" not in claims
    meeting = sdksign("sign", "--target", server.target, *MEETING, "--video-webrtc-mode", "1")
    assert meeting.returncode == 0, meeting.stderr
    assert payload(meeting.stdout.strip())["video_webrtc_mode"] == 1


def test_a_claim_of_the_other_sdk_is_a_usage_error(server: ServerProcess) -> None:
    done = sdksign("sign", "--target", server.target, *MEETING, "--user-identity", "ann")
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "--user-identity is for Video SDK tokens (--session), not Meeting SDK ones"
    )
