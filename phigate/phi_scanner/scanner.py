"""The synchronous scanner: message bytes or text in, a :class:`ScanResult` out.

A scan runs the cheap recognizers (patterns, cue names, vocabularies) over every segment,
then NER only where its answer can still change the verdict (``ner = "auto"``): once the
cheap pass says ``phi``, or says ``identifiers`` with no health information in sight, more
names change nothing, and the model is not run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.cache import (
    CachedEntities,
    CachedStages,
    FindingsCache,
    cache_units,
    restore,
    strip,
)
from phigate.phi_scanner.census_lexicon import load_name_lexicon
from phigate.phi_scanner.extract import Limits, Segment, extract_message
from phigate.phi_scanner.findings import Finding, ScanResult
from phigate.phi_scanner.health_vocabulary import load_vocabulary
from phigate.phi_scanner.recognizers import PATTERN_RECOGNIZERS
from phigate.phi_scanner.recognizers.addresses import find_addresses
from phigate.phi_scanner.recognizers.census_names import (
    LEXICON_REASONS,
    find_lexicon_names,
    speaker_lines,
)
from phigate.phi_scanner.recognizers.clinical_people import REASON_CARE_CUE, find_clinical_people
from phigate.phi_scanner.recognizers.cued_names import find_cued_names
from phigate.phi_scanner.recognizers.dates import Spans, find_dates
from phigate.phi_scanner.recognizers.facilities import (
    REASON_DESTINATION,
    REASON_TOWN,
    find_facilities,
    place_automaton,
)
from phigate.phi_scanner.recognizers.health_terms import find_health_patterns, find_vocabulary_terms
from phigate.phi_scanner.recognizers.repeats import REASON_REPEAT, find_repeats
from phigate.phi_scanner.verdict import Thresholds, judge, verdict_outcome_is_settled

if TYPE_CHECKING:
    from phigate.config import ScannerSettings
    from phigate.phi_scanner.nlp import NerModel

# Which finding wins when two identifier findings overlap: explicit patterns over NER and
# over names found only because the word is in the name lexicon.
_NER_REASONS = frozenset({"NER person", "NER place"})
# Cue names after a weak cue and places found by position: a drug or a condition of the same
# spelling wins ("with tylenol", "on propofol 20").
_WEAK_REASONS = _NER_REASONS | LEXICON_REASONS | {REASON_CARE_CUE, REASON_DESTINATION,
                                                  REASON_TOWN, REASON_REPEAT}
# _stages' length, and where among them find_repeats reads the identifiers found so far.
_STAGES = 9
_REPEATS_AT = 7
_BY_POSITION = attrgetter("part", "start", "end")
_BY_START = attrgetter("start")


class Scanner:
    """Loads the vocabularies and the NER model once; safe to use in a worker process."""

    def __init__(self, settings: ScannerSettings) -> None:
        self.settings = settings
        self.thresholds = Thresholds(phi=settings.phi_threshold,
                                     identifiers=settings.identifier_threshold)
        self.limits = Limits(max_text_chars=settings.max_text_bytes,
                             max_seconds=settings.timeout_seconds * 0.6)
        self.vocabulary = load_vocabulary()
        self.name_lexicon = load_name_lexicon()
        place_automaton()  # the gazetteer loads once per worker, not during the first scan
        # cache_paragraphs = 0 turns every cache off (paragraph findings and NER chunks).
        self._cache: FindingsCache[CachedStages] | None = None
        self._ner_cache: FindingsCache[CachedEntities] | None = None
        if settings.cache_paragraphs > 0:
            self._cache = FindingsCache(settings.cache_paragraphs)
            self._ner_cache = FindingsCache(settings.cache_paragraphs)
        self._ner: NerModel | None = None
        if settings.ner != "never":
            from phigate.phi_scanner.nlp import NerModel  # the only import of spaCy

            self._ner = NerModel(settings.model)

    # -- public API ------------------------------------------------------------------------

    def scan_message(self, raw: bytes) -> ScanResult:
        deadline = self._deadline()  # extraction counts towards it
        try:
            extraction = extract_message(raw, self.limits)
        except RecursionError:
            # The stdlib walks MIME trees recursively: thousands of nested multiparts
            # exhaust the stack. Such a message cannot be read, so it fails closed.
            return ScanResult.unscannable_result("MIME structure nested too deeply")
        return self.scan_segments(extraction.segments, extraction.notes, deadline=deadline)

    def scan_text(self, text: str, part: str = "text") -> ScanResult:
        return self.scan_segments([Segment(part, text[: self.settings.max_text_bytes])], [])

    def _deadline(self) -> float:
        """When a scan stops and fails closed: before the pool's timeout kills the worker."""
        return time.monotonic() + self.settings.timeout_seconds * 0.9

    def scan_segments(self, segments: Sequence[Segment], notes: Iterable[str], *,
                      deadline: float | None = None) -> ScanResult:
        notes = list(dict.fromkeys(notes))  # unique, in order
        deadline = self._deadline() if deadline is None else deadline
        findings: list[Finding] = []
        segments = _distinct(segments)
        try:
            for segment in segments:
                findings.extend(self.cheap_findings(segment.text, segment.part,
                                                    deadline=deadline))
        except _OutOfTime:
            # The pattern pass over megabytes of text takes seconds: it stops at the
            # deadline too, and what it could not read makes the verdict fail closed.
            notes.append(_OUT_OF_TIME)
        findings = resolve_overlaps(findings)
        verdict, score = judge(findings, self.thresholds)
        if self._ner is not None and (self.settings.ner == "always" or not
                                      verdict_outcome_is_settled(findings, verdict)):
            budget = self.settings.ner_max_chars
            for segment in segments:
                if time.monotonic() > deadline:
                    if _OUT_OF_TIME not in notes:
                        notes.append(_OUT_OF_TIME)
                    break
                explained = [(f.start, f.end) for f in findings if f.part == segment.part]
                segment_findings, budget = self._ner_findings(segment, budget, explained)
                findings.extend(segment_findings)
                if budget < 0:
                    # NER costs ~100x the pattern pass: a huge text (a hostile or just a
                    # very large attachment) is not read for names to the end. Fail closed.
                    notes.append("unscannable: too much text to look for names in")
                    break
            findings = resolve_overlaps(findings)
            verdict, score = judge(findings, self.thresholds)
        if any(note.startswith("unscannable") for note in notes):
            verdict, score = cat.VERDICT_PHI, max(score, 1.0)  # fail closed
        findings.sort(key=_BY_POSITION)
        categories = sorted({f.category for f in findings})
        return ScanResult(verdict, score, categories, findings, notes)

    # -- recognizers -----------------------------------------------------------------------

    def cheap_findings(self, text: str, part: str, *, deadline: float | None = None
                       ) -> list[Finding]:
        """The cheap recognizers over ``text``, paragraph by paragraph through the cache.

        Every recognizer but the repeats one reads within a paragraph, so a paragraph's
        findings do not depend on its neighbours and are cached by paragraph; the repeats of
        a cued name are looked for over the whole text, as are the verdict's inputs. The
        text's last 60 characters (where a note's signature is looked for) are read in one
        piece with the paragraphs they reach into. A text
        with lines of dialogue (names found only because several lines read so) is read
        whole, uncached.
        """
        if self._cache is None or len(speaker_lines(text)) >= 2:
            stages = self._stages(text, part, deadline)
        else:
            stages = [[] for _ in range(_STAGES)]
            keys: dict[tuple[str, bool], bytes] = {}  # a footer row recurs ~40 times a text
            for offset, paragraph, tail in cache_units(text):
                key = keys.get((paragraph, tail))
                if key is None:
                    key = keys[(paragraph, tail)] = self._cache.key(paragraph, tail=tail)
                cached = self._cache.get(key)
                if cached is None:
                    found = self._stages(paragraph, part, deadline)  # cut: not cached
                    cached = tuple(strip(stage, 0) for stage in found)
                    self._cache.put(key, cached)
                for stage, stage_cached in zip(stages, cached, strict=True):
                    if stage_cached:  # most stages find nothing in most paragraphs
                        stage.extend(restore(stage_cached, text, part, offset))
        findings = [f for stage in stages[:_REPEATS_AT] for f in stage]
        _check(deadline)
        findings.extend(find_repeats(text, part, findings, self.name_lexicon))
        findings.extend(f for stage in stages[_REPEATS_AT:] for f in stage)
        return findings

    def _stages(self, text: str, part: str, deadline: float | None = None
                ) -> list[list[Finding]]:
        """Each recognizer's findings, in the order the overlap resolution relies on.

        Raises _OutOfTime between two recognizers once ``deadline`` has passed."""
        patterns: list[Finding] = []
        for recognizer in PATTERN_RECOGNIZERS:
            patterns.extend(recognizer(text, part))
            _check(deadline)
        lexicon, vocabulary = self.name_lexicon, self.vocabulary
        later: list[Callable[[], list[Finding]]] = [
            lambda: find_addresses(text, part),
            lambda: find_dates(text, part),
            lambda: find_cued_names(text, part),
            lambda: find_lexicon_names(text, part, lexicon),
            lambda: find_clinical_people(text, part, lexicon),
            lambda: find_facilities(text, part, lexicon),
            # find_repeats runs here, over the whole text (cheap_findings)
            lambda: find_vocabulary_terms(text, part, vocabulary),
            lambda: find_health_patterns(text, part, vocabulary),
        ]
        stages = [patterns]
        for stage in later:
            stages.append(stage())
            _check(deadline)
        return stages

    def _ner_findings(self, segment: Segment, budget: int, explained: list[tuple[int, int]]
                      ) -> tuple[list[Finding], int]:
        """NER findings within a budget of characters; returns the budget left (< 0: cut).

        Only chunks with a candidate word that no cheap finding ``explained`` go to the model.
        """
        from phigate.phi_scanner.nlp import name_candidate_chunks

        assert self._ner is not None  # noqa: S101 - checked by the caller
        chunks = []
        for chunk in name_candidate_chunks(segment.text, explained,
                                           self.name_lexicon.ordinary_words):
            budget -= len(chunk.text)
            if budget < 0:
                break
            chunks.append(chunk)
        found = (self._ner.find_entities(segment.text, segment.part, chunks, self._ner_cache)
                 if chunks else [])
        return found, budget


