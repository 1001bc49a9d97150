"""LocalDocs on real files, real SQLite and the real embedder: incremental updates, deletions, bad files,
a missing folder, an interrupted add, the CLI, the context budget and GPT4All.chat_session(localdocs=)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.chat import chat_loop
from runtime.localdocs import Collection, Hit, Library, TextEmbedder, fit_excerpts, search, sync, with_excerpts
from runtime.model import GPT4All

ROOT = Path(__file__).resolve().parents[2]

BRIDGE = ("# The Zorbix bridge\n\nThe Zorbix bridge over the river Velm was built in 1873 by the engineer "
          "Amelia Quandt. Its seven arches are made of grey granite from the Tarnow quarry.\n")
PASTA = "Cooking pasta: boil salted water, add the pasta and cook it for about ten minutes, stirring now and then.\n"
LIGHTHOUSE = ("<html><body><nav>Home | About</nav><main><h1>Plimsoll lighthouse</h1><p>The keeper of the "
              "Plimsoll lighthouse is Oskar Thrane, who has lit its lamp every night since 1998.</p></main>"
              "<footer>site footer</footer></body></html>")


@pytest.fixture(scope="module")
def embed() -> TextEmbedder:
    return TextEmbedder(n_threads=2)


def write_docs(folder: Path) -> Path:
    (folder / "history").mkdir(parents=True)
    (folder / "history" / "bridge.md").write_text(BRIDGE)
    (folder / "pasta.txt").write_text(PASTA)
    (folder / "lighthouse.html").write_text(LIGHTHOUSE)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")  # truncated
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02\x03" * 64)
    return folder


def new_collection(name: str, *folders: Path) -> Collection:
    collection = Collection.create(name)
    collection.add_folders(list(folders))
    return collection


def top(collection: Collection, embed: TextEmbedder, query: str, k: int = 3) -> list[Hit]:
    return search(collection, query, embed([query])[0], k)


def paths_with(collection: Collection, word: str) -> set[str]:
    """Files whose indexed chunks hold `word`, straight from the FTS5 index."""
    return {hit.relative for hit in collection.hits([(i, 0.0) for i in collection.bm25([word], 100)])}


def test_update_reindexes_edits_drops_deletions_and_skips_bad_files(tmp_path: Path, embed: TextEmbedder) -> None:
    docs = write_docs(tmp_path / "docs")
    with new_collection("notes", docs) as notes:
        first = sync(notes, embed, show_progress=False)
        assert (first.added, first.changed, first.removed) == (3, 0, 0)
        assert sorted((Path(p).name, reason) for p, reason, _ in first.bad) == [("blob.txt", "binary"),
                                                                               ("broken.pdf", "corrupt")]
        hit = top(notes, embed, "Who built the bridge over the Velm?")[0]
        assert hit.relative == "history/bridge.md" and "Amelia Quandt" in hit.text
        assert BRIDGE[hit.start:hit.end] == hit.text  # offsets point into the file's text
        assert "site footer" not in top(notes, embed, "Plimsoll lighthouse keeper")[0].text  # HTML main text only

        # Edit one file, delete another: only those two are touched.
        (docs / "history" / "bridge.md").write_text(BRIDGE.replace("Amelia Quandt", "Bertram Ollivant"))
        (docs / "pasta.txt").unlink()
        second = sync(notes, embed, show_progress=False)
        assert (second.added, second.changed, second.removed, second.unchanged) == (0, 1, 1, 1)
        assert len(second.bad) == 2 and second.chunks == 1
        assert paths_with(notes, "ollivant") == {"history/bridge.md"}
        assert paths_with(notes, "quandt") == set()  # the old text is gone from the index
        assert paths_with(notes, "pasta") == set()  # the deleted file's chunks too
        assert notes.db.execute("SELECT count(*) FROM files WHERE path LIKE '%pasta.txt'").fetchone()[0] == 0
        assert "Bertram Ollivant" in top(notes, embed, "Who built the Zorbix bridge?")[0].text

        # Touched but unchanged (same bytes, new mtime): not re-embedded.
        os.utime(docs / "lighthouse.html", ns=(1, 1))
        assert sync(notes, embed, show_progress=False).chunks == 0

        # A bad file that becomes good is indexed; one fixed file no longer counts as bad.
        (docs / "blob.txt").write_text("The Velm flows into the Ostra lagoon.")
        third = sync(notes, embed, show_progress=False)
        assert third.added == 1 and [Path(p).name for p, _, _ in third.bad] == ["broken.pdf"]
        assert notes.counts() == {"files": 3, "chunks": 3, "bad_files": 1}


def test_a_missing_folder_is_reported_and_its_files_kept(tmp_path: Path, embed: TextEmbedder) -> None:
    docs = write_docs(tmp_path / "docs")
    with new_collection("notes", docs) as notes:
        sync(notes, embed, show_progress=False)
        docs.rename(tmp_path / "elsewhere")
        report = sync(notes, embed, show_progress=False)
        assert report.missing_folders == [str(docs)] and report.removed == 0
        assert notes.counts()["files"] == 3
        assert top(notes, embed, "Zorbix bridge")[0].relative == "history/bridge.md"


def test_an_interrupted_add_resumes_where_it_stopped(tmp_path: Path, embed: TextEmbedder) -> None:
    docs = write_docs(tmp_path / "docs")
    calls = []

    def interrupted(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second file is embedded
        return embed(texts)

    with new_collection("notes", docs) as notes:
        with pytest.raises(KeyboardInterrupt):
            sync(notes, interrupted, show_progress=False)
        assert notes.counts()["files"] == 1 and notes.get_meta("state") == "indexing"
        resumed = sync(notes, embed, show_progress=False)
        assert (resumed.unchanged, resumed.added) == (1, 2)  # the finished file is not embedded again
        assert notes.counts() == {"files": 3, "chunks": 3, "bad_files": 2} and notes.get_meta("state") == "ready"


@pytest.mark.slow
def test_docs_commands_end_to_end(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    env = {**os.environ, "RUNTIME_HOME": str(tmp_path / "home")}

    def docs_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runtime", "docs", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=180)

    added = docs_cli("add", "notes", str(docs))
    assert added.returncode == 0, added.stderr
    assert "3 added" in added.stderr and "2 skipped" in added.stderr
    assert "broken.pdf: corrupt" in added.stderr and "blob.txt: binary" in added.stderr
    found = docs_cli("search", "notes", "who keeps the lighthouse", "--top-k", "2", "--json")
    hits = json.loads(found.stdout)
    assert len(hits) == 2 and hits[0]["path"] == str(docs / "lighthouse.html")
    assert "Oskar Thrane" in hits[0]["text"] and hits[0]["score"] >= hits[1]["score"]
    assert {"start", "end", "page"} <= set(hits[0])
    assert '"notes"' in docs_cli("list", "--json").stdout
    rechunk = docs_cli("add", "notes", str(docs), "--chunk-tokens", "64")
    assert rechunk.returncode == 1 and "--chunk-tokens 64 (it has 160)" in rechunk.stderr
    (docs / "pasta.txt").unlink()
    assert "1 removed" in docs_cli("update", "notes").stderr
    unknown = docs_cli("search", "nope", "x")
    assert unknown.returncode == 1 and "no LocalDocs collection named 'nope'; collections: notes" in unknown.stderr
    assert docs_cli("remove", "notes").returncode == 0
    assert json.loads(docs_cli("list", "--json").stdout) == []


def long_hit(n: int, words: int) -> Hit:
    text = " ".join(f"fact{n}-{i} about the Zorbix archive" for i in range(words // 5))
    return Hit("notes", f"/docs/{n}.md", f"{n}.md", text, 1.0 / n, 0, len(text), None, n)


def test_excerpts_fit_the_context_with_room_for_the_answer(model: GPT4All) -> None:
    """Many long excerpts: the prompt keeps only what fits n_ctx less the answer's tokens, best first,
    passing over an excerpt too long for what is left in favour of a shorter one after it."""
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}]
    question = "What does the Zorbix archive hold?"
    hits = [long_hit(n, 300) for n in range(1, 10)] + [long_hit(10, 20)]

    def prompt_tokens(text: str) -> int:
        return len(model.chat_tokens([*messages, {"role": "user", "content": text}]))

    max_tokens = 200
    budget = model.n_ctx - max_tokens
    assert prompt_tokens(with_excerpts(question, hits)) > 2 * model.n_ctx  # far too much to take it all
    chosen = fit_excerpts(question, hits, prompt_tokens, budget)
    assert [h.chunk_id for h in chosen] == [1, 2, 10]  # 3 does not fit after 1 and 2; the short 10 does
    used = prompt_tokens(with_excerpts(question, chosen))
    assert budget - model.count_tokens(hits[2].text) < used <= budget  # as full as it gets; the answer fits
    assert fit_excerpts(question, hits, prompt_tokens, prompt_tokens(question) - 1) == []


def test_chat_session_answers_from_localdocs_and_cites_them(tmp_path: Path, model: GPT4All, embed: TextEmbedder) -> None:
    docs = write_docs(tmp_path / "docs")
    with new_collection("notes", docs) as notes:
        sync(notes, embed, show_progress=False)
    with model.chat_session(localdocs=["notes"]):
        answer = model.generate("Who built the Zorbix bridge?", max_tokens=24, temp=0)
        assert model.sources[0].relative == "history/bridge.md"
        assert "Quandt" in answer  # the 135M model reads it off the excerpt
        assert model.current_chat_session[1] == {"role": "user", "content": "Who built the Zorbix bridge?"}
    with pytest.raises(ValueError, match="no LocalDocs collection named 'other'"):
        with model.chat_session(localdocs=["other"]):
            pass
    out = io.StringIO()  # the terminal chat (`chat --docs notes`) prints each answer's sources after it
    chat_loop(model, io.StringIO("Who keeps the Plimsoll lighthouse?\n"), out, max_tokens=8, temp=0, localdocs=["notes"])
    assert out.getvalue().splitlines()[2].startswith("Sources: [1] lighthouse.html")


def test_library_searches_several_collections(tmp_path: Path, embed: TextEmbedder) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "bridge.md").write_text(BRIDGE)
    (second / "pasta.txt").write_text(PASTA)
    for name, folder in (("a", first), ("b", second)):
        with new_collection(name, folder) as collection:
            sync(collection, embed, show_progress=False)
    library = Library(["a", "b"], embed)
    assert [h.collection for h in library.search("how long to cook pasta", 2)] == ["b", "a"]
    assert [h.collection for h in library.search("how long to cook pasta", 2, names=["a"])] == ["a"]
    library.close()


def test_localdocs_imports_no_torch_until_it_embeds() -> None:
    code = ("import sys; from runtime.localdocs import Library, search, sync; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_pdf_hits_carry_their_page(tmp_path: Path, embed: TextEmbedder) -> None:
    from tests.pdfs import write_pdf

    filler = "The maintenance log lists routine checks of pumps, valves and belts in the east hall. " * 12
    (tmp_path / "docs").mkdir()
    write_pdf(tmp_path / "docs" / "manual.pdf", [filler + "The Zorblax unit idles at 300 rpm.",
                                                 filler + "The Ferrit gear turns at 900 rpm."])
    with new_collection("manuals", tmp_path / "docs") as manuals:
        assert sync(manuals, embed, show_progress=False).added == 1
        hit = top(manuals, embed, "How fast does the Ferrit gear turn?")[0]
        assert "Ferrit" in hit.text and hit.page == 2 and hit.as_json()["page"] == 2
        assert top(manuals, embed, "Zorblax idle speed")[0].page == 1
