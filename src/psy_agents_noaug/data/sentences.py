"""Where one sentence of a post ends and the next begins, as character spans.

The model scores every sentence of a post and ``predict`` points at the one that carried a
decision, by its index and its character offsets in the text; ReDSM5's annotations name
sentences too. One rule, used by the model, the reader of annotations and the corpus
generator alike: a sentence ends at ``.``, ``!`` or ``?`` followed by spaces, or at a
newline; leading and trailing spaces are not part of it. Text with no such boundary (one
100,000-character line, a row of emoji) is one sentence; the tokenizer windows split it.
"""

from __future__ import annotations

import re

__all__ = ["Span", "sentence_spans", "split_sentences"]

Span = tuple[int, int]
"""``(start, end)`` character offsets: ``text[start:end]`` is the sentence."""

_BOUNDARY = re.compile(r"(?<=[.!?])[ \t]+")
_LINE = re.compile(r"[^\n]+")


def sentence_spans(text: str) -> list[Span]:
    """The sentences of ``text`` as ``(start, end)`` offsets, in order.

    Example:
        >>> text = "I can't sleep. Any advice?\\n\\nthanks lol"
        >>> [text[a:b] for a, b in sentence_spans(text)]
        ["I can't sleep.", 'Any advice?', 'thanks lol']
    """
    spans: list[Span] = []
    for line in _LINE.finditer(text):
        cut = line.start()
        for gap in _BOUNDARY.finditer(text, line.start(), line.end()):
            _add(spans, text, cut, gap.start())
            cut = gap.end()
        _add(spans, text, cut, line.end())
    return spans


def _add(spans: list[Span], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        first = start + len(piece) - len(piece.lstrip())
        spans.append((first, first + len(stripped)))


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` as strings (see :func:`sentence_spans`)."""
    return [text[a:b] for a, b in sentence_spans(text)]
