"""Hard negatives: sentences on a criterion's topic that are not evidence of it in the writer.

A classifier that keys on words ("sleep", "tired", "die") fails on real
posts, where the same words come negated ("my sleep is actually fine"),
about someone else ("my roommate hasn't eaten properly since her
breakup"), in the past and resolved, in general talk ("people say
depression makes you tired") or in ordinary speech ("wiped out after the
10k", "this commute is killing me"). Every criterion has all five kinds;
each sentence is annotated ``status`` 0 with an explanation that says why.
"""

from __future__ import annotations

import random
from enum import Enum

from psy_agents_noaug.data.corpus.connectives import CONTINUING_LEADS, SHARED_LEADS
from psy_agents_noaug.data.corpus.templates import Persona, render


class ConfuserKind(Enum):
    """Why a sentence on a criterion's topic is not evidence of it."""

    NEGATED = "negated"
    OTHER_PERSON = "other person"
    PAST_RESOLVED = "past and resolved"
    GENERAL = "general or hypothetical"
    ORDINARY = "ordinary use"


TOPIC: dict[str, str] = {
    "DEPRESSED_MOOD": "low mood",
    "ANHEDONIA": "loss of interest",
    "APPETITE_CHANGE": "appetite or weight change",
    "SLEEP_ISSUES": "sleep problems",
    "PSYCHOMOTOR": "restlessness or slowing",
    "FATIGUE": "fatigue",
    "WORTHLESSNESS": "worthlessness or guilt",
    "COGNITIVE_ISSUES": "concentration problems",
    "SUICIDAL_THOUGHTS": "thoughts of death",
}
"""How an explanation names each criterion's topic."""

EXPLANATIONS: dict[ConfuserKind, tuple[str, ...]] = {
    ConfuserKind.NEGATED: (
        "The writer denies {topic}.",
        "Negated: the writer says there is no {topic}.",
    ),
    ConfuserKind.OTHER_PERSON: (
        "Describes {topic} in someone else, not the writer.",
        "About another person's {topic}, not the writer's.",
    ),
    ConfuserKind.PAST_RESOLVED: (
        "Past {topic} that has since resolved.",
        "Describes {topic} in the past; the writer says it is over.",
    ),
    ConfuserKind.GENERAL: (
        "A general or hypothetical remark about {topic}, not about the writer.",
        "General talk about {topic}; no claim about the writer now.",
    ),
    ConfuserKind.ORDINARY: (
        "Everyday, non-clinical use of words about {topic}.",
        "Ordinary situation or figure of speech, not {topic}.",
    ),
}

_N = ConfuserKind.NEGATED
_O = ConfuserKind.OTHER_PERSON
_P = ConfuserKind.PAST_RESOLVED
_G = ConfuserKind.GENERAL
_U = ConfuserKind.ORDINARY

