"""The README is an entry point and the guides in docs/ hold the rest: the README stays short,
links every guide, and every relative link in README.md and docs/*.md points at a file (and a
heading) that exists. Each command is described in prose somewhere, not only in the generated
reference (tests/test_reference.py checks that every option and config key is there). Timings
are only quoted from the generated docs/benchmarks.md, never copied into prose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stockrnn.reference import walk_commands

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
GENERATED = {DOCS / "benchmarks.md", DOCS / "reference.md"}  # make bench, make docs
GUIDES = [p for p in PAGES if p not in GENERATED]
MAX_README_LINES = 250


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.M | re.S)


def github_anchors(text: str) -> set[str]:
    """The anchors GitHub makes for the headings of a Markdown text."""
    anchors, seen = set(), {}
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose(text), re.M):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # link text only
        slug = "".join(c for c in title.lower() if c.isalnum() or c in " -_").replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", prose(read(path)))


def test_readme_is_short():
    n = len(read(README).splitlines())
    assert n <= MAX_README_LINES, (f"README.md has {n} lines (at most {MAX_README_LINES}): move "
                                   "details into docs/ and link them")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_relative_links_point_at_existing_files_and_headings(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in github_anchors(read(dest)):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"broken links in {page.relative_to(REPO)}: {broken}"


def test_links_find_real_files():
    """The link check sees the links (a regex that found none would pass anything)."""
    assert "docs/operations.md" in links(README)
    assert any(t.startswith("reference.md#") for p in GUIDES for t in links(p))
    assert "data" in github_anchors("## Data\n```\n# not a heading\n```\n")
    assert "not-a-heading" not in github_anchors("```\n# not a heading\n```\n")
    assert github_anchors("### `stockrnn runs list`\n## Why `log_return` is it\n") == {
        "stockrnn-runs-list", "why-log_return-is-it"}


def test_readme_links_every_docs_page():
    targets = {Path(t.partition("#")[0]).name for t in links(README)}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.name not in targets]
    assert not missing, f"README.md does not link {missing}"


def test_readme_has_the_entry_point_sections():
    text = read(README)
    for needle in ("make demo", "make test", "## Quick start", "evaluate", "MASE",
                   "persistence", "The lectures"):
        assert needle in text, needle
    # the real evaluate output and how to read it
    assert re.search(r"^model\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+[\d.]+", text, re.M)
    assert "Read it like this" in text
    assert text.count("\"The lectures\" are") == 1  # explained once


COMMANDS = [ctx.command_path for ctx, cmd in walk_commands()
            if ctx.parent is not None and not getattr(cmd, "commands", None)]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_described_in_a_guide(command):
    """Not only in the generated reference: in README.md or a guide in docs/."""
    assert any(command in read(p) for p in GUIDES), f"{command} is in no guide"


# A timing copied by hand into prose: "12.6 s", "0.09 s", "17-40 ms", "2.4x faster".
TIMING = re.compile(r"\b\d+\.\d+\s?s\b|\b\d+(?:[.-]\d+)?\s?ms\b|\d(?:\.\d+)?x (?:faster|slower)")


HAND_WRITTEN = [*GUIDES, DOCS / "reference.md"]  # the reference quotes config.py's descriptions


@pytest.mark.parametrize("page", HAND_WRITTEN, ids=[str(p.relative_to(REPO)) for p in HAND_WRITTEN])
def test_no_timing_copied_into_prose(page):
    found = TIMING.findall(prose(read(page)))
    assert not found, (f"{page.relative_to(REPO)} quotes timings {found}: link "
                       "docs/benchmarks.md (make bench) instead")
