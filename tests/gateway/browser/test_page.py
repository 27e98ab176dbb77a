"""The gateway's web page in Debian's Chromium, driven by Playwright, through the real Envoy
and a real server (one of each for the module, a fresh page for each test)."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from harness.zoomapi import ZoomApi, running_zoom_api
from sdksign.client._limits import MAX_MESSAGE_BYTES, MAX_TOKEN_LENGTH
from sdksign.server import encode
from sdksign.server.zoom.rules import GEO_REGIONS, MEETING_NUMBER_RULE
from tests.conftest import MEETING_KEY, ROOT, VIDEO_KEY
from tests.gateway.conftest import Gateway, serve_gateway
from tests.helpers import video_claims

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request

pytestmark = pytest.mark.usefixtures("gateway_files")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VERIFY_PATH = "/sdksign.v1.SignatureService/Verify"
SIGN_PATH = "/sdksign.v1.SignatureService/Sign"
SCREENSHOT_FOR_LEAD = Path(tempfile.gettempdir(), "page-screenshot.png")


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomApi]:
    with running_zoom_api() as api:
        yield api


@pytest.fixture(scope="module")
def page_gateway(
    tmp_path_factory: pytest.TempPathFactory, meeting_secret: str, video_secret: str, zoom: ZoomApi
) -> Iterator[Gateway]:
    """The page's server: the two apps of Zoom's sample variables, anonymous callers allowed
    every role, and host starts through the stand-in of Zoom's API."""
    folder = tmp_path_factory.mktemp("page")
    (folder / "sdksign.toml").write_text(
        f'[[apps]]\nname = "meeting"\nkind = "meeting"\nsdk_key = "{MEETING_KEY}"\n'
        'secret_env = "M"\n'
        f'[apps.s2s]\naccount_id = "{zoom.account_id}"\nclient_id = "{zoom.client_id}"\n'
        'client_secret_env = "S2S"\n'
        f'[[apps]]\nname = "video"\nkind = "video"\nsdk_key = "{VIDEO_KEY}"\nsecret_env = "V"\n'
        '[anonymous]\nroles = ["participant", "host"]\nstart_as = ["*@example.com"]\n'
        f'[zoom]\noauth_url = "{zoom.url}"\napi_url = "{zoom.url}"\n'
    )
    env = {"M": meeting_secret, "V": video_secret, "S2S": zoom.client_secret}
    yield from serve_gateway(folder, env, ["--config", str(folder / "sdksign.toml")])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Calls:
    """Every request the page made, and every console error it logged."""

    def __init__(self, page: Page) -> None:
        self.paths: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)

    def _request(self, request: Request) -> None:
        self.paths.append(urlsplit(request.url).path)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def to(self, path: str) -> int:
        return sum(1 for p in self.paths if p == path)


@pytest.fixture
def page(browser: Browser, page_gateway: Gateway) -> Iterator[tuple[Page, Calls]]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    calls = Calls(tab)
    tab.goto(f"http://127.0.0.1:{page_gateway.port}/")
    try:
        yield tab, calls
    finally:
        context.close()


def invalid_inputs(page: Page, form: str = "#sign-form") -> list[str]:
    """The ids of the inputs of `form` marked aria-invalid, in the page's order."""
    ids = page.locator(f"{form} [aria-invalid=true]").evaluate_all("found => found.map(e => e.id)")
    assert isinstance(ids, list)
    return [str(i) for i in ids]


def json_of(page: Page, selector: str) -> dict[str, Any]:
    value = json.loads(page.text_content(selector) or "null")
    assert isinstance(value, dict), value
    return value


def sign_meeting(page: Page, number: str = "987654321", ttl: str = "3600") -> dict[str, Any]:
    from playwright.sync_api import expect

    page.check("#sdk-meeting")
    page.fill("#meeting-number", number)
    page.select_option("#role", "host")
    page.fill("#ttl", ttl)
    page.click("#sign")
    expect(page.locator("#token")).to_contain_text("eyJ")
    return json_of(page, "#claims")


