"""Evidence that comes after 400 words of neutral text is read, scored and pointed at.

A truncating model never sees the last sentence of these posts. Here the tiny encoder is
taught one evidence sentence on a short post (and that the neutral text is no evidence),
then `predict`, as the served model runs it, gets the sentence after 400+ neutral words:
the post is cut into windows, every window is scored, the post's score is its best
sentence's, and the evidence offsets must point at that last sentence. (The trained
default model on hand-written late-evidence posts: ``bench/heldout.py``.)
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from psy_agents_noaug.data.criteria import CRITERIA
from psy_agents_noaug.data.dataset import EncodingSpec, PostWindowsDataset, WindowCollator
from psy_agents_noaug.data.sentences import sentence_spans
from psy_agents_noaug.models.factory import build_model
from psy_agents_noaug.models.serving import CriteriaPredictor
from psy_agents_noaug.training.losses import CriteriaLoss

MODEL_CFG = {"name": "tiny", "encoder_name": "tiny", "dropout": 0.0, "framing": "multilabel",
             "aggregation": "max", "max_length": 48}  # fmt: skip
ENCODING = EncodingSpec(max_length=48)
IDS = [c.id for c in CRITERIA]
TRAIN_STEPS = 60

# Written for this test: a long account of restoring an old bicycle, no symptom in it.
NEUTRAL = (
    "Last spring I bought a rusty steel road bike from a neighbour for twenty dollars. "
    "The frame was sound but everything bolted to it had seen better decades. "
    "I started by stripping it down on a sheet in the garage and labelling every part. "
    "The headset came apart with a lot of swearing and a rubber mallet. "
    "The bottom bracket was seized, so I soaked it in penetrating oil for a week. "
    "A friend from the hardware store lent me a proper cup wrench. "
    "Once it was out I found the threads were still clean, which felt like a small miracle. "
    "I sanded the worst rust spots on the top tube and touched them up with enamel. "
    "The colour match is not perfect but from two metres away nobody can tell. "
    "New cables and housing were cheap, and routing them was oddly satisfying. "
    "The old brake pads were as hard as plastic, so those went straight in the bin. "
    "I trued both wheels on an upside-down fork clamped to the workbench. "
    "It took three evenings and a lot of patience with the spoke key. "
    "The rear hub needed fresh bearings, which came in a little paper packet. "
    "I packed them with grease and adjusted the cone until the wheel spun freely. "
    "The chain was beyond saving, and the cassette was worn too. "
    "I found a used freewheel at the community bike shop for a few coins. "
    "The volunteers there showed me how to check chain stretch with a ruler. "
    "I wrapped the handlebars in cork tape and finished the ends with electrical tape. "
    "The saddle is the original leather one, cleaned and oiled twice. "
    "On the first test ride the gears skipped, so I adjusted the limit screws. "
    "The second ride was smooth all the way along the river path. "
    "I have since ridden it to the market every Saturday with a basket on the back. "
    "A man at the traffic lights asked me what year it was made. "
    "I told him the serial number suggests it left the factory in the late seventies. "
    "Next I want to fit mudguards before the autumn rain arrives. "
    "I also need a better lock, because the old one is more decoration than security. "
    "My notebook of part numbers and torque values now runs to eleven pages. "
    "The garage still smells faintly of degreaser and old rubber. "
    "Every tool is back on its hook, which is more than I can say for most projects. "
)
EVIDENCE = {
    "A.9": "Some nights I lie there thinking everyone would be better off if I just killed myself.",
    "A.4": "I have not slept more than three hours a night for weeks, I just stare at the ceiling.",
}


def _taught(criterion: str, sentence: str) -> CriteriaPredictor:
    """The tiny classifier after a few steps on: two short posts with ``sentence`` (evidence
    for ``criterion``; one after the neutral text's last sentence, as in the long post's last
    window, one before another sentence), and the neutral text (no evidence of anything)."""
    model, tokenizer = build_model(SimpleNamespace(**MODEL_CFG), seed=0)
    last_neutral = NEUTRAL.rstrip().rsplit(". ", 1)[-1]
    shorts = [f"{last_neutral} {sentence}", f"{sentence} I fixed a bike."]
    positive = [int(c == criterion) for c in IDS]
    evidence = [[(*sentence_spans(shorts[0])[1], IDS.index(criterion))],
                [(*sentence_spans(shorts[1])[0], IDS.index(criterion))], []]  # fmt: skip
    frame = pd.DataFrame({"post_id": ["a", "b", "neutral"], "text": [*shorts, NEUTRAL],
                          "labels": [positive, positive, [0] * len(IDS)],
                          "evidence": evidence})  # fmt: skip
    dataset = PostWindowsDataset(frame, tokenizer, ENCODING)
    batch = WindowCollator(dataset, tokenizer.pad_token_id)([dataset[i] for i in range(3)])
    targets = batch.pop("labels")
    loss_fn = CriteriaLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(TRAIN_STEPS):
        optimizer.zero_grad()
        loss_fn(model(**batch), targets).backward()
        optimizer.step()
    return CriteriaPredictor(model.eval(), tokenizer, ENCODING)


@pytest.mark.parametrize("criterion", sorted(EVIDENCE))
def test_evidence_after_400_neutral_words_is_found_and_pointed_at(criterion: str) -> None:
    sentence = EVIDENCE[criterion]
    predictor = _taught(criterion, sentence)
    text = f"{NEUTRAL}{sentence}"
    assert len(NEUTRAL.split()) >= 400
    tokens_before = len(predictor.tokenizer(NEUTRAL)["input_ids"])
    assert tokens_before > 8 * ENCODING.max_length  # eight windows in: unread if cut
    posts = pd.DataFrame(
        {"post_id": ["late", "neutral"], "text": [text, NEUTRAL], "criterion_id": criterion}
    )
    late, neutral = predictor.predict(posts).itertuples()
    start = text.index(sentence)
    assert late.prediction == 1 and neutral.prediction == 0, (late, neutral)
    assert (late.evidence_start, late.evidence_end) == (start, start + len(sentence))
