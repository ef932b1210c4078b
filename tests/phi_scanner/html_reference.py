"""The scanner's HTML to text as it was up to issue 16's third pass: a BeautifulSoup tree
(``html.parser``), its script/style/head/noscript/template subtrees removed, then one walk.

Kept only as the reference ``phigate.phi_scanner.html_text`` must agree with, word for word
(``test_html_text.py``); the scanner no longer builds the tree.
"""

from __future__ import annotations

from bs4 import BeautifulSoup, NavigableString, PageElement, Tag

_BLOCKS = ["p", "div", "tr", "table", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
           "blockquote", "pre", "hr", "section", "article", "header", "footer", "address"]
_BLOCK_NAMES = frozenset(_BLOCKS)
_BREAK = "\x00"  # cannot occur in decoded HTML text (the parser drops NULs)


def html_to_text(html: str) -> str:
    soup = BeautifulSoup(html.replace(_BREAK, ""), "html.parser")
    for element in soup(["script", "style", "head", "noscript", "template"]):
        element.decompose()
    text = _text_with_breaks(soup)
    lines = (line.strip() for line in text.splitlines())
    out: list[str] = []
    for line in lines:
        if _BREAK in line:
            for piece in line.split(_BREAK):
                piece = piece.strip()
                if piece:
                    out.append(piece)
                elif out and out[-1]:
                    out.append("")
        elif line:
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _text_with_breaks(soup: BeautifulSoup) -> str:
    """``soup.get_text("\\n")`` with a ``_BREAK`` before and after each block element.

    One walk over the tree. (Inserting the breaks into the tree instead costs bs4 a walk to
    the last descendant per insertion: quadratic in the nesting, 80 s for 20,000 nested
    ``<div>``.) The strings kept are those ``get_text`` keeps: no comments, no doctype.
    """
    kept = soup.interesting_string_types
    pieces: list[str] = []
    pending: list[PageElement | None] = [soup]  # None: the end of a block element
    while pending:
        node = pending.pop()
        if node is None:
            pieces.append(_BREAK)
        elif isinstance(node, Tag):
            if node.name in _BLOCK_NAMES and node is not soup:
                pieces.append(_BREAK)
                pending.append(None)
            pending.extend(reversed(node.contents))
        elif isinstance(node, NavigableString) and _kept(type(node), kept):
            pieces.append(str(node))
    return "\n".join(pieces)


def _kept(string_type: type[NavigableString],
          kept: type[NavigableString] | set[type[NavigableString]] | None) -> bool:
    if kept is None:
        return True
    if isinstance(kept, type):
        return string_type is kept
    return string_type in kept