CONFUSERS: dict[str, dict[ConfuserKind, tuple[str, ...]]] = {
    "DEPRESSED_MOOD": {
        _N: (
            "I'm not [sad|depressed|down] [or anything|really], just [stressed|busy|annoyed]",
            "my mood has [honestly |]been [pretty good|fine|okay|stable] [lately|this month|"
            "since {month}]",
            "I'm [actually |]in a good place mentally [right now|these days]",
            "I don't feel hopeless [or anything|about it], I just want [advice|a second opinion]",
            "I'm genuinely happy [with how things are going|most days], which is why this is weird",
            "I wouldn't say I'm depressed, I'm [mostly|just] frustrated with {annoyance}",
            "I haven't cried in [ages|years], I'm not much of a crier",
            "day to day I feel [pretty normal|okay|fine], mood wise",
            "I'm not feeling down about it, [more like|mostly] confused",
            "my mood is good [for once|these days], I'm not sad",
        ),
        _O: (
            "{who} has been [really |]depressed [since {his} breakup|since losing {his} job|"
            "for months] and I don't know how to help {him}",
            "{who} cries [every night|a lot] [since the funeral|lately] and I feel helpless",
            "{who} says everything feels hopeless and {he} won't see a therapist",
            "{who} seems so [sad|down|low] [lately|these days], {he} barely smiles anymore",
            "I'm worried about {who}, {he}'s been [really |]down since {his} [dog died|divorce|"
            "surgery]",
            "{who} told me {he} feels empty [all the time|most days] and I didn't know what to say",
            "{who} has depression and some days {he} can't stop crying",
        ),
        _P: (
            "I was [really |badly |]depressed [in high school|in my early twenties|after my "
            "divorce|a few years ago] but I'm [doing much better|in a much better place] now",
            "I went through a [really |]dark [patch|time] [back in college|in 2019|after my dad "
            "died], but therapy got me through it",
            "I used to cry [every day|all the time] [when I lived with my ex|at my old job], "
            "that's over now thankfully",
            "my depression has been in remission for [two years|a while now]",
            "last winter I was [pretty |]low for a few months, but it lifted [in the spring|once "
            "I changed jobs]",
            "I haven't felt that hopeless since [high school|my early twenties], and I'm proud "
            "of that",
        ),
        _G: (
            "people say depression is just being sad, [but I don't think that's true|is that "
            "really it]?",
            "[apparently|I read that] depression can look totally different from person to person",
            "it's wild how many people on this sub talk about feeling empty",
            "if I ever got really depressed I'd want someone to notice",
            "my psych class spent a week on mood disorders and it was [interesting|intense]",
            "how do you tell the difference between a bad week and actual depression?",
        ),
        _U: (
            "the ending of [that show|the book|{show}] was so sad, I [cried|teared up] like a baby",
            "[the weather|all this rain|January] is so depressing lol",
            "I was bummed [when|that] [the concert got cancelled|my package got lost]",
            "watching the {team} lose [again|in the playoffs] was depressing",
            "I got [a little |]emotional at my cousin's wedding, in a good way",
            "Sunday evenings are always a bit sad but [whatever|that's normal]",
            "that documentary about [elephants|the ocean] made me so sad",
        ),
    },
    "ANHEDONIA": {
        _N: (
            "I still [love|enjoy] {hobby} [and do it most weekends|, that hasn't changed]",
            "I'm [still |]really into {game} [right now|lately]",
            "I still look forward to [my weekends|seeing my friends|{event_fun}]",
            "it's not like I've lost interest in things, I just don't have time",
            "I [still |]have fun [with my friends|at {event_fun}], that part is fine",
            "my hobbies are honestly what keep me sane right now",
            "I'm excited about [the trip|{event_fun}|my new {hobby_gear}], so it's not that",
            "I still enjoy stuff, I haven't lost interest in anything",
        ),
        _O: (
            "{who} [quit|stopped] {hobby} [last year|a while ago] and won't tell me why",
            "{who} doesn't enjoy anything anymore, {he} just sits in {his} room",
            "{who} used to love {hobby} and now {he} won't even talk about it",
            "I think {who} has lost interest in everything, {he} skipped {his} own birthday party",
            "{who} says nothing is fun for {him} anymore and it worries me",
        ),
        _P: (
            "there was a stretch [after college|in 2020|last year] where nothing felt fun, but "
            "that passed",
            "I stopped {hobby} for a couple years in my twenties, and I'm back into it now",
            "back on my old meds I felt kind of flat, but switching fixed it",
            "a while ago I lost interest in basically everything, and I'm so glad that's over",
        ),
        _G: (
            "I read that losing interest in hobbies is [a big sign|one of the main symptoms] of "
            "depression",
            "people always say 'find a hobby' like that fixes anything",
            "is it normal to [outgrow|get bored of] hobbies as you get older?",
            "my therapist asked if I still enjoy things, which I guess is a standard question",
        ),
        _U: (
            "I lost interest in {show} after [season two|the first few episodes], it got boring",
            "I'm kind of bored of my playlist, any recommendations?",
            "I never really enjoyed [running|parties|clubbing] [anyway|tbh]",
            "I got bored of {game} [after a month|pretty quickly], it's too grindy",
            "I quit the book club because the schedule didn't work",
            "I'm not into {hobby}, it was never my thing",
        ),
    },
    "APPETITE_CHANGE": {
        _N: (
            "my appetite is [totally |]normal",
            "my appetite is fine, I eat the same as always",
            "I'm eating [fine|normally|three meals a day]",
            "my weight hasn't [changed|moved] [at all|in years]",
            "food isn't really an issue for me, I eat [like a horse|plenty]",
            "I eat [pretty |]normally, nothing weird there",
            "no appetite changes or anything like that",
        ),
        _O: (
            "{who} hasn't eaten properly since {his} [breakup|surgery|mom passed]",
            "{who} has lost [so much|a lot of] weight [recently|this year] and I'm worried",
            "{who} stress eats when {he}'s [anxious|studying|working late]",
            "I have to remind {who} to eat, {he} forgets for whole days",
            "{who} lost {his} appetite on the new meds and {he}'s so thin now",
        ),
        _P: (
            "I lost a lot of weight [during my divorce|in my first year of uni|when I was sick] "
            "but I've gained it back and I'm healthy now",
            "I used to binge [every night|a lot] in high school, but I haven't in years",
            "my appetite was weird on my old meds, it's back to normal now",
            "I had no appetite for a while [after the surgery|last spring], that's all sorted",
        ),
        _G: (
            "I read that [antidepressants|some meds] can make you gain weight, is that true?",
            "they say depression can [kill your appetite|make you eat more]",
            "people on this sub talk about not eating, it's so common apparently",
            "does anyone know if {meds} affects appetite?",
        ),
        _U: (
            "I ate [way too much|an entire] pizza [last night|on Friday] [lol|and regret nothing]",
            "I skipped lunch because of back-to-back meetings",
            "I'm trying to lose [a few pounds|weight] for [the wedding|summer], so I'm counting "
            "calories",
            "I was starving after [the gym|my shift|the hike]",
            "Thanksgiving leftovers had me in a food coma",
            "I've been meal prepping to save money",
            "I had no appetite [the day after|after] [the stomach bug|food poisoning], but I'm "
            "fine",
        ),
    },
    "SLEEP_ISSUES": {
        _N: (
            "my sleep is [actually |honestly |]fine [lately|these days|, weirdly]",
            "I sleep [like a rock|pretty well|a solid eight hours]",
            "sleep isn't the problem, I [sleep fine|get plenty]",
            "I fall asleep [easily|as soon as my head hits the pillow]",
            "no trouble sleeping at least",
            "I'm sleeping normally, [seven or eight hours|in bed by eleven]",
        ),
        _O: (
            "{who} sleeps [all day|until 3pm|14 hours] since {he} got laid off",
            "{who} has [terrible|awful] insomnia and texts me at [3am|4am]",
            "{who} snores so loud I can hear it through the wall",
            "{who} works nights so {he} sleeps during the day",
            "{who} can't sleep since the baby came and {he}'s a zombie",
        ),
        _P: (
            "I had [awful|bad] insomnia [in college|during finals|when I worked nights] but it's "
            "been fine since I [quit caffeine|changed jobs]",
            "I used to sleep 14 hours a day when I was really depressed, that's not a thing "
            "anymore",
            "my sleep was a mess [last year|during my thesis], it's way better now",
            "I went through a phase of waking up at 4 every day, it stopped after the move",
        ),
        _G: (
            "people say depression [makes you sleep a lot|messes with your sleep]",
            "[apparently|I read that] oversleeping can be a sign of depression",
            "how much sleep do you guys [actually |]get?",
            "is it true that screens before bed mess up your sleep?",
        ),
        _U: (
            "I stayed up [way |]too late [gaming|watching {show}|finishing a book] last night",
            "I slept in [on Sunday|this weekend] and it was glorious",
            "jet lag [wrecked|messed] me up for a couple of days after the trip",
            "my neighbors' party kept me up [until 2|half the night] last weekend",
            "I had to get up at 4 for my flight",
            "{pet_name} woke me up at 6 demanding breakfast",
            "I passed out early after [the wedding|the hike|moving day]",
        ),
    },
    "PSYCHOMOTOR": {
        _N: (
            "I'm [pretty |]calm [most of the time|physically], not restless or anything",
            "nobody's said I seem slow or anything",
            "I can sit through a [whole movie|three hour lecture] [no problem|fine]",
            "I'm not restless, [if anything|honestly] I'm just bored",
            "I don't pace or fidget, I'm pretty still",
            "I'm moving and talking like normal, nothing's changed there",
        ),
        _O: (
            "{who} can never sit still [for five minutes|at dinner]",
            "{who} paces when {he}'s on the phone",
            "{who} moves [really slowly|slower] since {his} [knee surgery|stroke|back injury]",
            "{who} is always fidgeting [in meetings|with {his} pen]",
            "{who} has been so agitated lately, {he} can't stay in one room",
        ),
        _P: (
            "I was [really |]restless on prednisone but it stopped when I came off it",
            "after my concussion I was slow for a few weeks, but I'm back to normal",
            "in high school I couldn't sit still at all, I grew out of it",
        ),
        _G: (
            "I didn't know slowed speech could be a symptom of depression until I read about it",
            "they say some people get agitated instead of sad",
            "apparently restlessness can be a side effect of some meds",
        ),
        _U: (
            "I couldn't sit still waiting for [the results|my interview|the test scores], but "
            "they came back fine",
            "I'm moving [slow|like a grandpa] after leg day",
            "I'm a slow [typer|walker|eater], always have been",
            "I was pacing the hallway waiting for my sister to get out of surgery",
            "I drank [way |]too much coffee and was jittery all morning",
            "I fidget with my rings when class gets boring",
        ),
    },
    "FATIGUE": {
        _N: (
            "my energy is [actually |][fine|pretty good|normal] [lately|most days]",
            "I'm not tired or anything, I get stuff done",
            "I have [plenty of|enough] energy [for work and the gym|most days]",
            "I still run [three|four] times a week, energy isn't the issue",
            "I'm not exhausted, just [bored|annoyed|restless about the future]",
        ),
        _O: (
            "{who} is [exhausted|tired] all the time [since {he} started chemo|from {his} night "
            "shifts]",
            "{who} has [long covid|mono|anemia] and can barely get off the couch",
            "{who} comes home [wiped out|completely drained] from {his} job every day",
            "{who} is so worn out from the new baby",
        ),
        _P: (
            "I was exhausted for [months|most of last year] [with mono|after covid|from anemia], "
            "but I'm back to normal now",
            "I had no energy before I got my thyroid sorted, that's fixed",
            "I used to be tired all the time on my old meds, not anymore",
        ),
        _G: (
            "people say depression makes you tired, [is that true|but I don't know]?",
            "everyone at work is tired, it's just crunch season",
            "apparently low vitamin D makes a lot of people tired in winter",
        ),
        _U: (
            "I was wiped out after [the 10k|the half marathon|a twelve hour shift]",
            "I'm [so |]tired from moving apartments but it was worth it",
            "two hours of sleep before the flight, I'm beat",
            "the hike [absolutely |]destroyed me, I was in bed by 9",
            "I was exhausted after helping my cousin move",
            "I'm tired of [my landlord's excuses|this group chat drama]",
        ),
    },
    "WORTHLESSNESS": {
        _N: (
            "I [actually |]feel pretty good about myself [most days|lately]",
            "I don't blame myself for [the breakup|any of it], it just didn't work out",
            "I know I'm good at my job",
            "I don't think I'm a bad person, I just made a dumb call",
            "my self esteem is [honestly |]fine",
            "I don't feel guilty about leaving, it was the right choice",
        ),
        _O: (
            "{who} [keeps saying|always says] {he}'s worthless and it breaks my heart",
            "{who} blames {himself} for {his} parents' divorce",
            "{who} feels like a failure since [losing {his} job|failing the bar]",
            "{who} thinks {he}'s a burden and I keep telling {him} {he}'s not",
        ),
        _P: (
            "I used to hate myself [in high school|as a teen], but therapy helped a lot",
            "after I got fired I felt like a failure for a while, but I'm over it now",
            "I carried a lot of guilt about [my grandma|the accident] for years, I've made peace "
            "with it",
        ),
        _G: (
            "my therapist says guilt is a normal part of grief",
            "I read that depression lies to you about your worth",
            "why do so many people feel like a burden when they're struggling?",
        ),
        _U: (
            "I felt [a bit |]guilty for eating the last slice of cake lol",
            "I felt like an idiot when I [locked my keys in the car|forgot my password again]",
            "I'm [useless|hopeless] at [cooking|parallel parking|math] lol",
            "I feel bad I forgot {friend}'s birthday, I'll make it up to {him}",
            "I failed my driving test [the first time|yesterday], oh well, I'll retake it",
        ),
    },
    "COGNITIVE_ISSUES": {
        _N: (
            "my focus is [fine|honestly fine|actually pretty good] [lately|at work]",
            "I can [still |]concentrate [fine|on work no problem]",
            "my memory is [fine|good|sharp as ever]",
            "I'm still [pretty |]decisive at work, it's not that",
            "I'm thinking clearly, no brain fog or anything",
        ),
        _O: (
            "{who} [forgets everything|can't remember anything] since {his} [stroke|accident|"
            "concussion]",
            "{who} can't focus without {his} ADHD meds",
            "{who} can never decide where to eat, it takes [forever|an hour]",
            "{who} has been so scatterbrained since the new job",
        ),
        _P: (
            "I had brain fog [after covid|on my old meds] for a while but it cleared up",
            "I couldn't focus at all before my ADHD diagnosis, the meds fixed that",
            "during my thesis year I couldn't concentrate on anything, it's fine now",
        ),
        _G: (
            "apparently depression can mess with your memory",
            "people say you can't concentrate when you're depressed",
            "is brain fog a real thing or just something people say?",
        ),
        _U: (
            "I can't decide [which laptop to buy|between two apartments|what to get my mom for "
            "her birthday]",
            "I forgot my password [again|for the third time]",
            "it's hard to focus with [the construction next door|my roommate's music]",
            "I [lost|forgot] my [keys|wallet] [again|at the gym] lol",
            "I zoned out during a boring meeting yesterday",
        ),
    },
    "SUICIDAL_THOUGHTS": {
        _N: (
            "I'm not suicidal, [just to be clear|before anyone asks|I want to be clear about that]",
            "I've never had thoughts of hurting myself",
            "I don't want to die, I just want things to [change|be different]",
            "no thoughts of self harm or anything, I'm safe",
            "I want to live, I [really |]do",
            "I'm not going to do anything to myself, I promise",
        ),
        _O: (
            "{who} [attempted|tried to kill {himself}] [last year|a few months ago] and I'm still "
            "scared for {him}",
            "{who} told me {he} [thinks about suicide|wants to die] and I don't know what to do",
            "{who} lost a friend to suicide last spring and it wrecked {him}",
            "I'm scared {who} is suicidal, {he} keeps giving stuff away",
        ),
        _P: (
            "I had suicidal thoughts [in high school|years ago|during my worst year], but I "
            "haven't in a long time",
            "a few years ago I was really suicidal, I'm in a much better place now",
            "I used to wish I wasn't alive, and I'm so glad I'm still here",
        ),
        _G: (
            "I saw a post about crisis lines and wrote down the number for a friend",
            "suicide rates [in my field|among vets] are [scary|insane]",
            "people who say suicide is selfish [have no idea|make me so mad]",
            "we had a suicide prevention training at work this week",
        ),
        _U: (
            "this [commute|class|heat] is killing me lol",
            "I'd die for a good [burrito|slice of pizza] right now",
            "I almost died laughing at something {friend} said",
            "I'm dying to see the new season of {show}",
            "my phone [died|is dead] [again|halfway through the day]",
            "I'd rather die than sit through another meeting like that lol",
            "if I have to hear that song one more time I'll die",
        ),
    },
}
"""Criterion symptom label -> kind -> hard-negative templates."""


def realize_confuser(
    symptom: str,
    kind: ConfuserKind,
    rng: random.Random,
    persona: Persona,
    *,
    continuing: bool,
) -> tuple[str, str]:
    """One hard-negative sentence (without final punctuation) and its explanation.

    Args:
        symptom: A criterion symptom label.
        kind: Why the sentence is not evidence.
        rng: The post's random generator.
        persona: The post's sticky slot values.
        continuing: Whether the sentence follows another one in its paragraph.

    Returns:
        ``(text, explanation)``.
    """
    body = render(rng.choice(CONFUSERS[symptom][kind]), rng, persona)
    roll = rng.random()
    if roll < 0.15 and continuing:
        body = rng.choice(CONTINUING_LEADS) + body
    elif roll < 0.28 and not body.endswith("?"):
        body = rng.choice(SHARED_LEADS) + body
    explanation = rng.choice(EXPLANATIONS[kind]).format(topic=TOPIC[symptom])
    return body, explanation[0].upper() + explanation[1:]
