"""runtime.documents: text out of every supported format, the reason for every bad file, and exact chunks."""

import random
from pathlib import Path

import pytest

from runtime.documents import REASONS, ExtractionError, chunk_document, estimate_tokens, extract, find_files
from tests.pdfs import write_pdf


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "guide.md").write_text("# Guide\n\nThe Quillon valve opens at 40 kPa.\n")
    (tmp_path / "page.html").write_text(
        "<html><head><title>T</title><script>var leaked = 'SCRIPTTEXT';</script></head><body>"
        "<nav>Home | About | NAVTEXT</nav><main><h2>Brindle</h2><p>The Brindle pump <b>hums</b> at night.</p>"
        "<script>alert('SCRIPTTEXT')</script><ul><li>first</li><li>second</li></ul></main>"
        "<footer>FOOTERTEXT</footer></body></html>")
    (tmp_path / "legacy.txt").write_bytes("Crème brûlée is très bonne à Noël.".encode("cp1252"))
    write_pdf(tmp_path / "manual.pdf", ["Page one names the Zorblax unit.", "Page two names the Ferrit gear."])
    (tmp_path / ".hidden.md").write_text("never listed")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    return tmp_path


def test_find_files_matches_globs_at_any_depth_and_skips_hidden(folder: Path) -> None:
    names = [p.relative_to(folder).as_posix() for p in find_files(folder)]
    assert names == ["legacy.txt", "manual.pdf", "notes/guide.md", "page.html"]
    assert [p.name for p in find_files(folder, include=["*.md", "*.txt"], exclude=["notes/*"])] == ["legacy.txt"]
    with pytest.raises(FileNotFoundError, match="missing"):
        find_files(folder / "missing")


def test_each_format_gives_its_text(folder: Path) -> None:
    assert "Quillon valve opens at 40 kPa" in extract(folder / "notes" / "guide.md").text
    html = extract(folder / "page.html").text
    assert html == "## Brindle\n\nThe Brindle pump hums at night.\n\n- first\n\n- second"
    assert extract(folder / "legacy.txt").text == "Crème brûlée is très bonne à Noël."
    pdf = extract(folder / "manual.pdf")
    assert [pdf.text[p.start:p.end] for p in pdf.pages] == [
        "Page one names the Zorblax unit.", "Page two names the Ferrit gear."]
    assert pdf.page_at(pdf.text.index("Ferrit")) == 2 and pdf.page_at(0) == 1
    assert len(pdf.sha256) == 64 and pdf.sha256 != extract(folder / "legacy.txt").sha256


def test_bad_files_are_refused_with_their_reason(tmp_path: Path) -> None:
    write_pdf(tmp_path / "locked.pdf", ["secret"], password="user")
    write_pdf(tmp_path / "whole.pdf", ["some text " * 50])
    (tmp_path / "truncated.pdf").write_bytes((tmp_path / "whole.pdf").read_bytes()[:400])
    (tmp_path / "binary.md").write_bytes(b"\x7fELF\x00\x01\x02 text")
    (tmp_path / "empty.txt").write_text(" \n\n")
    rng = random.Random(0)
    (tmp_path / "noise.txt").write_bytes(bytes(rng.randrange(0x80, 0x100) for _ in range(2000)))
    (tmp_path / "blank.pdf").write_bytes(b"")
    write_pdf(tmp_path / "scan.pdf", [""])
    (tmp_path / "table.xlsx").write_bytes(b"PK")
    expected = {"locked.pdf": "encrypted", "truncated.pdf": "corrupt", "binary.md": "binary", "empty.txt": "empty",
                "noise.txt": "undecodable", "blank.pdf": "empty", "scan.pdf": "empty", "table.xlsx": "unsupported",
                "gone.md": "unreadable"}
    for name, reason in expected.items():
        with pytest.raises(ExtractionError) as caught:
            extract(tmp_path / name)
        assert (caught.value.reason, caught.value.path.name) == (reason, name)
        assert name in str(caught.value) and reason in REASONS


def test_chunks_are_exact_spans_within_budget_and_split_at_headings() -> None:
    from runtime.documents import Document

    body = " ".join(f"Sentence {i} tells the reader about valve {i * 7}." for i in range(120))
    text = f"# Intro\n\n{body}\n\n## Maintenance\n\nOil the Quillon gear monthly.\n\nReplace seals yearly."
    document = Document(Path("x.md"), text, "0" * 64)
    chunks = chunk_document(document, size=64, overlap=8)
    assert [c.index for c in chunks] == list(range(len(chunks))) and len(chunks) > 10
    for chunk in chunks:
        assert chunk.text == text[chunk.start:chunk.end] and chunk.text == chunk.text.strip()
        assert estimate_tokens(chunk.text) <= 64 and chunk.page is None
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered or text[i].isspace() for i in range(len(text)))  # nothing lost
    for before, after in zip(chunks, chunks[1:-1]):
        assert after.start < before.end  # consecutive chunks of one section overlap
    assert chunks[-1].text.startswith("## Maintenance")  # a heading starts a chunk, with no overlap into it
    assert "Replace seals yearly." in chunks[-1].text
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(document, size=16, overlap=16)


def test_chunk_pages_and_a_custom_token_counter(tmp_path: Path) -> None:
    write_pdf(tmp_path / "two.pdf", ["alpha " * 60, "omega " * 60])
    document = extract(tmp_path / "two.pdf")
    chunks = chunk_document(document, size=40, overlap=0, count_tokens=lambda s: len(s.split()))
    assert all(len(c.text.split()) <= 40 for c in chunks)
    assert chunks[0].page == 1 and chunks[-1].page == 2 and "omega" in chunks[-1].text
