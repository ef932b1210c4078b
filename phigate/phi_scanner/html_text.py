"""HTML to text for the scanner: libxml2's HTML parser (lxml) builds the tree in C and one
walk over it writes the text (issue 16: bs4's pure-Python tokenizer was 1.3 ms of a scanner
worker's ~10 ms per message; this is ~5x cheaper on the benchmark's HTML parts).

The text is written as before (``tests/phi_scanner/html_reference.py``, the BeautifulSoup
tree walk it replaces, is the reference):

- the text of elements and what follows them; not comments, doctypes, processing
  instructions;
- nothing inside ``script``, ``style``, ``template`` or the head;
- a paragraph break before and after each block element (``BLOCK_NAMES``), so a footer
  row or a letterhead cell is one cacheable paragraph.

libxml2 (2.14) tokenizes as HTML5 does, as a mail client's engine does, where Python's
``html.parser`` did not; ``tests/phi_scanner/test_html_text.py`` has each case (``CLIENT``)
and checks that the evaluation sets', the benchmark's and shared/eval's HTML give the same
text, word for word. Where they differ, the text is the one a client shows:

- an end tag with nothing of its name open is no break in the text: ``x</b>y`` is ``xy``;
- ``title``, ``textarea`` hold text, not markup; a ``title`` is head content, not shown;
- ``<![CDATA[...]]>`` in HTML is a comment; character references are read as HTML5 reads
  them (``&#0;`` and ``&#x110000;`` are U+FFFD);
- the head ends where HTML ends it (HTML needs no ``</head>``), a head after the body began
  is ignored, ``noscript`` (mail clients run no scripts) and ruby text are read.

One exception, on the side of reading more: where the HTML ends inside a tag or a comment
(a truncated part), a client shows nothing of it, but the rest is read as text, as before:
whatever is in the message is scanned. Likewise after ``</html>`` (libxml2 drops it, a
client shows it) and past libxml2's 2,047 nested elements (it then keeps nothing: the HTML
is read with its tags taken out). libxml2 builds no Python objects while parsing; the walk
is ``iterwalk``'s, not a recursion.
"""

from __future__ import annotations

import html as html_module
import re
import threading

from lxml import etree

# Elements that end a paragraph: their text becomes its own paragraph of the extracted text
# (a blank line around it), so a footer row or a letterhead cell is one cacheable unit.
BLOCK_NAMES = frozenset({
    "p", "div", "tr", "table", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "hr", "section", "article", "header", "footer", "address"})
#: Elements whose content no mail client shows: left out, and the head's title. The rest of
#: the head has no text but a noscript's (libxml2 moves other text to the body), which
#: a client without scripts shows.
REMOVED_NAMES = frozenset({"script", "style", "template"})
BREAK = "\x00"  # cannot occur in the text (NULs are taken out of the HTML first)

_LOCAL = threading.local()  # a parser per thread: its error_log is its last document's
# What opens a tag or a comment after "<" (HTML5): a letter, "/", "!" or "?".
_TAG_START = re.compile(r"[A-Za-z/!?]")
_TAG = re.compile(r"<[A-Za-z/!?][^>]*>?")
_FATAL = etree.ErrorLevels.FATAL
_HTML_TAG = re.compile(r"</?html\b[^>]*>", re.IGNORECASE)


def html_to_text(html: str) -> str:
    # libxml2 drops what follows "</html>" or "<html/>" (a list's footer appended after the
    # end: a client shows it): the html tags become empty processing instructions (still a
    # break between two strings, as they were; inert in a comment, a script or a value).
    html = _HTML_TAG.sub("<?html?>", html.replace(BREAK, ""))
    pieces = _pieces(html)
    tail = _unterminated_tail(html)
    if tail:
        pieces.append(tail)
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
    """The shown strings and the block breaks, in document order."""
    if not html.strip():
        return []  # libxml2 calls an empty document an error
    parser = _parser()
    root = etree.fromstring(html, parser)
    if any(entry.level == _FATAL for entry in parser.error_log):
        # libxml2 gave up (more than 2,047 nested elements even with huge_tree) and keeps
        # none of the text: read all of it, tags taken out (a client would show it).
        return [BREAK, _without_tags(html)]
    if root is None:
        return []
    pieces: list[str] = []
    # Comments (and processing instructions: HTML5 reads them as comments) come as their
    # own events: their text is left out, what follows them is shown.
    walk = etree.iterwalk(root, events=("start", "end", "comment", "pi"))
    for event, element in walk:
        if event == "start":
            tag = element.tag
            if tag in REMOVED_NAMES or (tag == "title" and _in_head(element)):
                walk.skip_subtree()  # its "end" still comes: its tail is shown
                continue
            if tag in BLOCK_NAMES:
                pieces.append(BREAK)
            if element.text:
                pieces.append(element.text)
        else:
            if event == "end" and element.tag in BLOCK_NAMES:
                pieces.append(BREAK)
            if element.tail:
                pieces.append(element.tail)
    return pieces


def _parser() -> etree.HTMLParser:
    parser: etree.HTMLParser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        # No network, no entities beyond HTML's; huge_tree: libxml2's depth limit is 2,047
        # levels instead of 256 (past it, it keeps none of the text: see _pieces).
        parser = _LOCAL.parser = etree.HTMLParser(
            recover=True, no_network=True, huge_tree=True, remove_blank_text=False,
            remove_comments=False, remove_pis=False)
    return parser


def _in_head(element: etree._Element) -> bool:
    parent = element.getparent()
    return parent is not None and parent.tag == "head"


def _without_tags(html: str) -> str:
    """Every character of the HTML outside its tags, references read: scripts too. Only for
    HTML libxml2 will not read, where reading too much is the safe side."""
    return html_module.unescape(_TAG.sub("\n", html))


def _unterminated_tail(html: str) -> str:
    """What follows a tag or comment the HTML never closes (a truncated part): HTML5 drops
    it; it is read, so nothing in the message goes unscanned."""
    comment = html.rfind("<!--")
    if comment >= 0 and "-->" not in html[comment + 2:]:
        return html[comment:]  # a comment never closed swallows what follows
    end = len(html)
    while (start := html.rfind("<", 0, end)) >= 0:
        if start + 1 < len(html) and _TAG_START.match(html, start + 1):
            return "" if ">" in html[start:] else html[start:]
        end = start
    return ""
