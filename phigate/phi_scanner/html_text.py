"""HTML to text for the scanner, without building a tree (issue 16: BeautifulSoup's tree was
a third of a scanner worker's time on practice mail with an HTML alternative).

The text is the one ``BeautifulSoup(html, "html.parser")`` gave, word for word, line for
line: the same tokenizer (bs4's own ``BeautifulSoupHTMLParser``, so entities, character
references, void and self-closing elements are read exactly as before) feeds a stack that
does what bs4's tree builder does with each event (an end tag closes up to the most recent
open element of its name and is ignored when none is open; what is still open at the end is
closed there), and the text is written out as the tree walk wrote it:

- the strings ``get_text`` keeps (not comments, doctypes, declarations, processing
  instructions; CDATA is kept; strings inside ``rt``/``rp``/``style``/``script``/
  ``template`` are bs4's own string types and were not kept either);
- nothing inside ``script``, ``style``, ``head``, ``noscript``, ``template`` (their subtrees
  were removed from the tree);
- a paragraph break before and after each block element (``_BLOCK_NAMES``), so a footer
  row or a letterhead cell is one cacheable paragraph.

``tests/phi_scanner/test_html_text.py`` compares the two on every HTML part of the
evaluation sets and the benchmark's messages, on hostile HTML and on generated tag soup.
A tree walk's memory and time grow with the nesting; a stack of names does not.
"""

from __future__ import annotations

from typing import Any

from bs4.builder._htmlparser import BeautifulSoupHTMLParser, HTMLParserTreeBuilder
from bs4.element import AttributeDict, CData
from bs4.exceptions import ParserRejectedMarkup

# Elements that end a paragraph: their text becomes its own paragraph of the extracted text
# (a blank line around it), so a footer row or a letterhead cell is one cacheable unit.
BLOCK_NAMES = frozenset({
    "p", "div", "tr", "table", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "hr", "section", "article", "header", "footer", "address"})
#: Elements whose whole content is left out.
REMOVED_NAMES = frozenset({"script", "style", "head", "noscript", "template"})
BREAK = "\x00"  # cannot occur in the text (NULs are taken out of the HTML first)

_BUILDER = HTMLParserTreeBuilder()
#: bs4 gives strings directly or indirectly inside these their own types (not kept).
_STRING_CONTAINERS = frozenset(_BUILDER.string_containers)
_VOID_NAMES = frozenset(_BUILDER.empty_element_tags or ())


def html_to_text(html: str) -> str:
    pieces = _pieces(html.replace(BREAK, ""))
    out: list[str] = []
    for line in "\n".join(pieces).splitlines():
        if BREAK in line:
            for piece in line.split(BREAK):
                piece = piece.strip()
                if piece:
                    out.append(piece)
                elif out and out[-1]:
                    out.append("")
        else:
            line = line.strip()
            if line:
                out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _pieces(html: str) -> list[str]:
    """The kept strings and the block breaks, in document order."""
    builder = _TextBuilder()
    parser = _Parser(builder)
    try:
        parser.feed(html)
        parser.close()
    except AssertionError as error:  # what bs4 turns into ParserRejectedMarkup too
        raise ParserRejectedMarkup(error) from None
    builder.finish()
    return builder.pieces


class _Element:
    """What ``BeautifulSoupHTMLParser`` asks of the element it opened."""

    __slots__ = ("is_empty_element",)

    def __init__(self, is_empty_element: bool) -> None:
        self.is_empty_element = is_empty_element


_VOID, _NOT_VOID = _Element(True), _Element(False)


class _Builder:
    """The parts of ``HTMLParserTreeBuilder`` the parser reads."""

    attribute_dict_class = AttributeDict
    store_line_numbers = False


class _TextBuilder:
    """bs4's tree construction (``BeautifulSoup.handle_starttag``, ``handle_endtag``,
    ``endData``, ``_popToTag``, the end of ``_feed``) reduced to the open elements' names."""

    builder = _Builder()
    contains_replacement_characters = False

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self._open: list[str] = []
        self._open_count: dict[str, int] = {}
        self._data: list[str] = []
        self._containers = 0  # open rt/rp/style/script/template
        self._removed = 0  # open script/style/head/noscript/template

    def handle_starttag(self, name: str, namespace: Any, nsprefix: Any, attrs: Any,
                        **_: Any) -> _Element:
        self.endData()
        self._open.append(name)
        self._open_count[name] = self._open_count.get(name, 0) + 1
        if name in _STRING_CONTAINERS:
            self._containers += 1
        if name in REMOVED_NAMES:
            self._removed += 1
        elif name in BLOCK_NAMES and not self._removed:
            self.pieces.append(BREAK)
        return _VOID if name in _VOID_NAMES else _NOT_VOID

    def handle_endtag(self, name: str, nsprefix: Any = None) -> None:
        self.endData()
        if not self._open_count.get(name):
            return  # nothing of that name is open: the end tag is ignored
        while self._pop() != name:
            pass

    def handle_data(self, data: str) -> None:
        self._data.append(data)

    def endData(self, container: type | None = None) -> None:  # bs4 names it so
        if not self._data:
            return
        text = "".join(self._data)
        self._data = []
        kept = container is CData or (container is None and not self._containers)
        if kept and not self._removed:
            self.pieces.append(text)

    def finish(self) -> None:
        self.endData()
        while self._open:
            self._pop()

    def _pop(self) -> str:
        name = self._open.pop()
        self._open_count[name] -= 1
        if name in _STRING_CONTAINERS:
            self._containers -= 1
        if name in REMOVED_NAMES:
            self._removed -= 1
        elif name in BLOCK_NAMES and not self._removed:
            self.pieces.append(BREAK)
        return name


class _Parser(BeautifulSoupHTMLParser):
    """bs4's tokenizer, its events sent to a :class:`_TextBuilder` instead of a tree."""

    def __init__(self, builder: _TextBuilder) -> None:
        super().__init__(builder, convert_charrefs=False)  # type: ignore[arg-type]

    def _document_might_be_xml(self, processing_instruction: str) -> None:
        """No XMLParsedAsHTMLWarning: mail is HTML whatever its first line says."""

    def _root_tag_encountered(self, name: str) -> None:
        self._root_tag_name = name