def test_a_host_start_shows_the_zak_only_when_asked_for(
    page: tuple[Page, Calls], zoom: ZoomApi
) -> None:
    from playwright.sync_api import expect

    tab, _ = page
    sign_meeting(tab)
    expect(tab.locator("#zak-block")).to_be_hidden()
    tab.fill("#start-as", "alice@example.com")
    tab.click("#sign")
    expect(tab.locator("#zak-block")).to_be_visible()
    assert tab.text_content("#zak") in zoom.issued["u-alice"]
    tab.fill("#start-as", "mallory@example.net")
    tab.click("#sign")
    expect(tab.locator("#sign-error")).to_contain_text("may not start meetings as")


def test_a_meeting_token_with_its_lifetime_header_and_claims(page: tuple[Page, Calls]) -> None:
    from playwright.sync_api import expect

    tab, calls = page
    expect(tab.locator("h1")).to_have_text("sdksign")
    tab.select_option("#meeting-video-webrtc", "1")
    claims = sign_meeting(tab, ttl="3600")
    assert (claims["mn"], claims["role"], claims["video_webrtc_mode"]) == ("987654321", 1, 1)
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["tokenExp"] == claims["exp"]
    assert json_of(tab, "#header") == {"alg": "HS256", "typ": "JWT"}
    assert tab.text_content("#sdk-key") == claims["sdkKey"] == MEETING_KEY
    expect(tab.locator("#signed-app")).to_have_text("meeting")
    expect(tab.locator("#expires-at")).to_contain_text("UTC (in ")
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab.click("#copy-token")
    expect(tab.locator("#copy-token")).to_have_text("Copied")
    assert tab.evaluate("navigator.clipboard.readText()") == tab.text_content("#token")

    tab.click("#verify")  # Sign put the new token in the box
    expect(tab.locator("#verdict")).to_have_text("Valid: Zoom should accept it (app meeting).")
    expect(tab.locator("#verified-kind")).to_contain_text("Meeting SDK, web")
    assert json_of(tab, "#verified-claims") == claims
    assert list(json_of(tab, "#verified-claims")) == list(claims)  # in the token's order
    assert list(json_of(tab, "#verified-header")) == ["alg", "typ"]
    expect(tab.locator("#verified-signature")).to_contain_text(
        "matched: made with a secret of app meeting (secret fingerprint "
    )
    expect(tab.locator("#problems")).to_be_hidden()

    token = tab.input_value("#pasted")
    tab.fill("#pasted", token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    tab.click("#verify")
    expect(tab.locator("#verdict")).to_have_text("Invalid: 1 problem.")
    expect(tab.locator("#problems tbody td").first).to_have_text("BAD_SIGNATURE")
    expect(tab.locator("#verified-signature")).to_contain_text("no secret tried made it (tried: ")
    assert calls.to("/favicon.ico") == 0  # the page's inline icon
    assert calls.console_errors == []


def test_a_video_token_with_its_optional_claims(page: tuple[Page, Calls]) -> None:
    from playwright.sync_api import expect

    tab, _ = page
    tab.check("#sdk-video")
    expect(tab.locator("#meeting-fields")).to_be_hidden()
    regions = tab.locator("#geo-regions input").evaluate_all("boxes => boxes.map(b => b.value)")
    assert regions == sorted(GEO_REGIONS)
    tab.fill("#session-name", "team standup")
    tab.fill("#user-identity", "user-42")
    tab.fill("#session-key", "pass word")
    tab.fill("#ttl", "1800")
    tab.click("summary")
    tab.check("#geo-US")
    tab.check("#geo-DE")
    tab.select_option("#video-audio-webrtc", "0")
    tab.select_option("#cloud-recording-option", "1")
    tab.click("#sign")
    expect(tab.locator("#token")).to_contain_text("eyJ")
    claims = json_of(tab, "#claims")
    assert claims["app_key"] == VIDEO_KEY
    assert (claims["tpc"], claims["role_type"], claims["version"]) == ("team standup", 0, 1)
    assert (claims["user_identity"], claims["session_key"]) == ("user-42", "pass word")
    assert (claims["geo_regions"], claims["audio_webrtc_mode"]) == ("DE,US", 0)
    assert claims["cloud_recording_option"] == 1
    assert "video_webrtc_mode" not in claims and "cloud_recording_election" not in claims
    assert claims["exp"] - claims["iat"] == 1800
    expect(tab.locator("#signed-app")).to_have_text("video")

    tab.click("#verify")
    expect(tab.locator("#verdict")).to_have_text("Valid: Zoom should accept it (app video).")
    expect(tab.locator("#verified-kind")).to_have_text("Video SDK")
    assert json_of(tab, "#verified-claims")["tpc"] == "team standup"


def test_a_deprecated_claim_is_a_warning_beside_a_valid_verdict(
    page: tuple[Page, Calls], video_secret: str
) -> None:
    from playwright.sync_api import expect

    tab, _ = page
    now = int(time.time())
    token = encode(video_claims(VIDEO_KEY, now, audio_compatible_mode=1), video_secret.encode())
    tab.fill("#pasted", token)
    tab.click("#verify")
    expect(tab.locator("#verdict")).to_have_text(
        "Valid: Zoom should accept it (app video). 1 warning below."
    )
    row = tab.locator("#problems tbody tr")
    expect(row).to_have_class("warning")
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("DEPRECATED_CLAIM (warning)")
    expect(cells.nth(1)).to_have_text("audio_compatible_mode")
    expect(cells.nth(2)).to_contain_text("in favour of audio_webrtc_mode")


def test_a_failed_sign_after_a_good_one_shows_the_error_alone(page: tuple[Page, Calls]) -> None:
    from playwright.sync_api import expect

    tab, _ = page
    sign_meeting(tab)
    tab.fill("#meeting-number", "98-76")
    tab.click("#sign")
    error = tab.locator("#sign-error")
    expect(error.locator("li")).to_have_text(["Meeting number: must be " + MEETING_NUMBER_RULE])
    expect(error).to_contain_text("The server refused the request:")
    expect(tab.locator("#signed")).to_be_hidden()
    for output in ("#token", "#claims", "#header", "#sdk-key"):
        assert tab.text_content(output) == "", output
    assert invalid_inputs(tab) == ["meeting-number"]
    expect(tab.locator("#meeting-number")).to_have_attribute("aria-errormessage", "sign-error")

    tab.fill("#meeting-number", "987654321")
    tab.fill("#ttl", "60")
    tab.click("#sign")
    expect(error.locator("li")).to_have_text(
        [
            re.compile(
                r"^Lifetime, seconds: 60s is outside the allowed range: whole seconds from 1800"
            )
        ]
    )
    expect(tab.locator("#signed")).to_be_hidden()
    assert invalid_inputs(tab) == ["ttl"]  # the meeting number is no longer marked

    tab.fill("#ttl", "7200")  # a good one again: the error goes
    tab.click("#sign")
    expect(tab.locator("#token")).to_contain_text("eyJ")
    expect(tab.locator("#sign-error")).to_be_hidden()
    assert invalid_inputs(tab) == []


def test_refused_fields_are_named_by_the_page_s_labels(page: tuple[Page, Calls]) -> None:
    """Every field the server refuses is shown with its label, never its proto path, and its
    input is marked invalid; a description names other fields by their labels too."""
    from playwright.sync_api import expect

    tab, _ = page
    tab.fill("#meeting-number", "")  # the page always sends a role: a web token needs both
    tab.click("#sign")
    expect(tab.locator("#sign-error li")).to_have_text(
        [
            "Meeting number: is required with \u201cRole\u201d (a web token); leave both unset "
            "for a native SDK token"
        ]
    )
    assert invalid_inputs(tab) == ["meeting-number"]

    tab.check("#sdk-video")
    tab.fill("#session-name", "")
    tab.fill("#user-identity", "u" * 36)
    tab.fill("#session-key", "k" * 37)
    tab.click("#sign")
    expect(tab.locator("#sign-error li")).to_have_text(
        [
            "Session name: is required (at most 200 characters)",
            "User identity: has 36 characters; at most 35 are allowed",
            "Session password: has 37 characters; at most 36 are allowed",
        ]
    )
    assert invalid_inputs(tab) == ["session-name", "user-identity", "session-key"]
    assert "video." not in (tab.text_content("#sign-error") or "")

    tab.fill("#pasted", "")
    tab.fill("#expected-meeting", "12-34")
    tab.click("#verify")
    expect(tab.locator("#verify-error li")).to_have_text(
        [
            re.compile(r"^Token: is required"),
            "Expected meeting number: must be " + MEETING_NUMBER_RULE,
        ]
    )
    assert invalid_inputs(tab, "#verify-form") == ["pasted", "expected-meeting"]
    assert "expected_meeting_number" not in (tab.text_content("#verify-error") or "")


def test_a_failed_verify_after_a_good_one_leaves_no_old_claims(page: tuple[Page, Calls]) -> None:
    from playwright.sync_api import expect

    tab, _ = page
    sign_meeting(tab)
    tab.click("#verify")
    expect(tab.locator("#verdict")).to_contain_text("Valid")

    tab.fill("#pasted", "")  # refused: INVALID_ARGUMENT
    tab.click("#verify")
    expect(tab.locator("#verify-error")).to_contain_text("Token: is required")
    expect(tab.locator("#verified")).to_be_hidden()
    for output in ("#verdict", "#verified-claims", "#verified-header", "#problems tbody"):
        assert tab.text_content(output) == "", output

    tab.fill("#pasted", "not-a-token")  # answered: invalid, nothing decodable
    tab.click("#verify")
    expect(tab.locator("#verdict")).to_have_text("Invalid: 1 problem.")
    expect(tab.locator("#verify-error")).to_be_hidden()
    expect(tab.locator("#verified-claims")).to_have_text("could not be decoded")
    expect(tab.locator("#problems tbody tr td").first).to_have_text("NOT_A_JWT")


def test_verify_with_an_expected_meeting_names_the_claim(page: tuple[Page, Calls]) -> None:
    from playwright.sync_api import expect

    tab, _ = page
    sign_meeting(tab, number="987654321")
    tab.fill("#expected-meeting", "111222333")
    tab.click("#verify")
    expect(tab.locator("#verdict")).to_have_text("Invalid: 1 problem.")
    cells = tab.locator("#problems tbody tr").first.locator("td")
    expect(cells).to_have_text(
        ["MEETING_MISMATCH", "mn", "the token is for meeting 987654321, not 111222333"]
    )


def test_a_token_too_long_for_the_server_is_not_sent(page: tuple[Page, Calls]) -> None:
    from playwright.sync_api import expect

    tab, calls = page
    for length in (MAX_TOKEN_LENGTH + 1, 1024 * 1024 + 4):
        tab.eval_on_selector("#pasted", "(box, n) => { box.value = 'e'.repeat(n); }", length)
        tab.click("#verify")
        expect(tab.locator("#verify-error")).to_have_text(
            f"This token has {length} characters; the server reads at most {MAX_TOKEN_LENGTH}, "
            "and a Zoom SDK token is a few hundred (at most a few KB). Nothing was sent: paste "
            "the token alone, not a whole response or log."
        )
    assert calls.to(VERIFY_PATH) == 0

    tab.eval_on_selector("#pasted", "(box, n) => { box.value = 'e'.repeat(n); }", MAX_TOKEN_LENGTH)
    tab.click("#verify")  # the longest the server reads goes to it
    expect(tab.locator("#verdict")).to_contain_text("Invalid")
    assert calls.to(VERIFY_PATH) == 1

    tab.check("#sdk-video")
    tab.eval_on_selector(
        "#session-name", "(box, n) => { box.value = 's'.repeat(n); }", MAX_MESSAGE_BYTES
    )
    tab.click("#sign")
    expect(tab.locator("#sign-error")).to_contain_text(
        f"the server takes at most {MAX_MESSAGE_BYTES} (64 KiB). Nothing was sent"
    )
    assert calls.to(SIGN_PATH) == 0


def test_screenshot_of_the_page(page: tuple[Page, Calls], tmp_path: Path) -> None:
    """For people to look at: both halves of the page with results, problems included."""
    from playwright.sync_api import expect

    tab, calls = page
    sign_meeting(tab)
    tab.fill("#expected-meeting", "111222333")
    tab.click("#verify")
    expect(tab.locator("#problems tbody tr")).to_have_count(1)
    shot = tmp_path / "page.png"
    tab.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, SCREENSHOT_FOR_LEAD)
    assert calls.console_errors == []