_OUT_OF_TIME = "unscannable: scan time limit reached"


class _OutOfTime(Exception):
    """The scan's deadline passed during the pattern pass."""


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise _OutOfTime


def _distinct(segments: Sequence[Segment]) -> list[Segment]:
    """Each text once: the HTML alternative of a message usually repeats its plain text word
    for word, and the same words give the same verdict (only the first part's offsets are
    reported)."""
    seen: set[str] = set()
    distinct = []
    for segment in segments:
        key = " ".join(segment.text.split())
        if key not in seen:
            seen.add(key)
            distinct.append(segment)
    return distinct


def _rank(finding: Finding) -> tuple[float, int]:
    # NER is the least precise source; a street address outranks the ZIP code or city it
    # contains, so the whole address is reported as one finding.
    adjustment = -0.2 if finding.reason in _WEAK_REASONS else 0.0
    if finding.category == cat.STREET_ADDRESS:
        adjustment += 0.1
    return (finding.confidence + adjustment, finding.end - finding.start)


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep one finding per overlapping region within each group.

    Identifiers compete with identifiers and health terms with health terms (the best-ranked
    survives). Across groups, a name from a cue (``Dear Allegra``) beats a drug of the same
    spelling, while a health term beats a NER-only person (``Lisinopril`` tagged PERSON).
    """
    kept: list[Finding] = []
    by_part: dict[str, list[Finding]] = {}
    for finding in findings:
        by_part.setdefault(finding.part, []).append(finding)
    for part_findings in by_part.values():
        identifiers = _greedy([f for f in part_findings
                               if f.category in cat.IDENTIFIER_CATEGORIES])
        health = _greedy([f for f in part_findings if f.category in cat.HEALTH_CATEGORIES])
        cue_people = [f for f in identifiers
                      if f.category == cat.PERSON and f.reason not in _WEAK_REASONS]
        people = _spans(cue_people)
        health = [h for h in health if not people.overlaps(h.start, h.end)]
        strong_health = _spans(h for h in health if h.confidence >= 0.75)
        identifiers = [f for f in identifiers
                       if not (f.reason in _WEAK_REASONS
                               and strong_health.overlaps(f.start, f.end))]
        kept.extend(identifiers)
        kept.extend(health)
    return kept


def _greedy(findings: list[Finding]) -> list[Finding]:
    """Best-ranked first, each kept if it overlaps none kept before.

    Done per cluster of overlapping findings (found with one sort and a sweep): clusters
    are small, so a text dense with findings (a hostile attachment) stays n log n.
    """
    chosen: list[Finding] = []
    for cluster in _clusters(findings):
        if len(cluster) == 1:  # most findings overlap no other one
            chosen.append(cluster[0])
            continue
        kept: list[Finding] = []
        for finding in sorted(cluster, key=_rank, reverse=True):
            if not any(finding.start < k.end and k.start < finding.end for k in kept):
                kept.append(finding)
        chosen.extend(kept)
    return chosen


def _clusters(findings: list[Finding]) -> Iterator[list[Finding]]:
    cluster: list[Finding] = []
    reach = -1
    for finding in sorted(findings, key=_BY_START):
        if cluster and finding.start < reach:
            cluster.append(finding)
            reach = max(reach, finding.end)
            continue
        if cluster:
            yield cluster
        cluster, reach = [finding], finding.end
    if cluster:
        yield cluster


def _spans(findings: Iterable[Finding]) -> Spans:
    spans = Spans()
    for finding in sorted(findings, key=_BY_START):  # disjoint, out of _greedy
        spans.add(finding.start, finding.end)
    return spans
