"""What evidence of each criterion sounds like when someone writes about themselves.

Each criterion has *facets* (the directions DSM-5 allows: appetite loss and
overeating, insomnia and oversleeping, agitation and slowing seen by
others, passive death wishes and active thoughts …), and each facet has
*cores*: different ideas, images and concrete details, not one frame with
synonyms swapped in. A core is a clause in the writer's own voice, written
in the template language of :mod:`~psy_agents_noaug.data.corpus.templates`.

An evidence sentence is assembled from an optional lead-in (a hedge, a time
frame), a core, and an optional tail (a duration, a consequence): see
:func:`realize_evidence`. With about fifty cores per criterion, their inner
choices and the shared slots, each criterion has thousands of surface forms.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from psy_agents_noaug.data.corpus.connectives import (
    CONTINUING_LEADS,
    EVIDENCE_LEADS,
    EVIDENCE_TAILS,
    PRESENT_LEADS,
    SHARED_LEADS,
    TIME_TAILS,
)
from psy_agents_noaug.data.corpus.templates import Persona, render


@dataclass(frozen=True)
class Facet:
    """One way a criterion shows, e.g. oversleeping for SLEEP_ISSUES.

    Attributes:
        name: Short name, e.g. ``"hypersomnia"``.
        explanations: Annotator-style notes for a sentence of this facet.
        cores: Template clauses, each a distinct idea.
    """

    name: str
    explanations: tuple[str, ...]
    cores: tuple[str, ...]


EVIDENCE: dict[str, tuple[Facet, ...]] = {
    "DEPRESSED_MOOD": (
        Facet(
            "sadness",
            (
                "The writer describes persistent sadness.",
                "Reports feeling sad or down most days.",
                "Describes a low mood that does not lift.",
            ),
            (
                "I cry [in the shower|in my car before work|on the bus home|into my pillow] "
                "[almost every day|most nights|and I can't even say why]",
                "there's this heavy grey feeling that [sits on my chest|follows me around|"
                "never lifts] [from the moment I wake up|all day]",
                "I can't remember the last time I felt [genuinely|actually|properly] happy",
                "I'm sad [all the time|constantly|basically every day] and I "
                "[don't know why|can't explain it to anyone]",
                "I put on a smile at [work|school] and then [fall apart|break down|cry] "
                "the second I get home",
                "it feels like a dark cloud [follows me|is parked over my head] "
                "[everywhere|wherever I go]",
                "I've been [really |so |]down [lately|for weeks|since {event}]",
                "my mood has been [in the gutter|rock bottom|awful] [for months|since {month}]",
                "even on good days there's this sadness [underneath everything|"
                "humming in the background]",
                "I [tear up|start crying] over [stupid little things|commercials|nothing at all] "
                "now",
                "I wake up already feeling [miserable|defeated|sad] before anything has even "
                "happened",
                "there's an ache in my chest that [won't go away|never really leaves]",
                "I've been feeling [really |so |]low and it [won't lift|isn't going away]",
                "the sadness comes in waves and lately the waves [don't stop|just keep coming]",
                "I feel like I'm carrying something heavy [that no one else can see|around all "
                "day]",
                "I haven't felt okay in [months|a long time|almost a year]",
                "my default setting is just [sad|miserable|low] now",
                "I sit in the dark [a lot|most evenings] [just feeling awful|staring at nothing]",
                "I'm so tired of feeling this [sad|low|heavy]",
                "every morning I wake up with dread and this [bottomless|heavy] sadness",
                "I'm miserable [and I hide it from everyone|most of the time|and I'm good at "
                "hiding it]",
                "I get this sinking feeling [every evening|on Sunday nights|as soon as it gets "
                "dark] "
                "and it just stays",
                "I honestly can't stop crying [today|this week|lately]",
                "I'm depressed [again|and I know it|, I'm pretty sure]",
                "I've been in a really dark place [mentally|lately|since {event}]",
                "my chest feels tight with sadness [whenever I'm alone|most nights]",
                "I just feel [so |really |]sad and I can't shake it",
                "I'm [constantly|always|basically always] on the edge of tears",
                "I feel broken [inside|and I don't know how to fix it]",
                "it's like the color drained out of everything [around {month}|a few months ago]",
                "I feel like I'm drowning [and nobody can see it|most of the time]",
                "I'm so lonely it physically hurts, even when people are around",
                "my friends say I seem [sad|not myself|distant] and honestly they're right",
                "I keep having to leave the room [at work|at family dinners|in class] so people "
                "don't see me cry",
                "the heaviness hits the second I wake up and stays until I fall asleep",
                "I listen to sad songs on repeat because they're the only thing that matches "
                "how I feel",
            ),
        ),
        Facet(
            "emptiness",
            (
                "The writer describes feeling empty or numb.",
                "Reports emptiness, a form of depressed mood.",
            ),
            (
                "I feel [so |really |]empty [inside|all the time|most days]",
                "I feel numb, like I'm watching my life through [glass|a screen|a fogged up "
                "window]",
                "I feel like I'm just existing, not living",
                "most days I feel [hollow|empty|numb] inside",
                "I feel like a ghost [in my own life|walking around my apartment]",
                "I don't feel anything [anymore|most days], just [flat|empty|blank]",
                "it's like there's a hole in my chest where feelings used to be",
                "I go through [the whole day|every day|my shifts] on autopilot and feel nothing "
                "but empty",
            ),
        ),
        Facet(
            "hopelessness",
            (
                "The writer expresses hopelessness about the future.",
                "Describes hopelessness, part of a depressed mood.",
            ),
            (
                "everything feels [pointless|hopeless|grey|heavy] [lately|these days|"
                "and I can't shake it]",
                "I don't see things getting better [ever|for me|any time soon]",
                "I feel hopeless about [basically everything|the future|all of it]",
                "nothing feels like it's going to get better and I've kind of accepted that",
                "I feel hopeless, like there's no version of the future where I'm okay",
                "life feels [bleak|pointless|like one long grey day]",
                "the world looks [washed out|colorless|grey] to me [lately|these days]",
                "I keep thinking there's no way out of this [feeling|hole|place I'm in]",
                "I can't picture anything good happening to me [again|ever]",
            ),
        ),
    ),
    "ANHEDONIA": (
        Facet(
            "loss of interest",
            (
                "The writer has lost interest in activities they used to enjoy.",
                "Describes loss of interest in hobbies.",
                "Reports no longer caring about things that used to matter.",
            ),
            (
                "I used to [love|live for] {hobby} and now I can't even [be bothered|look at "
                "{hobby_gear}]",
                "I [stopped|quit] {hobby} [months ago|a while back] because it just feels like "
                "a chore now",
                "my {instrument} has been sitting in the corner collecting dust [for months|"
                "since spring]",
                "I have [zero|no] interest in [anything|stuff I used to love|the things I used "
                "to care about]",
                "I used to [read|devour] a book a week and I haven't [finished|opened] one "
                "[since {month}|in a year]",
                "sex [doesn't interest me|is the last thing on my mind] anymore and {partner} "
                "thinks it's about {him}",
                "I don't even want to [draw|paint|write] anymore and that used to be my whole "
                "thing",
                "I cancelled my [Netflix|gym membership|Spotify] because I haven't [used|touched] "
                "it in months",
                "I don't care about [my garden|my plants|my car] anymore and I used to spend "
                "every weekend on it",
                "I stopped going to the gym, not because I'm tired but because I just don't care",
                "I keep starting shows and never finishing them because I can't get into anything",
                "I used to be the one who planned every trip and now I couldn't care less where "
                "we go",
                "I sit down to [draw|play|write|practice] and just stare at it",
                "all my hobbies feel like [homework|chores|a job] now",
                "people ask what I do for fun and I genuinely don't have an answer anymore",
                "I haven't [touched|played] my {instrument} in [months|ages] and I don't even "
                "miss it",
                "I quit my [rec league|band|book club] because I couldn't fake caring anymore",
                "I have no desire to [do anything|go anywhere|see anyone] [lately|these days]",
                "my {game} friends keep asking why I stopped playing and I don't know what to "
                "tell them",
                "I used to love cooking for people and now I [can't be bothered|don't care]",
                "I've lost interest in [basically everything|pretty much everything|everything "
                "I used to like]",
                "my camera has been in its bag since {month}",
                "I used to get excited about new music every Friday and now I don't even check",
                "I don't care about anything anymore, not even the stuff I used to be obsessed "
                "with",
                "I stopped going to [my climbing gym|church|my dance class] and I don't miss it",
            ),
        ),
        Facet(
            "loss of pleasure",
            (
                "The writer can no longer enjoy things.",
                "Describes an inability to feel pleasure.",
                "Reports that nothing is enjoyable anymore.",
            ),
            (
                "nothing is fun anymore, not even {fun_thing}",
                "I boot up {game} and close it after five minutes because I feel nothing",
                "I don't look forward to anything [anymore|, not even weekends]",
                "music just sounds like noise to me now, even [my favorite bands|the stuff I "
                "loved in high school|{comfort}]",
                "my friends invite me out and I [always say no|make excuses] because I just "
                "don't care",
                "even {holiday} felt like nothing this year",
                "I scroll for hours but none of it is [interesting|fun], I'm just killing time",
                "I went to {event_fun} and felt nothing, I just wanted to go home",
                "it's like the part of my brain that enjoys things [switched off|is broken]",
                "I bought {new_thing} hoping it would make me excited and it did nothing",
                "things that used to make me happy [just don't|feel flat] now",
                "I can't remember the last time I [laughed at something|enjoyed anything]",
                "even hanging out with my best friend feels like going through the motions",
                "nothing [excites|interests|appeals to] me [anymore|these days]",
                "I skipped {event_fun} that I'd been excited about for months and didn't even "
                "feel bad",
                "I don't get that little spark of joy from anything [anymore|these days]",
                "good news doesn't [even register|make me happy] [anymore|, I just nod]",
                "it's like I'm watching other people have fun through a window [at parties|with "
                "my friends|at work]",
                "my birthday came and went and I felt [nothing|absolutely nothing]",
                "even {comfort} doesn't feel comforting anymore",
                "I go through the motions of {hobby} but there's no joy in it",
                "weekends used to be the best part of the week and now they're just empty time",
                "I laugh at jokes because I'm supposed to, not because anything is funny",
                "food, music, people, it all feels the same, like nothing",
                "my {pet} is the only thing I still feel anything for and even that is fading",
            ),
        ),
    ),
    "APPETITE_CHANGE": (
        Facet(
            "appetite loss",
            (
                "The writer reports a loss of appetite.",
                "Describes eating much less and losing weight.",
                "Reports poor appetite and weight loss.",
            ),
            (
                "I've lost [about |almost |]{weight} [without trying|since {month}|in the last "
                "{dur}]",
                "I forget to eat until [it's dark out|I get dizzy|my stomach hurts]",
                "food just doesn't appeal to me anymore, [even my favorites|even {food}]",
                "I [barely|hardly] eat [anything|more than a few crackers] [most days|anymore]",
                "my clothes are [hanging off me|falling off me|way too loose] [now|lately]",
                "I have to force myself to eat [a few bites|anything at all]",
                "the thought of food makes me [feel sick|nauseous] [lately|these days]",
                "I'm down to one meal a day [if that|on a good day]",
                "{relative} keeps commenting on how thin I've gotten",
                "I buy groceries and they just rot in the fridge because I'm never hungry",
                "I [haven't had|have had zero] appetite [in weeks|for a while now|since {event}]",
                "I sit down to eat and after [two|a few] bites I'm done",
                "I had to punch [a new hole|two new holes] in my belt [this month|since {month}]",
                "even when I'm hungry nothing sounds good, so I just don't eat",
                "I realized yesterday the only thing I'd eaten all day was [half a bagel|a banana|"
                "coffee]",
                "eating feels like a chore I can't be bothered with",
                "I don't feel hunger anymore, it's like that switch is off",
                "{doctor} pointed out I've dropped {weight} since my last visit",
                "I live on coffee and [the occasional granola bar|crackers] now",
                "food tastes like cardboard, so I mostly skip meals",
                "my stomach is always in knots so I can't eat much",
                "my appetite is just gone, I could go all day without eating and not notice",
                "I've been skipping [breakfast and lunch|meals] because I'm just not hungry",
            ),
        ),
        Facet(
            "appetite increase",
            (
                "The writer reports overeating and weight gain.",
                "Describes an increased appetite.",
                "Reports eating far more than usual.",
            ),
            (
                "I've gained [about |like |]{weight} [since {month}|in the last {dur}|without "
                "really noticing]",
                "I eat [until I feel sick|way past full] [almost every night|most nights] and I "
                "can't stop",
                "I'm [constantly|always] snacking even when I'm not hungry",
                "I order takeout [every night|almost every day] and eat the whole thing in one "
                "sitting",
                "none of my [jeans|work pants|clothes from last year] fit anymore",
                "I've been eating [so much|nonstop] [lately|since {event}] just to feel something",
                "I find myself in the kitchen at 2am eating whatever's there",
                "I go through a family size bag of chips [in one go|in an evening] now",
                "my appetite is out of control, I'm hungry all the time even right after eating",
                "food is the only thing that makes me feel okay so I eat [constantly|way too much]",
                "I hide wrappers so {roommate} won't see how much I've been eating",
                "I've had to buy bigger clothes [twice|a size up] this year",
                "I eat when I'm bored, when I'm sad, when I'm tired, basically always",
                "I crave [carbs|junk food|sweets] constantly, it's all I want",
                "I binge at night and then skip breakfast because I feel gross",
                "I used to eat pretty normally and now I'm grazing from morning to night",
                "I stepped on the scale and I'm up {weight} [since {month}|from last year]",
                "I keep eating even after I'm full, like my body doesn't register it",
                "my eating is all over the place, either nothing all day or everything at night",
                "{relative} asked if I was okay because I've put on so much weight",
                "my appetite has gone through the roof [lately|since {month}]",
                "I eat [a whole pizza|a whole tub of ice cream|two dinners] by myself most nights "
                "now",
            ),
        ),
    ),
    "SLEEP_ISSUES": (
        Facet(
            "insomnia",
            (
                "The writer describes insomnia.",
                "Reports trouble falling or staying asleep.",
                "Describes broken sleep and early waking.",
            ),
            (
                "I lie awake until {late_hour} [am|in the morning] [most nights|every night] "
                "staring at the ceiling",
                "I wake up at {early_hour} [every morning|on the dot] and can't get back to sleep",
                "I'm lucky if I get [three|four] hours [a night|of sleep]",
                "my brain won't shut off when I lie down, [it just replays everything|it goes a "
                "million miles an hour]",
                "I keep waking up [every hour|every couple of hours|at random times] [all night|"
                "through the night]",
                "I haven't slept properly in [weeks|months|ages]",
                "I watch the sky get light through my window [most mornings|more often than not]",
                "I go to bed at [10|11] and I'm still awake at {late_hour}",
                "my sleep is [a mess|completely wrecked|all over the place] [lately|right now]",
                "I take melatonin and it does nothing, I'm still up [half|most of] the night",
                "I wake up [anxious|with my heart racing|drenched in sweat] at {early_hour} and "
                "that's it for the night",
                "insomnia [is kicking my ass|has been brutal] [lately|this month]",
                "I can fall asleep fine but I wake up at {early_hour} and just lie there",
                "I haven't had a full night's sleep [in forever|since {month}|since {event}]",
                "I'm up [every night|all night] [scrolling|listening to podcasts] because I can't "
                "sleep",
                "it takes me [two|three] hours to fall asleep [every night|most nights]",
                "I've been getting [maybe|like] [four|five] hours a night for [weeks|a month|ages]",
                "I dread going to bed because I know I'll just lie there",
                "I wake up [more tired|worse] than when I went to sleep",
                "{partner} says I toss and turn all night [now|lately]",
                "the nights are the worst, I just can't sleep no matter what I try",
                "I wake up [several|like five] times a night [and check the clock every time|for "
                "no reason]",
                "I've tried [sleep hygiene|no screens|chamomile tea] and I still can't fall asleep",
                "most nights I'm awake until I hear [the birds|the garbage trucks|my neighbors "
                "leave for work]",
                "I can't sleep more than a couple hours at a time",
                "my fitbit says I'm getting [less than five|barely four] hours a night",
                "I doze off [at my desk|in meetings|on the bus] because I'm up all night",
            ),
        ),
        Facet(
            "hypersomnia",
            (
                "The writer describes sleeping far too much.",
                "Reports oversleeping (hypersomnia).",
            ),
            (
                "I [sleep|have been sleeping] [12|13|14] hours [a day|a night] and could still "
                "keep going",
                "I sleep through [my alarms|three alarms|every alarm] [all the time|now]",
                "I nap [after work|in the afternoon] and still sleep [ten|eleven] hours at night",
                "I've been sleeping [most of|half] the day away",
                "I can sleep for [an entire|a whole] weekend if no one wakes me",
                "I've started going to bed [right after work|at 7pm] and waking up the next day "
                "at noon",
                "sleep is the only escape so I sleep as much as I can",
                "I stay in bed [till|until] [2pm|noon|the afternoon] on days off and still want "
                "more sleep",
                "I've called in late [twice|three times] this month because I slept through "
                "everything",
                "my sleep schedule is completely flipped, I'm awake all night and sleep all day",
                "I could sleep [forever|all day], it never feels like enough",
                "I sleep so much [these days|lately] that I've lost whole weekends",
                "I've been passing out on the couch right after dinner and staying there until "
                "morning",
                "I keep hitting snooze for [an hour|two hours] every morning",
                "I slept [sixteen|fifteen] hours yesterday [and could have kept going|without "
                "meaning to]",
                "I go back to bed as soon as I get home [from class|from work]",
                "my days start at 3pm now because I just keep sleeping",
            ),
        ),
    ),
    "PSYCHOMOTOR": (
        Facet(
            "agitation",
            (
                "The writer describes restlessness and agitation.",
                "Reports being unable to sit still, noticed by others.",
            ),
            (
                "I can't sit still [lately|, I'm always up and pacing|for more than a few minutes]",
                "I pace [around my apartment|the hallway|my room] for hours [at night|without "
                "noticing]",
                "my leg won't stop bouncing under my desk and {coworker} keeps asking if I'm okay",
                "I pick at [the skin on my fingers|my nails|my cuticles] until they bleed "
                "[without realizing|these days]",
                "I feel like I'm crawling out of my skin [all day|most evenings]",
                "I keep getting up and sitting back down [during movies|at dinner|in class]",
                "I wring my hands [constantly|all the time] and {relative} pointed it out",
                "there's this restless energy in my body that won't let me settle",
                "I fidget [nonstop|so much] that people [have started to notice|comment on it]",
                "I can't stay in one [chair|spot|room] for more than a few minutes",
                "I [tap my fingers|click my pen] nonstop and {classmate} asked me to stop",
                "I've been so agitated I walk laps around the block just to burn it off",
                "I keep rubbing my hands on my jeans [over and over|without noticing]",
                "my whole body feels wound up, like I need to move all the time",
                "I rearrange the same shelf [three times a night|over and over] because I can't "
                "keep still",
                "I can't watch a show without getting up [every few minutes|a dozen times]",
                "I pull at my hair [when I'm sitting|during meetings] and don't even notice",
                "I've been so restless I can't get through a meal sitting down",
                "people at work say I seem [jittery|on edge|wired] all the time",
                "I'm so keyed up I can't stop walking around the kitchen",
                "my hands won't stop moving [even when I'm sitting|lately], I'm always fiddling "
                "with something",
                "{partner} says I've been pacing around the house at night",
            ),
        ),
        Facet(
            "slowing",
            (
                "The writer describes slowed movement or speech that others notice.",
                "Reports psychomotor slowing.",
            ),
            (
                "{partner} says I talk [so slowly|really slowly] now, like I'm [half asleep|in "
                "slow motion]",
                "everything I do is in slow motion, [even|like] brushing my teeth takes forever",
                "I take forever to answer when people talk to me, like the words are stuck",
                "{relative} asked if I was [on something|drunk|okay] because I was moving so slow",
                "my body feels like it's moving through [mud|wet cement|water]",
                "it takes me [an hour|forever] to get dressed because I move so slowly",
                "I've noticed my speech is [slower|flatter] and I leave these long pauses",
                "{boss} [said|mentioned] I seem sluggish and slow [in meetings|on calls]",
                "I walk so slowly now that people keep passing me [on the sidewalk|in the hall]",
                "my face feels frozen and my voice has gone [flat|quiet|monotone]",
                "getting up from the couch takes me [whole minutes|forever] [now|lately]",
                "my reactions are so slow, I keep dropping things because I don't move in time",
                "I sit [completely |]still for [hours|ages] without moving, just frozen",
                "my friends say I'm like a zombie and I move like I'm underwater",
                "I've slowed way down, {roommate} literally asked if I was sick",
                "it's like my body is on a delay, everything I do lags behind",
                "I noticed I shuffle when I walk now, [like an old man|and {relative} noticed too]",
                "{doctor} said I seem slowed down and my words come out like molasses",
                "people have to repeat themselves because I take so long to respond",
                "I talk at half speed and people finish my sentences for me",
                "{relative} said I barely move anymore, I just sit there",
                "my movements feel heavy and slow, like someone turned down my speed",
            ),
        ),
    ),
    "FATIGUE": (
        Facet(
            "fatigue",
            (
                "The writer reports constant fatigue.",
                "Describes a loss of energy nearly every day.",
                "Reports exhaustion that rest does not fix.",
            ),
            (
                "I'm [exhausted|wiped|drained] [all the time|constantly|no matter how much I "
                "sleep]",
                "showering feels like [running a marathon|climbing a mountain] [now|lately]",
                "I have [zero|no|absolutely no] energy [for anything|to do anything|lately]",
                "by [10am|lunch|noon] I'm [already |]completely drained",
                "I have to sit down [halfway through|in the middle of] [washing the dishes|"
                "cooking|brushing my teeth]",
                "my body feels like it's made of [lead|wet sand|concrete]",
                "even small things like [replying to a text|making toast|taking out the trash] "
                "wear me out",
                "I'm so tired that I come home and lie on the floor in my work clothes",
                "I've been running on empty for [weeks|months]",
                "my battery is always at like [5|10] percent",
                "it takes every bit of energy I have just to [get through the day|show up to work]",
                "I'm tired in a way that sleep doesn't fix",
                "my arms and legs feel heavy [all day|constantly|the moment I wake up]",
                "I don't have the energy to [cook|clean|shower|call {relative}] [most "
                "days|anymore]",
                "climbing the stairs to my apartment leaves me needing a break",
                "I've had to stop [going to the gym|my evening walks] because I just don't have "
                "it in me physically",
                "I'm worn out [by the time I get home|before the day even starts]",
                "everything takes so much effort [lately|right now]",
                "I'm physically exhausted every day even though I barely do anything",
                "I spend my days off lying on the couch because I'm too tired to move",
                "I get winded [doing laundry|walking to the mailbox|carrying groceries] [now|"
                "these days]",
                "I feel like I'm [dragging myself|trudging] through every single day",
                "my energy just isn't there [anymore|lately|no matter what I do]",
                "I used to work out five days a week and now [getting dressed|making breakfast] "
                "tires me out",
                "I've been too [tired|drained] to [see my friends|text anyone back] for weeks",
                "by the afternoon I can barely keep my eyes open [at work|in class]",
                "I'm so fatigued that {doctor} ran bloodwork and everything came back normal",
                "the laundry has been sitting there for a week because I don't have the energy "
                "to fold it",
                "my whole body [aches|feels heavy] with tiredness",
                "I'm tired all the time, like [bone-deep|soul-deep|down to my bones] tired",
                "I need a nap after [doing anything|going to the store|a phone call]",
                "I'm [always|permanently] exhausted and I've forgotten what having energy feels "
                "like",
                "every task takes so much energy it feels like wading through molasses",
                "I [cancel|keep cancelling] plans because I'm just too worn out",
                "{relative} thinks I'm lazy but I'm genuinely exhausted",
                "I have nothing left in the tank by [Wednesday|Tuesday] [most weeks|every week]",
                "I sit in my car for [twenty minutes|ages] after work because I'm too tired to "
                "go inside",
                "even talking feels like it takes too much energy [lately|sometimes]",
                "I've been drained [for months|since {event}] and coffee does nothing",
                "I'm running on fumes [every day|constantly]",
                "I get exhausted just thinking about [the day ahead|everything I have to do]",
                "I lie in bed after my alarm because I physically can't make myself get up",
                "I'm too tired to cook so it's cereal for dinner again",
                "walking {pet_name} around the block wipes me out now",
                "I have maybe two useful hours of energy a day and then I'm done",
            ),
        ),
    ),
    "WORTHLESSNESS": (
        Facet(
            "worthlessness",
            (
                "The writer expresses feelings of worthlessness.",
                "Describes self-hatred and very low self-worth.",
                "Reports seeing themselves as worthless or a failure.",
            ),
            (
                "I feel [completely |so |]worthless [lately|most of the time|, like I bring "
                "nothing to anyone]",
                "I'm a [burden|drain] on [everyone around me|my family|my friends]",
                "I hate myself [so much|more every day|and I can't stop]",
                "I'm a failure [at everything|as a daughter|as a son|as a person|, plain and "
                "simple]",
                "I feel like a fraud at work and it's only a matter of time before they find out",
                "I don't deserve [the people in my life|{partner}|anything good]",
                "I look at myself in the mirror and feel [disgusted|nothing but contempt]",
                "I'm [useless|pathetic|a waste of space]",
                "I apologize for everything because I feel like I'm always in the way",
                "I feel like I've wasted my whole life",
                "I'm so ashamed of who I've become",
                "I'm the disappointment of the family [and everyone knows it|, honestly]",
                "when people are nice to me I feel like I'm tricking them",
                "I'm {age} and have nothing to show for it, I'm such a failure",
                "I keep thinking I ruin [everything|everyone] I touch",
                "I feel like I'm not good enough for anyone or anything",
                "I feel like the worst [friend|daughter|son|partner|sister|brother] in the world",
                "my friends only keep me around out of pity, I'm sure of it",
                "I feel like I have no value as a person",
                "I'm convinced everyone [secretly |]can't stand me, and honestly I get why",
                "I call myself an idiot [in my head|out loud] [all day|constantly]",
                "I feel like I'm a bad person [deep down|at my core]",
                "I can't accept a compliment, it just feels like a lie",
                "I'm dead weight [at work|on my team|in this friendship]",
                "I feel like I don't deserve to be happy",
                "I'm just a [screwup|mess|loser], always have been",
                "I keep thinking I'm wasting {partner}'s time",
                "I feel worthless compared to [literally everyone|my siblings|my friends from "
                "school]",
                "I'm such a disappointment [to my parents|to myself]",
                "I feel like I'm taking up space other people deserve more",
                "nothing I do is ever good enough and I know it's because I'm not good enough",
                "I [think|know] I'm fundamentally [unlovable|broken as a person]",
                "my self worth is [nonexistent|at zero|in the floor]",
                "I feel like a complete failure [at life|compared to everyone my age]",
            ),
        ),
        Facet(
            "guilt",
            (
                "The writer describes excessive guilt.",
                "Reports inappropriate guilt and self-blame.",
            ),
            (
                "I replay every [mistake|stupid thing I've said] and feel sick with guilt",
                "I feel guilty [all the time|constantly] [even for things that aren't my fault|"
                "about things that happened years ago]",
                "I can't stop blaming myself for [the breakup|my parents' divorce|{event}]",
                "everything that goes wrong feels like my fault",
                "I feel guilty for [taking up space|existing|even asking for help]",
                "the guilt about [my mom|my dog|leaving my last job] eats at me every single day",
                "I go over every way I've let people down, over and over",
                "I feel so guilty about [how I treated my ex|missing my grandma's last visit|"
                "quitting] that it makes me feel sick",
                "I feel like I owe everyone an apology for being me",
                "I beat myself up over [the smallest things|every tiny mistake] [for days|"
                "constantly]",
                "I feel guilty even resting, like I haven't earned it",
                "I'm sure it's my fault {relative} is unhappy",
                "I still blame myself for what happened to {pet_name} and I can't let it go",
            ),
        ),
    ),
    "COGNITIVE_ISSUES": (
        Facet(
            "poor concentration",
            (
                "The writer describes poor concentration.",
                "Reports being unable to focus or think clearly.",
            ),
            (
                "I read the same [paragraph|page|email] [five|ten] times and nothing goes in",
                "I can't [concentrate|focus] [on anything|for more than a few minutes] [lately|"
                "anymore]",
                "my brain feels [foggy|like mush|like it's full of cotton] [all day|lately]",
                "I lose my train of thought in the middle of sentences [now|lately|all the time]",
                "I can't follow [lectures|meetings|conversations] anymore, my mind just drifts off",
                "my grades [dropped|are tanking] because I can't focus on [studying|anything]",
                "I've made [so many|a ton of] stupid mistakes at work because I can't think "
                "straight",
                "I can't even follow the plot of [a tv show|a movie] anymore",
                "I [start|open] [ten tabs|a task] and can't finish any of it because my focus "
                "keeps slipping",
                "it's like there's static in my head [all the time|that won't clear]",
                "my thoughts are [so slow|all jumbled|scattered] [lately|now]",
                "I've been missing [deadlines|assignments] because I just can't get my brain to "
                "work",
                "I stare at my screen for hours and get nothing done",
                "reading used to be easy and now I can't get through [a page|a chapter]",
                "my mind goes blank when someone asks me a question",
                "I can't hold a thought long enough to [finish it|write it down]",
                "I feel like I'm thinking through [fog|mud|a haze]",
                "{boss} asked if everything's okay because I keep [forgetting|messing up] simple "
                "tasks",
                "I can't concentrate long enough to [watch a video|read a text] all the way "
                "through",
                "my head is just so cloudy I can barely think",
                "I used to be sharp and now I feel [dumb|slow] all the time",
                "I've reread this post [like four times|a bunch] because I can't keep track of "
                "what I wrote",
                "I zone out [constantly|in the middle of conversations] and miss what people say",
                "studying is pointless because nothing sticks",
                "I can't focus on [work|my thesis|my code|my essays] for more than [five|ten] "
                "minutes at a time",
                "my brain feels like a browser with fifty frozen tabs",
                "I can't think clearly [anymore|lately|about anything]",
                "simple math at the register [trips me up|confuses me] now",
                "I've failed [two|three] quizzes because I couldn't concentrate during them",
            ),
        ),
        Facet(
            "indecision",
            (
                "The writer describes indecisiveness.",
                "Reports being unable to make decisions.",
            ),
            (
                "I stand in the [cereal|shampoo] aisle for [ten minutes|ages] because I can't "
                "decide",
                "even picking what to eat for dinner feels impossible [lately|]",
                "I can't make decisions [anymore|at all], even small ones",
                "I keep asking {partner} to decide everything because I just can't",
                "I've gotten so indecisive that [ordering food|replying to an email] takes forever",
                "decisions paralyze me, I just freeze and do nothing",
                "choosing what to wear in the morning takes me forever now",
                "I've had the same job application open for a week because I can't decide "
                "whether to send it",
            ),
        ),
        Facet(
            "forgetfulness",
            (
                "The writer describes memory lapses and mental fog.",
                "Reports forgetfulness affecting daily life.",
            ),
            (
                "I walk into rooms and forget why I'm there [constantly|all the time]",
                "my memory is [shot|garbage|terrible] [lately|these days], I forget things people "
                "told me an hour ago",
                "I forgot [my sister's birthday|a deadline|an appointment] [last week|twice this "
                "month] and I never used to forget things",
                "I can't remember what I did yesterday without checking my phone",
                "I keep putting my keys in weird places and forgetting where",
                "I burned [dinner|rice] twice this week because I forgot it was on the stove",
                "I have to write everything down or it's gone [in seconds|immediately]",
                "I keep forgetting [words|people's names] mid-sentence",
            ),
        ),
    ),
    "SUICIDAL_THOUGHTS": (
        Facet(
            "passive death wish",
            (
                "The writer expresses a passive wish to be dead.",
                "Describes wishing not to wake up.",
                "Reports thoughts of death without a plan.",
            ),
            (
                "I [wish|keep wishing] I could just [not wake up|go to sleep and not wake up]",
                "I think about [dying|death|not being here] [a lot|every day|more than I'd like "
                "to admit]",
                "sometimes I hope something happens to me on the way to [work|school|the store]",
                "I [really |honestly |just |]don't want to be alive anymore",
                "I [wouldn't mind|wouldn't care] if I [died|didn't wake up tomorrow]",
                "I'm [so |just |]tired of being alive",
                "I don't see the point in being alive [anymore|]",
                "I feel like dying would be [a relief|a mercy|easier than this]",
                "[some days |sometimes |]I wish I'd never been born",
                "I want to disappear [forever|, not like a vacation, like permanently|and never "
                "come back]",
                "I don't think I'll make it to [30|my next birthday] and honestly I'm okay with "
                "that",
                "I've been [fantasizing|daydreaming] about just not existing",
                "death sounds peaceful to me [right now|lately]",
                "if I found out I had [a month|weeks] to live I'd be relieved",
                "I keep picturing my own funeral[ and who would show up| and it doesn't even "
                "scare me|]",
                "I just want [it all|everything] to stop, permanently",
                "I don't want to kill myself but I wish I was dead",
                "I keep hoping I just won't wake up one [day|morning]",
                "I'm so done with [life|all of it|being alive]",
                "sometimes I drive [too fast|recklessly] and kind of hope I crash",
                "I don't want to die exactly, I just don't want to exist",
                "every night I [pray|hope] [this is the last day|I don't wake up]",
                "I'd rather be dead than keep feeling like this [for another year|forever|]",
                "I keep thinking [everyone|my family|{partner}] would be better off if I was gone",
            ),
        ),
        Facet(
            "suicidal ideation",
            (
                "The writer reports thoughts of suicide.",
                "Describes active suicidal ideation.",
                "Mentions thinking about ending their life.",
            ),
            (
                "I've been having thoughts of [ending it|killing myself|suicide] [again|lately|"
                "more and more]",
                "I've thought about how I would do it [and that scares me|more than once]",
                "I wrote a [note|letter] [last week|a while ago] and I keep it in my drawer",
                "the only thing keeping me here is [{pet_name}|my mom|my little sister]",
                "I've started thinking about who would get my stuff[ and who would take "
                "{pet_name}|]",
                "I've been planning and I'm scared of how calm I feel about it",
                "I think about killing myself [every day|most days|more often than not]",
                "I attempted [once|two years ago|in high school] and [lately|this month] those "
                "thoughts are back",
                "part of me wants to [end it|die] and part of me is scared of that part",
                "suicide feels like the only way out [sometimes|right now]",
                "I'm not sure how much longer I can keep going, I think about ending it a lot",
                "I stand by the window [sometimes|at night] and think about it",
                "I've been having dark thoughts about not being around anymore",
                "I said goodbye to [my friends|my cat|everyone] in my head last night",
                "I keep telling myself I'll hold on until [{holiday}|my sister's wedding] and then "
                "I don't know",
                "thoughts of suicide [come and go|won't leave me alone|are constant] [lately|right "
                "now]",
                "I've caught myself looking up stuff about suicide [late at night|on my lunch "
                "break]",
                "I have a plan and that's what scares me [the most|more than anything]",
            ),
        ),
    ),
}
"""Criterion symptom label -> its facets and their cores."""

STAY_WITH_FACET = 0.9
"""Chance a further evidence sentence keeps to the facet the post started with."""

CONSEQUENCES: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": (
        ", and I've stopped telling anyone about it",
        " and my friends have started to notice",
        ", and I hide it from everyone at work",
        " and I don't know how to explain it to {relative}",
        ", so I mostly stay in my room",
    ),
    "ANHEDONIA": (
        ", so my weekends are just empty",
        " and {friend} has stopped inviting me",
        ", so I just lie around scrolling",
        " and it makes me feel like a stranger to myself",
        ", so my {hobby_gear} just sits there",
    ),
    "APPETITE_CHANGE": (
        ", so {relative} keeps asking if I'm okay",
        " and my clothes don't fit right anymore",
        ", so I've stopped eating with {roommate}",
        " and {doctor} wants me to come back in a month",
    ),
    "SLEEP_ISSUES": (
        ", so I'm a zombie at work",
        " and I'm late to [class|work] all the time now",
        ", so I've basically given up on mornings",
        " and {partner} is getting frustrated with me",
        ", so I live on energy drinks",
    ),
    "PSYCHOMOTOR": (
        ", and people have definitely noticed",
        " and {relative} keeps asking what's wrong",
        ", so I've been avoiding meetings",
        " and it's getting embarrassing at work",
    ),
    "FATIGUE": (
        ", so the dishes just pile up",
        " and I've called in sick [twice|three times] this month",
        ", so my apartment is a disaster",
        " and my grades are slipping because of it",
        ", so I haven't been to the gym in ages",
    ),
    "WORTHLESSNESS": (
        ", so I don't even try anymore",
        " and I can't hear anything nice people say",
        ", so I keep pushing people away",
        " and it's ruining my relationship with {partner}",
    ),
    "COGNITIVE_ISSUES": (
        ", so I'm falling behind at [work|school]",
        " and {boss} has definitely noticed",
        ", so I've started writing everything on my hand",
        " and I'm scared I'll fail this semester",
    ),
    "SUICIDAL_THOUGHTS": (
        " and I haven't told anyone",
        ", and I don't know who to tell",
        " and it scares me how normal it feels",
        ", and I'm scared to say it out loud",
    ),
}
"""Per-criterion consequences that can end an evidence sentence."""

TLDR: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": (
        "I'm [sad|down] all the time",
        "I feel [so |]empty",
        "everything feels hopeless",
        "I'm [really |]depressed [again|and I don't know what to do]",
        "I cry every day",
        "I feel like I'm drowning",
    ),
    "ANHEDONIA": (
        "nothing is fun anymore",
        "I don't enjoy anything [anymore|]",
        "lost interest in {hobby} and everything else",
        "I don't care about anything I used to love",
        "I feel nothing doing stuff I used to love",
    ),
    "APPETITE_CHANGE": (
        "I [can't|barely] eat",
        "I've lost {weight} without trying",
        "I can't stop eating",
        "I've gained {weight} from stress eating",
        "no appetite [at all|for weeks]",
    ),
    "SLEEP_ISSUES": (
        "I can't sleep",
        "I sleep [12|14] hours a day",
        "I'm up until {late_hour} every night",
        "insomnia is [ruining my life|back]",
        "I wake up at {early_hour} every day",
    ),
    "PSYCHOMOTOR": (
        "I can't sit still",
        "people say I move and talk super slow now",
        "I pace all night",
        "everyone says I've slowed way down",
    ),
    "FATIGUE": (
        "I'm exhausted all the time",
        "[zero|no] energy",
        "always tired [no matter what|even after sleeping]",
        "I'm drained every single day",
    ),
    "WORTHLESSNESS": (
        "I feel worthless",
        "I hate myself",
        "I feel like a [failure|burden]",
        "I feel guilty about everything",
    ),
    "COGNITIVE_ISSUES": (
        "I can't focus on anything",
        "my brain is [fog|mush]",
        "I can't make decisions",
        "I keep forgetting everything",
    ),
    "SUICIDAL_THOUGHTS": (
        "I wish I wasn't here",
        "I keep thinking about ending it",
        "I don't want to be alive",
        "I think about dying a lot",
    ),
}
"""Short evidence phrases for a tl;dr line; a tl;dr that uses one is itself evidence."""


def cores(symptom: str) -> tuple[str, ...]:
    """Every core of a criterion, over all its facets.

    Example:
        >>> len(cores("PSYCHOMOTOR")) >= 40
        True
    """
    return tuple(core for facet in EVIDENCE[symptom] for core in facet.cores)


def realize_evidence(
    symptom: str,
    rng: random.Random,
    persona: Persona,
    *,
    continuing: bool,
    avoid: set[str] | None = None,
    lead: bool = True,
    tail_ok: bool = True,
    facets_used: dict[str, str] | None = None,
) -> tuple[str, str]:
    """One evidence sentence (without final punctuation) and its explanation.

    Args:
        symptom: A criterion symptom label, e.g. ``"FATIGUE"``.
        rng: The post's random generator.
        persona: The post's sticky slot values.
        continuing: Whether the sentence follows another one in its paragraph
            (then it may start with "also", "and", "plus" …).
        avoid: Cores already used in this post; the chosen core is added to it.
        lead: Whether a lead-in may go in front (not for the second half of a run-on).
        tail_ok: Whether a tail may go after it (not for the first half of a run-on).
        facets_used: Symptom -> the facet this post used first; a post mostly
            stays with it (someone who can't sleep rarely also oversleeps). Updated.

    Returns:
        ``(text, explanation)``.
    """
    facets = EVIDENCE[symptom]
    facet = rng.choices(facets, weights=[len(f.cores) for f in facets])[0]
    if facets_used is not None:
        first = facets_used.setdefault(symptom, facet.name)
        if first != facet.name and rng.random() < STAY_WITH_FACET:
            facet = next(f for f in facets if f.name == first)
    options = [c for c in facet.cores if avoid is None or c not in avoid] or list(facet.cores)
    core = rng.choice(options)
    if avoid is not None:
        avoid.add(core)
    body = vary(render(core, rng, persona), rng)
    # A core that already says when ("lately", "last week") takes no second time frame:
    # not "lately I can't sleep lately", not "most days I wrote a note last week".
    timed_core = bool(_TIME_WORDS.search(body) or _PAST.search(body))
    opening = _lead(rng, continuing) if lead else ""
    if timed_core and opening in PRESENT_LEADS:
        opening = rng.choice(EVIDENCE_LEADS)
    timed = timed_core or opening in PRESENT_LEADS
    tail = _tail(symptom, rng, timed=timed) if tail_ok else ""
    text = render(opening, rng, persona) + body + render(tail, rng, persona)
    return text, rng.choice(facet.explanations)


def vary(text: str, rng: random.Random) -> str:
    """Vary how the writer puts themselves in the sentence: "I feel" -> "I've been feeling".

    One phrase at most changes, with even odds of none; so a core's plain
    wording stays the most common one.

    Example:
        >>> import random
        >>> vary("I feel empty", random.Random(3)) in {
        ...     "I feel empty", "I've been feeling empty", "I kinda feel empty",
        ...     "I really feel empty", "I just feel empty", "I honestly feel empty"}
        True
    """
    if rng.random() < 0.5:
        return text
    hits = [(pattern, forms) for pattern, forms in _VARIANTS if pattern.search(text)]
    if not hits:
        return text
    pattern, forms = rng.choice(hits)
    return pattern.sub(rng.choice(forms), text, count=1)


# "I ..." phrases change only where a clause starts, not inside one ("the energy I have").
_VARIANTS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (
        re.compile(
            rf"(?:^|(?<=, )|(?<=and )|(?<=but )){phrase}\b"
            if phrase.startswith("I")
            else rf"\b{phrase}\b"
        ),
        forms,
    )
    for phrase, forms in (
        (
            "I feel",
            (
                "I've been feeling",
                "I kinda feel",
                "I really feel",
                "I just feel",
                "I honestly feel",
            ),
        ),
        ("I'm so", ("I'm just so", "I'm really", "I'm so so", "I am so")),
        ("I'm", ("I am", "I'm just", "I'm honestly", "I'm really")),
        ("I don't", ("I really don't", "I honestly don't", "I just don't", "I do not")),
        ("I can't", ("I just can't", "I literally can't", "I really can't", "I cannot")),
        ("I've been", ("I have been", "I've honestly been", "I've just been")),
        ("I keep", ("I keep on", "I just keep")),
        ("I have", ("I've got", "I literally have")),
        ("I wish", ("I really wish", "I honestly wish", "part of me wishes")),
        ("I think", ("I honestly think", "I kind of think", "I really think")),
        ("everything", ("literally everything", "basically everything")),
        ("all the time", ("constantly", "all the damn time", "24/7")),
    )
)
_PAST = re.compile(
    r"\b(last (week|night|month|year)|yesterday|ago|this week|went|wrote|said|asked|skipped|"
    r"bought|realized|forgot|burned|failed|attempted|pointed out|noticed|came and went|had to|"
    r"felt|was|were|did|slept|quit|stopped|cancelled|dropped|gained|lost|started|called in)\b"
)
_TIME_WORDS = re.compile(
    r"\b(lately|these days|right now|anymore|since|for months|for weeks|every day|most days|"
    r"every night|most nights|all the time|constantly|now|this year|this week|this month)\b"
)


def realize_tldr(symptom: str, rng: random.Random, persona: Persona) -> str:
    """A short evidence phrase for a tl;dr line, e.g. ``"I can't sleep"``."""
    return render(rng.choice(TLDR[symptom]), rng, persona)


def _lead(rng: random.Random, continuing: bool) -> str:
    roll = rng.random()
    if roll < 0.52:
        return ""
    if roll < 0.63 and continuing:
        return rng.choice(CONTINUING_LEADS)
    if roll < 0.76:
        return rng.choice(PRESENT_LEADS)
    if roll < 0.89:
        return rng.choice(EVIDENCE_LEADS)
    return rng.choice(SHARED_LEADS)


def _tail(symptom: str, rng: random.Random, *, timed: bool) -> str:
    """A tail; after a time-frame lead, never a second time frame."""
    roll = rng.random()
    if roll < 0.64:
        return ""
    if roll < 0.76 and not timed:
        return rng.choice(TIME_TAILS)
    if roll < 0.88:
        return rng.choice(EVIDENCE_TAILS)
    return rng.choice(CONSEQUENCES[symptom])
