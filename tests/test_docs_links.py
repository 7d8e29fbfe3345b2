"""Every relative link in README.md and docs/*.md resolves: the file exists and, for a #anchor, so does the heading.

Anchors follow GitHub's rule for headings: the heading's text, lower-cased, without punctuation (hyphens and
underscores kept), spaces turned into hyphens, and -1, -2, ... added to repeats.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with their numbers."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stands for the link
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file defines: its headings' slugs (repeats numbered) and HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """The link targets of a Markdown file outside code, with their line numbers."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = INLINE_CODE.sub("", line)
        found += [(number, target) for target in LINK.findall(line)]
        reference = REFERENCE.match(line)
        if reference:
            found.append((number, reference.group(1)))
    return found


def broken_links(path: Path) -> list[str]:
    """One line per relative link of `path` that does not resolve: FILE:LINE: TARGET and why."""
    problems = []
    for number, target in links(path):
        if not target or SCHEME.match(target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        where = f"{path}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading #{anchor} in {dest.name}")
    return problems


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_relative_link_in_the_docs_resolves():
    files = doc_files()
    assert len(files) > 1
    problems = [problem for path in files for problem in broken_links(path)]
    assert not problems, "\n".join(problems)


def test_the_readme_links_into_every_docs_page():
    linked = {(ROOT / target.partition("#")[0]).resolve() for _, target in links(ROOT / "README.md")}
    pages = {path.resolve() for path in (ROOT / "docs").glob("*.md")}
    assert pages and pages <= linked, sorted(str(p) for p in pages - linked)


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Repeated\n\n## Repeated\n\n## `--dtype` auto\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](other.md) [ok](other.md#other-page) [ok](other.md#repeated-1) [ok](other.md#--dtype-auto)\n"
        "[ok](#page) [web](https://example.com/missing.md) `[code](missing.md)`\n"
        "```\n[in a block](missing.md)\n```\n"
        "[gone](missing.md)\n"
        "![gone too](img/missing.png)\n"
        "[no such heading](other.md#repeated-2)\n"
        "[no such heading here](#nowhere)\n"
        "[ref]: also-missing.md\n"
    )
    problems = broken_links(page)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "missing.md",
        "img/missing.png",
        "other.md#repeated-2",
        "#nowhere",
        "also-missing.md",
    ]
    assert all(str(page) in p for p in problems)


def test_slug_follows_github():
    assert slug("The demo's time") == "the-demos-time"
    assert slug("An NVIDIA H200 (2026-11-30): the HF rows; vLLM did not start") == (
        "an-nvidia-h200-2026-11-30-the-hf-rows-vllm-did-not-start"
    )
    assert slug("The qwen3-0.6b shape (596M parameters, random weights)") == (
        "the-qwen3-06b-shape-596m-parameters-random-weights"
    )
    assert slug("`jsontune predict` — the **CSV**") == "jsontune-predict--the-csv"
    assert slug("engine_rule") == "engine_rule"
