"""Which files of a folder are documents: recursive glob matching on paths relative to the folder."""

from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

DEFAULT_PATTERNS: tuple[str, ...] = ("*.md", "*.markdown", "*.txt", "*.rst", "*.html", "*.htm", "*.pdf")


def _matches(relative: str, patterns: Sequence[str]) -> bool:
    """True if `relative` (POSIX) matches a pattern; a pattern without '/' matches the file name at any depth."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch(relative, p) or ("/" not in p and fnmatch(name, p)) for p in patterns)


def find_files(root: Path, include: Sequence[str] = DEFAULT_PATTERNS, exclude: Sequence[str] = ()) -> list[Path]:
    """The files under `root` matching `include` and no `exclude` pattern, sorted; hidden files and folders skipped."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"document folder {root} does not exist or is not a folder")
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in relative.split("/")) or not path.is_file():
            continue
        if _matches(relative, include) and not _matches(relative, exclude):
            found.append(path)
    return sorted(found)
