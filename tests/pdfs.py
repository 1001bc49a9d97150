"""Real PDFs for the document tests, written by fpdf2."""

from pathlib import Path

from fpdf import FPDF


def write_pdf(path: Path, pages: list[str], password: str | None = None) -> None:
    """A PDF with one text page per item (an empty item gives a page without text), locked when a
    user password is given."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.output(str(path))
