"""HTML to text for the scanner, without building a tree (issue 16: BeautifulSoup's tree was
a third of a scanner worker's time on practice mail with an HTML alternative).

bs4's own tokenizer (``BeautifulSoupHTMLParser``: entities, character references, void and
self-closing elements read exactly as ``BeautifulSoup(html, "html.parser")`` read them)
feeds a stack of open element names that does what bs4's tree builder did with each event:
an end tag closes up to the most recent open element of its name and is ignored when none
is open; what is still open at the end is closed there. The text is written as the old
tree walk wrote it:

- the strings ``get_text`` keeps: not comments, doctypes, declarations, processing
  instructions; CDATA is kept;
- nothing inside ``script``, ``style``, ``template`` or the head;
- a paragraph break before and after each block element (``BLOCK_NAMES``), so a footer
  row or a letterhead cell is one cacheable paragraph.

Where the tree left out text a mail client shows, it is read (a PHI leak otherwise): the
head ends where HTML ends it (any element but head content, or text outside a title; HTML
needs no ``</head>``, and the tree held the whole body in such a head), a head after the
body began is ignored as HTML ignores it, and ``noscript`` (mail clients run no scripts)
and ruby text (``rt``, ``rp``) are read.

``tests/phi_scanner/test_html_text.py`` compares the two on every HTML part of the
evaluation sets, the benchmark's messages and shared/eval's mail, on hostile HTML and on
generated tag soup. A tree walk's memory and time grow with the nesting; a stack of names
does not.
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
#: Elements whose content no mail client shows: left out.
REMOVED_NAMES = frozenset({"script", "style", "head", "template"})
#: What HTML keeps in the head; any other element, or text outside these, ends the head.
HEAD_CONTENT = frozenset({"base", "basefont", "bgsound", "link", "meta", "title", "noscript",
                          "noframes", "style", "script", "template"})
_HEAD_TEXT = frozenset({"title", "style", "script", "template", "noframes"})
_BEFORE_HEAD, _IN_HEAD, _AFTER_HEAD = range(3)
BREAK = "\x00"  # cannot occur in the text (NULs are taken out of the HTML first)

_BUILDER = HTMLParserTreeBuilder()
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
    ``endData``, ``_popToTag``, the end of ``_feed``) reduced to the open elements' names,
    with the head ended where HTML ends it (see the module)."""

    builder = _Builder()
    contains_replacement_characters = False

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self._open: list[str] = []
        self._open_count: dict[str, int] = {}
        self._data: list[str] = []
        self._removed = 0  # open script/style/head/template
        self._head = _BEFORE_HEAD

    def handle_starttag(self, name: str, namespace: Any, nsprefix: Any, attrs: Any,
                        **_: Any) -> _Element:
        self.endData()
        if name == "head" and self._head != _BEFORE_HEAD:
            return _NOT_VOID  # a second head, or one after the body began: HTML ignores it
        if self._head == _IN_HEAD and name not in HEAD_CONTENT:
            self._end_head()  # "<head><meta ...><body>": no </head> needed
        elif self._head == _BEFORE_HEAD and name not in HEAD_CONTENT | {"html", "head"}:
            self._head = _AFTER_HEAD
        self._open.append(name)
        self._open_count[name] = self._open_count.get(name, 0) + 1
        if name == "head":
            self._head = _IN_HEAD
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
        if container is not None and container is not CData:
            return  # a comment, doctype, declaration or processing instruction
        if self._head != _AFTER_HEAD and not text.isspace():
            if self._head == _BEFORE_HEAD:
                self._head = _AFTER_HEAD
            elif self._open[-1] not in _HEAD_TEXT:
                self._end_head()  # text in the head is the body's (a title's is not)
        if not self._removed:
            self.pieces.append(text)

    def finish(self) -> None:
        self.endData()
        while self._open:
            self._pop()

    def _end_head(self) -> None:
        while self._pop() != "head":
            pass

    def _pop(self) -> str:
        name = self._open.pop()
        self._open_count[name] -= 1
        if name == "head":
            self._head = _AFTER_HEAD
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
