"""Every relative link in the README, the pages under docs/, BENCHMARKS.md and RELIABILITY.md
leads somewhere: to a file or folder of the checkout and, for a `#anchor`, to a heading of the
page it names (as GitHub makes a heading's anchor). Links in code are not links; links with a
scheme (https:, mailto:) are not checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import ROOT

PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "BENCHMARKS.md",
        ROOT / "RELIABILITY.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def prose(text: str) -> str:
    """The page without what is not prose: fenced blocks, HTML comments and code spans."""
    return _CODE_SPAN.sub("", _COMMENT.sub("", _FENCE.sub("", text)))


def links(text: str) -> list[str]:
    body = prose(text)
    return [m[1] for m in _INLINE.finditer(body)] + [m[1] for m in _REFERENCE.finditer(body)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (a link's text, a code span's content) in lower
    case, without punctuation but hyphens and underscores, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_COMMENT.sub("", _FENCE.sub("", text))):
        base = slug(match[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken(page: Path, text: str) -> list[str]:
    """Each relative link in `text`, the content of `page`, that leads nowhere, with why."""
    problems = []
    for target in links(text):
        if _SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page.resolve()
        if not where.is_relative_to(ROOT.resolve()):
            problems.append(f"{target}: outside the checkout")
        elif not where.exists():
            problems.append(f"{target}: no such file")
        elif anchor and where.suffix == ".md":
            headings = anchors(text if not path else where.read_text())
            if anchor not in headings:
                problems.append(f"{target}: no heading #{anchor} in {where.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    assert broken(page, page.read_text()) == []


def test_the_docs_link_to_each_other() -> None:
    """The check has something to check: the README links into docs/, with anchors."""
    readme = links((ROOT / "README.md").read_text())
    assert any(t.startswith("docs/") and "#" in t for t in readme), readme
    assert len(PAGES) > 4


def test_slugs_are_github_s() -> None:
    assert slug("Signature is invalid (3712)? Run `sdksign verify`") == (
        "signature-is-invalid-3712-run-sdksign-verify"
    )
    assert slug("C#, Java, Go and other languages") == "c-java-go-and-other-languages"
    assert slug("Stopping: drain, then grace") == "stopping-drain-then-grace"
    assert slug("Node.js") == "nodejs"
    assert slug("See [the API](calling.md)") == "see-the-api"


def test_a_broken_link_is_found() -> None:
    page = ROOT / "docs" / "README.md"
    text = page.read_text() + (
        "\n[gone](no-such-page.md) [bad anchor](calling.md#no-such-heading) [self](#nowhere)"
        " `[in code](missing.md)` [web](https://example.com/x.md) [up](../../../etc/passwd)"
        " [good](calling.md#python) [folder](../deploy)\n"
    )
    assert broken(page, text) == [
        "no-such-page.md: no such file",
        "calling.md#no-such-heading: no heading #no-such-heading in calling.md",
        "#nowhere: no heading #nowhere in README.md",
        "../../../etc/passwd: outside the checkout",
    ]
