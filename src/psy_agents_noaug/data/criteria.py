"""The DSM-5 major depressive episode criteria A.1–A.9, in our own words.

Each criterion carries the ReDSM5 symptom label that annotates it and a
short description. The description is what the model reads next to a post,
so it is written plainly, in the vocabulary people use about themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    """One criterion of a major depressive episode.

    Attributes:
        id: Criterion id, ``"A.1"`` … ``"A.9"``.
        symptom: The ReDSM5 ``DSM5_symptom`` label for it, e.g. ``"DEPRESSED_MOOD"``.
        name: A short human name, e.g. ``"Depressed mood"``.
        description: One or two sentences the model reads paired with a post.
    """

    id: str
    symptom: str
    name: str
    description: str


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        id="A.1",
        symptom="DEPRESSED_MOOD",
        name="Depressed mood",
        description=(
            "Feeling sad, down or hopeless: a low mood most of the day, nearly every day."
        ),
    ),
    Criterion(
        id="A.2",
        symptom="ANHEDONIA",
        name="Loss of interest or pleasure",
        description=(
            "Lost interest in hobbies and activities, no longer able to enjoy things or have fun."
        ),
    ),
    Criterion(
        id="A.3",
        symptom="APPETITE_CHANGE",
        name="Appetite or weight change",
        description=(
            "A clear change in appetite or weight: "
            "the person may eat much less or much more than usual."
        ),
    ),
    Criterion(
        id="A.4",
        symptom="SLEEP_ISSUES",
        name="Sleep disturbance",
        description=(
            "Sleep problems nearly every day: "
            "cannot fall asleep, waking too early, or too much sleep."
        ),
    ),
    Criterion(
        id="A.5",
        symptom="PSYCHOMOTOR",
        name="Restlessness or slowing down",
        description=(
            "Restless and unable to sit still, or moving and talking so slow that others notice."
        ),
    ),
    Criterion(
        id="A.6",
        symptom="FATIGUE",
        name="Fatigue or loss of energy",
        description=("Feeling tired or exhausted, with no energy, nearly every day."),
    ),
    Criterion(
        id="A.7",
        symptom="WORTHLESSNESS",
        name="Worthlessness or excessive guilt",
        description=(
            "Feeling worthless, like a failure, or guilty, with strong guilt and blame for oneself."
        ),
    ),
    Criterion(
        id="A.8",
        symptom="COGNITIVE_ISSUES",
        name="Poor concentration or indecisiveness",
        description=("Being unable to concentrate, focus, think clearly or make decisions."),
    ),
    Criterion(
        id="A.9",
        symptom="SUICIDAL_THOUGHTS",
        name="Thoughts of death or suicide",
        description=("Thoughts of death or suicide, wanting to die, or plans to end one's life."),
    ),
)

SPECIAL_CASE = "SPECIAL_CASE"
"""A valid ReDSM5 label for cases the annotator set apart; it is not a criterion."""

SYMPTOMS: tuple[str, ...] = (*(c.symptom for c in CRITERIA), SPECIAL_CASE)
"""Every valid ``DSM5_symptom`` label: the nine criterion symptoms, then ``SPECIAL_CASE``."""

_BY_ID = {c.id: c for c in CRITERIA}
_BY_SYMPTOM = {c.symptom: c for c in CRITERIA}


def criterion_by_id(criterion_id: str) -> Criterion:
    """Look a criterion up by its id.

    Args:
        criterion_id: ``"A.1"`` … ``"A.9"``.

    Returns:
        The matching :class:`Criterion`.

    Raises:
        ValueError: If the id is not one of the nine; the message lists them.

    Example:
        >>> criterion_by_id("A.4").symptom
        'SLEEP_ISSUES'
    """
    try:
        return _BY_ID[criterion_id]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown criterion id {criterion_id!r}; valid ids: {', '.join(_BY_ID)}"
        ) from None


def criterion_by_symptom(symptom: str) -> Criterion:
    """Look a criterion up by its ReDSM5 symptom label.

    Args:
        symptom: A label such as ``"FATIGUE"`` (exact spelling; ``SPECIAL_CASE`` is
            a valid ReDSM5 label but not a criterion, so it is rejected here).

    Returns:
        The matching :class:`Criterion`.

    Raises:
        ValueError: If the label names no criterion; the message lists the nine labels.

    Example:
        >>> criterion_by_symptom("FATIGUE").id
        'A.6'
    """
    try:
        return _BY_SYMPTOM[symptom]
    except (KeyError, TypeError):
        raise ValueError(
            f"no criterion for symptom {symptom!r}; valid symptoms: {', '.join(_BY_SYMPTOM)}"
        ) from None
