"""The chat page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a real
server with the bundled model: stream an answer, switch conversations, reload, keep the history; and
against a server started with --api-key, which the page asks for and sends."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import start_server

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def test_page_is_self_contained(server_url: str) -> None:
    page = httpx.get(server_url + "/").text
    assert "<title>GPT4All-style chat</title>" in page
    assert "http" not in page.replace(server_url, "")  # every asset comes from this server
    for asset in ("/static/chat.js", "/static/chat.css"):
        reply = httpx.get(server_url + asset)
        assert reply.status_code == 200 and "https://" not in reply.text


def test_chat_in_the_browser_streams_switches_and_survives_reload(server_url: str, tmp_path: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server_url) else None)
        page.goto(server_url + "/")
        page.wait_for_function("document.querySelector('#model').options.length > 0")
        assert page.input_value("#model") == "SmolLM2-135M-Instruct"
        assert page.input_value("#param-top_p") == "0.4" and page.input_value("#param-repeat_penalty") == "1.18"

        page.fill("#param-temperature", "0")
        page.dispatch_event("#param-temperature", "change")
        page.fill("#input", "What is the capital of France?")
        page.click("#send")
        answer = page.locator(".message.assistant .text").last
        seen = set()
        for _ in range(200):  # watch the answer grow while it streams
            seen.add(answer.text_content() or "")
            if page.is_disabled("#stop") and len(seen) > 2:
                break
            page.wait_for_timeout(25)
        final = answer.text_content() or ""
        assert final.strip() and len(seen) >= 3  # empty, partial..., final: it arrived in pieces
        page.screenshot(path=str(tmp_path / "chat.png"))
        assert (tmp_path / "chat.png").stat().st_size > 10_000

        page.click("#new-chat")
        assert page.locator(".message").count() == 0
        page.locator("#conversations li span", has_text="What is the capital").click()
        assert page.locator(".message.assistant .text").last.text_content() == final

        page.reload()
        page.wait_for_selector(".message.assistant")
        assert page.locator("#conversations li").count() == 2
        assert page.locator(".message.assistant .text").last.text_content() == final
        assert page.locator(".message.user .text").first.text_content() == "What is the capital of France?"
        browser.close()
    assert outside == []


def test_the_page_asks_for_and_sends_the_api_key(tmp_path: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    key = "sk-page-test-key"
    proc, url = start_server(tmp_path, "--api-key", key)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_function("document.querySelector('#status').textContent.includes('API key')")
            assert page.locator("#model option").count() == 0  # the models need the key too
            page.fill("#api-key", "sk-wrong")
            page.dispatch_event("#api-key", "change")
            page.wait_for_function("document.querySelector('#status').textContent.includes('is wrong')")
            page.fill("#api-key", key)
            page.dispatch_event("#api-key", "change")
            page.wait_for_function("document.querySelector('#model').options.length > 0")
            assert page.text_content("#status") == ""
            page.fill("#param-max_tokens", "8")
            page.dispatch_event("#param-max_tokens", "change")
            page.fill("#input", "Say hello.")
            page.click("#send")
            page.wait_for_function("document.querySelector('#stop').disabled && "
                                   "document.querySelectorAll('.message.assistant').length === 1", timeout=60_000)
            assert (page.locator(".message.assistant .text").last.text_content() or "").strip()
            stored = page.evaluate("JSON.stringify(localStorage)")
            assert key not in stored and "Say hello." in json.loads(stored)["gpt4all-pipeline-chat"]
            page.reload()  # the key stays for the tab (sessionStorage), not with the conversations
            page.wait_for_function("document.querySelector('#model').options.length > 0")
            assert page.input_value("#api-key") == key
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert key not in (tmp_path / "server.log").read_text()
