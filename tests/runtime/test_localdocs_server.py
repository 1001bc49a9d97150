"""LocalDocs through the server (`serve --docs`): sources in the body and the final chunk, the context budget,
refusal of collections it does not publish (the same answer whether or not they exist), the API key, and the
chat page in headless Chromium showing an answer's sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.localdocs import Collection, TextEmbedder, sync
from tests.conftest import start_server
from tests.runtime.test_chat_page import ARGS

pytestmark = pytest.mark.slow

N_CTX = 512
# A long file: every chunk is ~200 model tokens, so 4 retrieved excerpts cannot all fit 512 - 200.
ARCHIVE = "\n\n".join(f"Ledger {n} of the Quillon archive lists {n * 7} barrels of amber cider shipped to the "
                      f"port of Estravel, sealed by clerk number {n}, checked twice and stored in vault {n % 5}. "
                      "The clerks wrote every entry by hand in green ink, as the archive's rules require."
                      for n in range(60))
FACTS = {
    "telescope.md": "# The Varnholt telescope\n\nThe Varnholt telescope on Mount Sello has a mirror 4.2 metres "
                    "across and was first pointed at the sky in 1911 by the astronomer Ilse Marrow.\n",
    "garden.txt": "Tomatoes need full sun and regular watering; pinch out side shoots as the plants grow.\n",
    "archive.md": ARCHIVE,
}


def make_collection(home: Path, name: str, files: dict[str, str]) -> None:
    folder = home / "documents" / name
    folder.mkdir(parents=True)
    for file, text in files.items():
        (folder / file).write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNTIME_HOME", str(home))
        with Collection.create(name) as collection:
            collection.add_folders([folder])
            sync(collection, TextEmbedder(n_threads=2), show_progress=False)


@pytest.fixture(scope="module")
def docs_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("localdocs-home")
    make_collection(home, "notes", FACTS)
    make_collection(home, "private", {"diary.md": "My bank PIN is 4921 and the safe is behind the Varnholt painting.\n"})
    return home


@pytest.fixture(scope="module")
def docs_server(docs_home: Path) -> Iterator[str]:
    proc, url = start_server(docs_home, "--docs", "notes", "--n-ctx", str(N_CTX))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def ask(url: str, question: str, **extra: object) -> httpx.Response:
    body = {"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": question}],
            "max_tokens": 24, "temperature": 0, **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)


def test_sources_name_the_file_that_answers(docs_server: str) -> None:
    assert httpx.get(f"{docs_server}/v1/localdocs").json()["data"] == [{"id": "notes", "object": "localdocs.collection"}]
    body = ask(docs_server, "Who first used the Varnholt telescope?", localdocs=["notes"]).json()
    first = body["sources"][0]
    assert first["collection"] == "notes" and first["path"] == "telescope.md"  # relative: no local folders shown
    assert "Ilse Marrow" in first["text"] and {"score", "start", "end", "page"} <= set(first)
    assert "sources" not in ask(docs_server, "Hi").json()  # a plain chat is unchanged

    with httpx.stream("POST", f"{docs_server}/v1/chat/completions", timeout=120, json={
            "model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "How should I grow tomatoes?"}],
            "max_tokens": 8, "stream": True, "localdocs": ["notes"]}) as reply:
        chunks = [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith("data:") and "[DONE]" not in line]
    assert all("sources" not in c for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] and chunks[-1]["sources"][0]["path"] == "garden.txt"


def test_many_long_excerpts_still_leave_room_for_the_answer(docs_server: str) -> None:
    reply = ask(docs_server, "Which clerk sealed the Quillon ledgers of amber cider?", localdocs=["notes"],
                max_tokens=200, stop=["\n"])
    body = reply.json()
    assert reply.status_code == 200, body
    assert 1 <= len(body["sources"]) < 4 and all(s["path"] == "archive.md" for s in body["sources"])
    assert body["usage"]["prompt_tokens"] + 200 <= N_CTX


def test_unpublished_collections_are_refused_revealing_nothing(docs_server: str) -> None:
    existing = ask(docs_server, "What is my PIN?", localdocs=["private"])
    absent = ask(docs_server, "What is my PIN?", localdocs=["nosuchthing"])
    mixed = ask(docs_server, "What is my PIN?", localdocs=["notes", "private"])
    assert existing.status_code == absent.status_code == mixed.status_code == 404
    assert existing.json() == absent.json() == mixed.json()  # nothing tells an existing collection apart
    assert existing.json()["error"]["param"] == "localdocs" and "4921" not in existing.text
    assert ask(docs_server, "Hi", localdocs="notes").status_code == 400  # a list of names, strictly


def test_the_api_key_guards_localdocs(docs_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "localdocs").symlink_to(docs_home / "localdocs")
    proc, url = start_server(home, "--docs", "notes", "--api-key", "sk-docs")
    try:
        assert httpx.get(f"{url}/v1/localdocs").status_code == 401
        assert ask(url, "Varnholt?", localdocs=["notes"]).status_code == 401
        listed = httpx.get(f"{url}/v1/localdocs", headers={"Authorization": "Bearer sk-docs"})
        assert [c["id"] for c in listed.json()["data"]] == ["notes"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_chat_page_lists_collections_and_shows_sources(docs_server: str, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(docs_server + "/")
        page.wait_for_selector("#doc-notes")
        assert page.locator("#collections input").count() == 1  # only what the server publishes
        page.check("#doc-notes")
        page.fill("#param-max_tokens", "16")
        page.dispatch_event("#param-max_tokens", "change")
        page.fill("#input", "Who first used the Varnholt telescope?")
        page.click("#send")
        page.wait_for_selector(".message.assistant .sources button", timeout=60_000)
        first = page.locator(".message.assistant .sources button").first
        assert first.text_content() == "[1] notes/telescope.md"
        assert page.locator(".snippet").is_hidden()
        first.click()
        assert page.locator(".snippet").is_visible() and "Ilse Marrow" in page.text_content(".snippet")
        page.reload()  # the sources are kept with the conversation, the choice of collections too
        page.wait_for_selector(".message.assistant .sources button")
        assert page.is_checked("#doc-notes")
        browser.close()