def host_page(page_headers: dict[str, str]) -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    """The built page with the gateway's own headers on an origin of its own, recording every
    path the browser asks for; /control is a page with no icon."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            files = {"/": "index.html", "/app.js": "app.js"}
            if self.path == "/control":
                body, headers = b"<!doctype html><title>control</title><p>no icon", {}
            elif self.path in files:
                body = (ROOT / "web" / "dist" / files[self.path]).read_bytes()
                headers = page_headers if self.path == "/" else {}
            else:
                self.send_error(404)
                return
            self.send_response(200)
            kind = "text/javascript" if self.path == "/app.js" else "text/html"
            for name, value in {"content-type": kind, **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    return host, paths


def test_the_page_asks_for_no_favicon(browser: Browser, page_gateway: Gateway) -> None:
    _, headers, _ = page_gateway.request("GET", "/")
    policy = "content-security-policy"
    host, paths = host_page({policy: headers[policy]})
    context = browser.new_context()
    try:
        tab = context.new_page()
        calls = Calls(tab)
        origin = f"http://127.0.0.1:{host.server_address[1]}"
        tab.goto(f"{origin}/", wait_until="networkidle")
        assert tab.locator("#geo-regions input").count() == len(GEO_REGIONS)  # app.js ran
        asked_by_page = list(paths)
        # The control: Chromium asks this origin for /favicon.ico for a page with no icon.
        tab.goto(f"{origin}/control")
        deadline = time.monotonic() + 15
        while "/favicon.ico" not in paths and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "/favicon.ico" in paths[len(asked_by_page) :]
        assert asked_by_page == ["/", "/app.js"]
        assert calls.console_errors == []  # the CSP lets the inline icon load
    finally:
        context.close()
        host.shutdown()
        host.server_close()


def test_with_the_server_down_the_page_says_it_cannot_reach_it(
    browser: Browser, gateway: Gateway
) -> None:
    """The server behind the gateway stopped: the page says the signing service cannot be
    reached (not that it refused); then the gateway itself stopped: the same, naming it."""
    from playwright.sync_api import expect

    assert gateway.envoy is not None
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(f"http://127.0.0.1:{gateway.port}/")
        sign_meeting(tab)  # both answer
        gateway.server.process.terminate()
        gateway.server.process.wait(timeout=15)
        for button, error in (("#sign", "#sign-error"), ("#verify", "#verify-error")):
            tab.click(button)
            expect(tab.locator(error).locator("p").first).to_have_text(
                "Could not reach the signing service: it is not answering. Nothing was done: "
                "try again in a moment."
            )
            assert "refused" not in (tab.text_content(error) or "")
        expect(tab.locator("#signed")).to_be_hidden()

        gateway.envoy.terminate()
        gateway.envoy.wait(timeout=15)
        tab.click("#sign")
        expect(tab.locator("#sign-error p").first).to_have_text(
            f"Could not reach the signing service: http://127.0.0.1:{gateway.port} did not "
            "answer. Nothing was done: try again in a moment."
        )
        assert invalid_inputs(tab) == []
    finally:
        context.close()
