"""Cutting a translation into clauses, so synthesis can start on the first one while the rest is made.

Clauses end at sentence and clause punctuation. Very short clauses are merged into a neighbour (Kokoro
sounds clipped on one or two words, and each call has a fixed cost); over-long ones are cut at a space
(Kokoro takes at most 510 phoneme tokens, and a long clause delays the first audio).
"""

from __future__ import annotations

import re

# A run of these ends a clause when a space (or the end of the text) follows, so "3.14" and "e.g.x" stay whole.
_CLOSING = ".!?;:,…"
# These end a clause wherever they are: CJK text puts no space after its punctuation.
_CLOSING_ANYWHERE = "。、！？；：，．"
# Spanish opening marks start a clause: "¿cómo estás?" keeps its "¿".
_OPENING = "¿¡"
_PUNCTUATION_RUN = re.compile(f"[{re.escape(_CLOSING + _CLOSING_ANYWHERE)}]+|[{_OPENING}]")
MAX_CLAUSE_CHARS = 160
MIN_CLAUSE_CHARS = 12
# The listener waits for the first clause alone, and Kokoro (int8, 2 cores) spends ~0.55 s per second of the
# audio it makes: 25 characters (four or five words, ~2 s of speech) is ~0.3 s sooner than 32. (It is the
# shortest that split_clauses can cut with MIN_CLAUSE_CHARS on both sides.)
FIRST_CLAUSE_CHARS = 2 * MIN_CLAUSE_CHARS + 1


def split_clauses(text: str, max_chars: int = MAX_CLAUSE_CHARS, min_chars: int = MIN_CLAUSE_CHARS) -> list[str]:
    """Split `text` into clauses of at most `max_chars` characters, none shorter than `min_chars` unless it is
    the only one.

    Whitespace runs (anything `str.split` splits on) become single spaces and clauses carry no outer spaces;
    every other character is kept, in order. A clause keeps its punctuation (it ends with its "," or "?",
    and starts with its "¿"). A clause longer than `max_chars` is cut at its last space that leaves both
    parts at least `min_chars` long, or inside a word when no space qualifies.
    """
    if min_chars < 0 or max_chars < 2 * min_chars + 1:
        raise ValueError(f"need 0 <= min_chars and max_chars >= 2 * min_chars + 1 (got {min_chars}, {max_chars})")
    normalised = " ".join(text.split())
    clauses: list[str] = []
    for clause in _merge_short(normalised, _boundaries(normalised), min_chars):
        clauses.extend(_cut_long(clause, max_chars, min_chars))
    return clauses


def _boundaries(text: str) -> list[int]:
    """Offsets where one punctuation clause ends and the next begins, 0 and len(text) included."""
    cuts = {0, len(text)}
    for run in _PUNCTUATION_RUN.finditer(text):
        mark = run.group()
        if mark in _OPENING:
            cuts.add(run.start())
        elif run.end() == len(text) or text[run.end()] == " " or any(c in _CLOSING_ANYWHERE for c in mark):
            cuts.add(run.end())
    return sorted(cuts)


def _merge_short(text: str, cuts: list[int], min_chars: int) -> list[str]:
    """Grow each clause forward until it has `min_chars` characters; a short last one joins the clause before."""
    pieces = [(start, end) for start, end in zip(cuts, cuts[1:]) if text[start:end].strip()]
    spans: list[tuple[int, int]] = []
    for start, end in pieces:
        if spans and len(text[spans[-1][0] : spans[-1][1]].strip()) < min_chars:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    if len(spans) > 1 and len(text[spans[-1][0] : spans[-1][1]].strip()) < min_chars:
        last = spans.pop()
        spans[-1] = (spans[-1][0], last[1])
    return [text[start:end].strip() for start, end in spans]


def _cut_long(clause: str, max_chars: int, min_chars: int) -> list[str]:
    """Cut at the last space that leaves a head of min..max characters and a tail of at least `min_chars`.

    With no such space the cut goes inside a word, at the last offset that keeps both limits; that offset
    has non-space characters on both sides (the searched range holds no space), so no part shrinks when
    stripped. `max_chars >= 2 * min_chars + 1` guarantees the range is never empty.
    """
    out = []
    while len(clause) > max_chars:
        last = min(max_chars, len(clause) - 1 - min_chars)
        space = clause.rfind(" ", min_chars, last + 1)
        cut, skip = (space, 1) if space >= 0 else (last, 0)
        out.append(clause[:cut])
        clause = clause[cut + skip :]
    out.append(clause)
    return out


class ClauseStream:
    """Clauses out of text that arrives in pieces (a translation being generated), each released as soon as
    more text can no longer change it, so synthesis can start on the first clause while the rest is made.

    Releases the clauses `split_clauses` would find, except that a short last clause is not merged back
    into one already released, and that the very first clause is cut at `first_max_chars` (the listener
    waits for it alone), released once `min_chars` more have come; the others are cut at `max_chars`.
    A whole text too short for that cut (at most `first_max_chars + min_chars`) is one clause, not a word
    cut in two.
    """

    def __init__(self, max_chars: int = MAX_CLAUSE_CHARS, min_chars: int = MIN_CLAUSE_CHARS,
                 first_max_chars: int = FIRST_CLAUSE_CHARS):
        self.max_chars, self.min_chars, self.first_max_chars = max_chars, min_chars, first_max_chars
        self._buffer = ""
        self._released = 0

    def feed(self, piece: str) -> list[str]:
        self._buffer += piece
        ready = []
        while True:  # one clause at a time: only the very first is cut at first_max_chars
            clauses = split_clauses(self._buffer, self._limit(), self.min_chars)
            # A cut at punctuation is final; a cut at a space moves while the text is shorter than
            # limit + min_chars.
            if len(clauses) >= 2 and (clauses[0].endswith(tuple(_CLOSING + _CLOSING_ANYWHERE))
                                      or len(self._buffer.strip()) > self._limit() + self.min_chars):
                ready.append(self._release(clauses[0]))
                continue
            return ready

    def finish(self) -> list[str]:
        out = []
        if self._released == 0 and len(self._buffer.strip()) <= self.first_max_chars + self.min_chars:
            # All of it is known and too short to cut in two clauses of min_chars: one clause.
            return [self._release(clause) for clause in split_clauses(self._buffer, self.max_chars, self.min_chars)]
        while self._buffer.strip():
            out.append(self._release(split_clauses(self._buffer, self._limit(), self.min_chars)[0]))
        return out

    def _limit(self) -> int:
        return self.first_max_chars if self._released == 0 else self.max_chars

    def _release(self, clause: str) -> str:
        self._released += 1
        self._buffer = _after(self._buffer, clause)
        return clause


def _after(text: str, clause: str) -> str:
    """What follows `clause` at the start of `text` (whitespace runs count as one space in `clause`)."""
    words, position = clause.split(), 0
    for word in words:
        position = text.index(word, position) + len(word)
    return text[position:]
