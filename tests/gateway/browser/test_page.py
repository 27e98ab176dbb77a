"""The gateway's web page in Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import json

import pytest

from tests.gateway.conftest import Gateway

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


def test_the_page_signs_and_explains_tokens_in_chromium(gateway: Gateway) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{gateway.port}/")
            expect(page.locator("h1")).to_have_text("sdksign")

            page.fill("#meeting-number", "987654321")
            page.select_option("#role", "host")
            page.click("#sign")
            expect(page.locator("#token")).to_contain_text("eyJ")
            token = page.text_content("#token") or ""
            claims = json.loads(page.text_content("#claims") or "{}")
            assert (claims["mn"], claims["role"]) == ("987654321", 1)
            assert page.text_content("#sdk-key") == claims["sdkKey"]

            page.click("#verify")  # the page put the new token in the box
            expect(page.locator("#verdict")).to_have_text("valid (app meeting)")
            assert json.loads(page.text_content("#verified-claims") or "{}")["mn"] == "987654321"

            page.fill(
                "#pasted", token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
            )
            page.click("#verify")
            expect(page.locator("#verdict")).to_have_text("invalid")
            expect(page.locator("#problems li").first).to_contain_text("BAD_SIGNATURE")

            page.fill("#meeting-number", "98-76")
            page.click("#sign")
            expect(page.locator("#sign-error")).to_contain_text("InvalidArgument")
            expect(page.locator("#sign-error")).to_contain_text("meeting.meeting_number")
        finally:
            browser.close()
