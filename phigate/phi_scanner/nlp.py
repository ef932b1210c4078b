"""spaCy named-entity recognition. The only module of phigate that imports spaCy.

Only the ``ner`` component is loaded (the small English model's NER has its own tok2vec),
which gives the same entities as the full pipeline at about twice the speed. NER costs about
100 times a regex pass, so the scanner sends it only the chunks of text that can hold a name
(see :func:`name_candidate_chunks`), and only when its answer can change the verdict.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import spacy
from spacy.tokens import Doc

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.census_lexicon import COMMON_CAPITALISED
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.dates import date_finding

if TYPE_CHECKING:
    from phigate.phi_scanner.cache import CachedEntities, FindingsCache

UNUSED_COMPONENTS = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
MAX_CHUNK_CHARS = 1000
# Characters of context NER gets on each side of a candidate word.
CONTEXT_CHARS = 40

CAPITALISED = re.compile(r"\b[A-ZÀ-ÖØ-Þ][\wà-ÿ'-]*")
CHUNK_BOUNDARY = re.compile(r"\n|(?<=[.!?])\s+(?=[A-Z])")
#: The entity labels a finding is made of (_entity_finding); the others are not kept.
USED_LABELS = frozenset({"PERSON", "GPE", "DATE"})


CALENDAR_WORD = re.compile(
    r"(?i)\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday)\b\.?|\b(?:19|20)\d{2}\b")


@dataclass(frozen=True)
class Chunk:
    start: int
    text: str


def name_candidate_chunks(text: str, explained: Sequence[tuple[int, int]] = (),
                          ordinary_words: frozenset[str] = frozenset()) -> list[Chunk]:
    """Windows of lines (or sentences) around capitalised words that could be names.

    A word inside an ``explained`` span (what the cheap recognizers already found: a cue or
    lexicon name, an address, a drug) needs no model, and neither does a dictionary word
    that is capitalised only because it starts the sentence ("Energetic", "Unlike"). NER is
    the cost of a scan, so every word skipped counts.
    """
    merged = _merge(explained)
    starts = [start for start, _ in merged]

    def is_explained(position: int) -> bool:
        index = bisect.bisect_right(starts, position) - 1
        return index >= 0 and position < merged[index][1]

    chunks: list[Chunk] = []
    position = 0
    for boundary in [*CHUNK_BOUNDARY.finditer(text), None]:
        end = boundary.start() if boundary else len(text)
        # The model is blind in capitals: in a line written in capitals its labels are
        # noise, and the cue recognizers read such lines instead.
        shouting = _mostly_capitals(text, position, end)
        candidates = [(word.start(), word.end())
                      for word in CAPITALISED.finditer(text, position, end)
                      if word.group() not in COMMON_CAPITALISED
                      and not (shouting and word.group().isupper())
                      and not is_explained(word.start())
                      and not (word.start() == position
                               and word.group().lower() in ordinary_words)]
        for start, stop in _windows(text, position, end, candidates):
            for offset in range(start, stop, MAX_CHUNK_CHARS):
                chunks.append(Chunk(offset, text[offset:min(stop, offset + MAX_CHUNK_CHARS)]))
        position = boundary.end() if boundary else len(text)
    return chunks


def _mostly_capitals(text: str, start: int, end: int) -> bool:
    letters = [ch for ch in text[start:end] if ch.isalpha()]
    return len(letters) >= 12 and sum(ch.isupper() for ch in letters) > 0.6 * len(letters)


def _windows(text: str, start: int, end: int, candidates: list[tuple[int, int]]
             ) -> list[tuple[int, int]]:
    """Context around each candidate word, within [start, end), cut at spaces, merged.

    The model needs a few words either side of a name to label it, not the whole sentence:
    NER's cost grows with the text it reads.
    """
    windows: list[tuple[int, int]] = []
    for word_start, word_end in candidates:
        left = max(start, word_start - CONTEXT_CHARS)
        right = min(end, word_end + CONTEXT_CHARS)
        if left > start:
            space = text.find(" ", left, word_start)
            left = space + 1 if space >= 0 else left
        if right < end:
            space = text.rfind(" ", word_end, right)
            right = space if space >= 0 else right
        if windows and left <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], right))
        else:
            windows.append((left, right))
    return windows


def _merge(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class NerModel:
    def __init__(self, model_name: str) -> None:
        try:
            self._nlp = spacy.load(model_name, exclude=UNUSED_COMPONENTS)
        except OSError as error:
            raise RuntimeError(f"spaCy model {model_name!r} is not installed") from error

    def find_entities(self, text: str, part: str, chunks: Sequence[Chunk],
                      cache: FindingsCache[CachedEntities] | None = None) -> list[Finding]:
        """Findings of the entities the model labels in ``chunks`` of ``text``.

        With a ``cache``, a chunk whose text the worker has read before is not read again:
        the model sees only the chunk, so its entities are the same.
        """
        results: list[Finding] = []
        for chunk, entities in zip(chunks, self._chunk_entities(chunks, cache), strict=True):
            for label, start, end in entities:
                finding = _entity_finding(text, part, label, chunk.start + start,
                                          chunk.start + end)
                if finding is not None:
                    results.append(finding)
        return results

    def _chunk_entities(self, chunks: Sequence[Chunk],
                        cache: FindingsCache[CachedEntities] | None) -> list[CachedEntities]:
        keys = [cache.key(chunk.text) for chunk in chunks] if cache is not None else []
        found: list[CachedEntities | None] = (
            [cache.get(key) for key in keys] if cache is not None else [None] * len(chunks))
        missing = [index for index, entities in enumerate(found) if entities is None]
        texts = [chunks[index].text for index in missing]
        # One short chunk (the common case) is cheaper through a plain call than through
        # pipe()'s batching machinery.
        docs: Iterable[Doc] = ([self._nlp(texts[0])] if len(texts) == 1 else
                               self._nlp.pipe(texts, batch_size=64) if texts else [])
        for index, doc in zip(missing, docs, strict=True):
            entities = tuple((entity.label_, entity.start_char, entity.end_char)
                             for entity in doc.ents if entity.label_ in USED_LABELS)
            found[index] = entities
            if cache is not None:
                cache.put(keys[index], entities)
        return [entities or () for entities in found]


def _entity_finding(text: str, part: str, label: str, start: int, end: int) -> Finding | None:
    value = text[start:end]
    if label == "PERSON":
        if not any(ch.isupper() for ch in value) or len(value) < 2:
            return None
        return Finding(cat.PERSON, value, start, end, part, 0.7, "NER person")
    if label == "GPE":
        return Finding(cat.LOCATION, value, start, end, part, 0.5, "NER place")
    if label == "DATE":
        # Only calendar dates: relative phrases ("next week") and durations ("8 years") do
        # not identify anyone, and NER labels bare ZIP codes as dates.
        if not CALENDAR_WORD.search(value):
            return None
        return date_finding(text, part, start, end, 0.5)
    return None
