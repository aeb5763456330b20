"""Where one sentence of a post ends and the next begins.

Annotations point at sentences by index (``<post_id>_s<k>``), so the
generator and anyone who reads its output must cut a post the same way.
The rule is the model's own (:mod:`psy_agents_noaug.data.sentences`): a
sentence ends at ``.``, ``!`` or ``?`` followed by a space, or at a newline.
No sentence the generator writes has such a boundary inside it, and a
sentence without final punctuation only ever ends a paragraph.
"""

from __future__ import annotations

from psy_agents_noaug.data.sentences import split_sentences

__all__ = ["sentence_id", "split_sentences"]


def sentence_id(post_id: str, index: int) -> str:
    """The annotation id of a post's ``index``-th sentence (0-based).

    Example:
        >>> sentence_id("redsm5_0007", 3)
        'redsm5_0007_s3'
    """
    return f"{post_id}_s{index}"
