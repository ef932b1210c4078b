"""dkimpy's rsa-sha256 signer made cheaper for our one set of parameters (issue 16): the
RSA step by OpenSSL with the key parsed once, relaxed body canonicalisation without two
regular-expression passes over the body, and the message split without dkimpy's split of
every line. Tests compare every piece with dkimpy's own, byte for byte
(tests/mta/delivery/test_dkim_openssl.py)."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import dkim
import dkim.canonicalization as dkim_canonicalization
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils


class _OpenSslRsaDKIM(dkim.DKIM):
    """dkimpy's rsa-sha256 signer with the RSA step done by OpenSSL (see the module doc).

    ``gen_header`` is dkimpy 1.1.8's ``DomainSigner.gen_header`` for DKIM
    (``standardize=False``) with ``RSASSA_PKCS1_v1_5_sign`` replaced by ``cryptography``'s
    PKCS#1 v1.5 signature over the same, already computed, SHA-256 digest.
    :meth:`sign_relaxed` is dkimpy's ``sign`` for our one set of parameters without the
    two costs it does not need here: parsing the PEM key for each message (in pure Python,
    ~0.14 ms; OpenSSL holds the key parsed once) and the relaxed body canonicalisation's
    two regular-expression passes over the whole body (~0.3 ms on a 12 KB message; see
    :func:`relaxed_body`). ``set_message`` reads the message with :func:`rfc822_split`
    (~0.1 ms less). Tests check that the result is byte for byte what dkimpy itself
    produces.
    """

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey, *, linesep: bytes) -> None:
        super().__init__(message, signature_algorithm=b"rsa-sha256", linesep=linesep)
        self._openssl_key = key

    def set_message(self, message: bytes) -> None:
        """dkimpy's, with :func:`rfc822_split` for its ``rfc822_parse``."""
        super().set_message(b"")
        if message:
            self.headers, self.body = rfc822_split(message)

    def sign_relaxed(self, selector: bytes, domain: bytes,
                     include_headers: list[bytes]) -> bytes:
        """``sign(selector, domain, key, canonicalize=(b"relaxed", b"relaxed"),
        include_headers=include_headers)`` of dkimpy 1.1.8: the same checks, fields and
        header."""
        canon_policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
        include = tuple(name.lower() for name in include_headers)
        self.include_headers = include
        if b"from" not in include:
            raise dkim.ParameterError("The From header field MUST be signed")
        for name in set(include).intersection(self.should_not_sign):
            raise dkim.ParameterError(f"The {name!r} header field SHOULD NOT be signed")
        self.hasher = dkim.HASH_ALGORITHMS[self.signature_algorithm]
        bodyhash = base64.b64encode(self.hasher(relaxed_body(self.body)).digest())
        fields = [
            (b"v", b"1"), (b"a", self.signature_algorithm), (b"c", canon_policy.to_c_value()),
            (b"d", domain), (b"i", b"@" + domain), (b"q", b"dns/txt"), (b"s", selector),
            (b"t", str(int(time.time())).encode("ascii")), (b"h", b" : ".join(include)),
            (b"bh", bodyhash),
            # dkimpy: forces b= onto a line of its own, so that refolding after adding the
            # signature does not change the whitespace of the tags before it.
            (b"b", b"0" * 60),
        ]
        header = self.gen_header(fields, include, canon_policy, b"DKIM-Signature", None)
        self.domain = domain
        self.selector = selector
        self.signature_fields = dict(fields)
        return b"DKIM-Signature: " + header

    def gen_header(self, fields: list[tuple[bytes, bytes]], include_headers: tuple[bytes, ...],
                   canon_policy: Any, header_name: bytes, pk: Any,
                   standardize: bool = False) -> bytes:
        if standardize:  # ARC's layout: not used for DKIM; keep dkimpy's own path
            return bytes(super().gen_header(fields, include_headers, canon_policy,
                                            header_name, pk, standardize))
        header_value = b"; ".join(b"=".join(field) for field in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        digest = self.hasher()
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(
            digest, canon_policy, headers, include_headers,
            (header_name, b" " + header_value), dict(fields))
        signature = self._openssl_key.sign(digest.digest(), padding.PKCS1v15(),
                                           utils.Prehashed(hashes.SHA256()))
        index = next(i for i, (tag, _) in enumerate(fields) if tag == b"b")
        fields[index] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(field) for field in fields) + self.linesep
        return bytes(dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep))


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")


def rfc822_split(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse(message)``: the same (headers, CRLF body).

    dkimpy splits the whole message into lines with a regular expression and joins the
    body's lines again (~0.2 ms on 12 KB); here only the header block is parsed by dkimpy,
    and the body, already CRLF in the common case, is taken as it is.
    """
    if message.startswith((b"\n", b"\r\n")):  # the first line is empty: no header
        return [], _crlf(message[message.index(b"\n") + 1:])
    blank = _BLANK_LINE.search(message)
    if blank is None:  # no body: dkimpy parses it all as headers
        return list(dkim.rfc822_parse(message)[0]), b""
    headers, _ = dkim.rfc822_parse(message[:blank.start()])
    return list(headers), _crlf(message[blank.end():])


def _crlf(text: bytes) -> bytes:
    """Every line end (CRLF or LF) as CRLF."""
    if text.count(b"\n") == text.count(b"\r\n"):
        return text
    return _LINE_END.sub(b"\r\n", text)


#: Runs of blanks that relaxed canonicalisation changes: two or more, or any with a tab (a
#: lone space stays as it is).
_BLANK_RUN = re.compile(rb"[\t ]{2,}|\t")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalisation of a CRLF body, as dkimpy's
    ``Relaxed.canonicalize_body`` does it (the same bytes; a test compares them).

    dkimpy runs ``[\\t ]+\\r\\n`` and ``[\\t ]+`` substitutions over the whole body: each
    space of the text starts a match. Mail text has hundreds of single spaces and rarely a
    run or a trailing blank, so the common case is two ``in`` tests; trailing blanks are
    stripped line by line (after the runs are compressed, a line ends in at most one space).
    """
    if b"\t" in body or b"  " in body:
        body = _BLANK_RUN.sub(b" ", body)
    if b" \r\n" in body:
        lines = body.split(b"\r\n")
        last = lines.pop()  # no CRLF follows it: its blanks stay (as in dkimpy)
        body = b"\r\n".join([line.rstrip(b" ") for line in lines] + [last])
    return dkim_canonicalization.correct_empty_body(
        dkim_canonicalization.strip_trailing_lines(body))
