"""Neutral life content: what long posts are mostly made of.

Real posts spend most of their words on context: the job, the roommate,
the trip, the landlord, the cat, the question for the subreddit. A model
that only ever sees symptom sentences learns that any long post is about
symptoms. These banks are grouped by topic so a post can stay on one
subject for a few sentences, the way people write; none of them says
anything about the writer's mood, sleep, energy, appetite, focus or worth.
"""

from __future__ import annotations

import random

from psy_agents_noaug.data.corpus.connectives import CONTINUING_LEADS, SHARED_LEADS, TIME_FRAMES
from psy_agents_noaug.data.corpus.templates import Persona, render

TOPICS: dict[str, tuple[str, ...]] = {
    "work": (
        "I work as {job} [at {workplace}|in {city}|part time|on weekends]",
        "I've been at this job for [about two years|eight months|almost five years|a year]",
        "{boss} [moved|changed] the schedule again so now I'm on [closing|opening|split] shifts",
        "we got a new [manager|scheduling system|CRM] at work and it's been chaos",
        "my team is [short staffed|down two people] [since {month}|this quarter]",
        "there's a reorg coming and nobody knows what it means yet",
        "I asked for a raise [last month|in my review] and they said maybe in the spring",
        "{coworker} keeps microwaving fish in the break room",
        "I have a performance review on {day}",
        "the pay is okay but the commute is [an hour each way|brutal|long]",
        "I've been applying to other jobs on the side",
        "I had an interview [last week|on {day}] for a [remote job|position at a hospital|role "
        "in {city}]",
        "{boss} is actually pretty decent, which is rare",
        "we have a big deadline at the end of the month",
        "my shift starts at [6|7|noon] most days",
        "I'm thinking about going back to school instead of staying in this job",
        "work wants us back in the office three days a week now",
        "{coworker} and I got lunch [on {day}|after the meeting] and talked about quitting",
        "I got moved to a different team in {month}",
        "the break room coffee machine has been broken for two weeks",
        "I'm covering for someone on leave so my hours are all over the place",
        "there was a fire drill in the middle of my presentation",
        "we had a team building thing with [escape rooms|bowling|a cooking class]",
        "my contract is up in {month} and I don't know if they'll renew it",
        "I finally got my certification [at work|last month|after two tries]",
    ),
    "school": (
        "I'm in my {school_year} year of {subject}",
        "I have [two|three] midterms [next week|in the same week]",
        "my group project partner hasn't answered a message in [days|a week]",
        "I switched my major to {subject} [last semester|this year]",
        "my professor posts the slides an hour before the lecture",
        "I'm doing my placement at a [school|clinic|firm] this term",
        "I have an essay due {day} that I haven't started",
        "the campus library is closing early for renovations",
        "I'm taking [five|four] classes and working part time",
        "my advisor wants me to pick a thesis topic by {month}",
        "our lab got new equipment and nobody knows how to use it",
        "I'm retaking [stats|organic chem|calc] this semester",
        "I applied for a scholarship and should hear back [soon|in {month}]",
        "my dorm is next to the dining hall which is convenient",
        "I joined a study group for [anatomy|physics|accounting]",
        "the semester ends in [three|five] weeks",
        "I got a [B|B+|C] on my last paper",
        "I've been tutoring [high schoolers|first years] for some extra cash",
        "finals schedule just came out and I have two on the same day",
        "I'm thinking about grad school but the applications are expensive",
    ),
    "housing": (
        "I live with [two|three] roommates in a [tiny|pretty old|basement] apartment",
        "{roommate} [never|rarely] does {his} dishes",
        "our landlord still hasn't fixed the [leak|heater|washing machine]",
        "the lease is up in {month} and I don't know if we're renewing",
        "{roommate} has {his} partner over basically every night",
        "I'm looking for a new place [closer to work|with in-unit laundry|that allows pets]",
        "rent went up [$150|another hundred bucks|10 percent] this year",
        "we have a chore chart now which is going about as well as you'd expect",
        "I moved back in with my parents [to save money|after the lease ended|in {month}]",
        "my upstairs neighbors [vacuum at midnight|have a very loud dog|play drums]",
        "{roommate} and I split groceries which mostly works",
        "I finally put up shelves in my room",
        "the building's elevator has been out for a week",
        "I'm subletting my room for the summer",
        "we found mice in the kitchen [again|last week]",
        "I have to be out of my apartment by the end of {month}",
        "{roommate} keeps eating my leftovers and denies it",
        "I repainted my room [green|a dark blue|off white] last weekend",
        "the heating bill this winter was ridiculous",
        "I'm the only one who ever takes out the recycling",
    ),
    "family": (
        "my parents are [visiting|coming down] [next month|for {holiday}]",
        "{relative} keeps asking when I'm going to [get married|settle down|buy a house]",
        "my little brother just started high school",
        "my sister had her baby in {month}, so I'm an aunt now",
        "we're planning my grandma's 80th birthday",
        "my parents are selling the house I grew up in",
        "I call {relative} every Sunday",
        "my dad is retiring at the end of the year",
        "{relative} is getting surgery on {his} [knee|hip] next week",
        "family group chat has been a war zone since the election",
        "I'm driving home for {holiday} [this year|for the first time in a while]",
        "my cousin is getting married in [{city}|the summer] and I'm a bridesmaid",
        "my parents got divorced when I was [ten|twelve|little]",
        "I'm the oldest of [three|four|five] kids",
        "my mom just learned how to use voice notes and sends them constantly",
        "we had a big family dinner [last weekend|for my dad's birthday]",
        "{relative} wants me to help with [the move|their taxes|the garden] this weekend",
        "my stepdad and I get along better than we used to",
        "my grandparents live in {city} and I visit when I can",
        "my brother borrowed my car and returned it with an empty tank",
    ),
    "hobbies": (
        "I've been getting into {hobby} [lately|this year|again]",
        "I signed up for a [pottery|climbing|salsa|woodworking] class",
        "I'm trying to learn [Spanish|Japanese|sign language] on Duolingo",
        "I've been doing a [puzzle|lego set|model kit] with like two thousand pieces",
        "I started a small [balcony garden|herb garden|sourdough starter]",
        "I joined a [running club|book club|choir|rec soccer team] [at work|near me]",
        "I bought a used [bike|film camera|sewing machine] off marketplace",
        "I've been learning {instrument} from YouTube videos",
        "I went to a [craft fair|record fair|comic con] [last weekend|on Saturday]",
        "I finished a [scarf|painting|short story] I'd been working on for months",
        "{friend} got me into [bouldering|birdwatching|board games]",
        "I've been thrifting a lot [lately|since {month}]",
        "I'm saving up for a [new lens|better guitar|drawing tablet]",
        "I'm [halfway through|rereading] a fantasy series that's like ten books long",
        "we started a D&D campaign [at work|with some friends] and I'm the DM",
        "I've been trying out new recipes from a cookbook I got for {holiday}",
        "I built a birdhouse with my dad",
        "I go to a pub quiz every {day} with some friends",
    ),
    "games": (
        "I've been playing a lot of {game} with [friends|my brother|people from Discord]",
        "I finally beat [that boss|the final boss|the DLC] in {game}",
        "my friends and I have a {game} night every {day}",
        "I'm stuck on a puzzle in {game}, does anyone know the trick?",
        "I just hit [diamond|plat|level 60] in {game}",
        "I bought {game} on sale and it's actually really good",
        "my Switch joycon has drift again",
        "I'm building a giant castle in Minecraft with {friend}",
        "I spent way too much on skins in {game} last month",
        "I've been replaying old games from when I was a kid",
        "my PC can barely run {game} on low settings",
        "we do a co-op run every weekend and it usually ends in chaos",
    ),
    "pets": (
        "I have a {pet} named {pet_name}",
        "{pet_name} [knocked my coffee off the table|chewed through a charger|learned to open "
        "the cupboard]",
        "I adopted {pet_name} from a shelter [two years ago|last spring|in {month}]",
        "{pet_name} had a vet appointment [on {day}|last week] and is totally fine",
        "my {pet} is obsessed with the [vacuum|window|laundry basket]",
        "I take {pet_name} to the park [every morning|after work|on weekends]",
        "{pet_name} has decided my keyboard is a bed",
        "the vet said {pet_name} needs to lose a bit of weight lol",
        "I'm thinking about getting a second {pet} so {pet_name} has company",
        "{pet_name} hates [baths|the mailman|thunderstorms] with a passion",
        "{roommate} is allergic to my {pet} which is a whole thing",
        "I spent {money} at the vet last month",
        "{pet_name} is the best part of my apartment honestly",
    ),
    "travel": (
        "I went to {city} [last month|in {month}|for a long weekend] to see [friends|family]",
        "my flight got delayed [four hours|overnight] and I spent the night at the gate",
        "we're planning a road trip [in the summer|for {holiday}] but haven't booked anything",
        "I went camping [last weekend|with my cousins] and it rained the whole time",
        "I'm going to a wedding in {city} in {month}",
        "the train ticket to see my parents is {money} now which is insane",
        "I visited {city} for the first time and loved it",
        "my passport expires in {month} so I need to renew it",
        "we rented a cabin for a few days [by a lake|in the mountains]",
        "I lost my luggage on the way back and it showed up three days later",
        "I'm saving for a trip to [Japan|Portugal|Mexico] next year",
    ),
    "weather": (
        "it's been raining here [for a week straight|nonstop] and the basement flooded",
        "it snowed [a foot|like ten inches] overnight and the buses stopped",
        "it's been [ninety|thirty five] degrees and my apartment has no AC",
        "the days are getting shorter and it's dark by [4:30|five]",
        "we finally got some sun [this weekend|after weeks of grey]",
        "there was a huge storm on {day} and the power went out",
        "pollen season is here and my eyes are a mess",
        "it's that time of year where it's freezing in the morning and hot by noon",
    ),
    "money": (
        "my car needs a new [transmission|set of tires|battery] and that's {money} I don't have",
        "I'm trying to pay off my credit card before {month}",
        "I finally started a budget spreadsheet",
        "my student loan payments start again in {month}",
        "I picked up [a second job|some shifts|freelance work] to cover rent",
        "I got a surprise bill for {money} from the dentist",
        "I'm saving for a deposit on an apartment",
        "groceries are so expensive right now",
        "I sold some old stuff online and made {money}",
        "I'm trying to figure out my taxes for the first time",
        "my phone screen cracked and the repair is {money}",
    ),
    "relationships": (
        "{partner} and I have been together for [two years|eight months|almost five years]",
        "{partner} [just started|is about to start] a new job in {city}",
        "we're thinking about moving in together [next year|when my lease ends]",
        "{partner} and I are doing long distance right now",
        "we had our anniversary [last week|in {month}] and went to a nice restaurant",
        "{partner}'s family is coming to visit and I'm nervous",
        "{partner} is really into [hiking|cooking|video games] and I'm slowly getting into it too",
        "we adopted a {pet} together [last year|in {month}]",
        "{partner} surprised me with concert tickets",
        "my ex texted me out of nowhere [last week|on my birthday]",
        "{partner} and I argue about whose turn it is to do laundry",
        "we're saving up for a trip to {city}",
    ),
    "friends": (
        "{friend} is moving to {city} [next month|in {month}]",
        "our group chat has been planning a trip for two years and it never happens",
        "I went to {friend}'s birthday [dinner|party] on {day}",
        "I met up with {friend} for coffee [last week|on {day}]",
        "{friend} just got engaged",
        "a bunch of us went bowling [on Friday|last weekend]",
        "{friend} and I have been friends since [middle school|first grade|college]",
        "I helped {friend} move into {his} new place",
        "{friend} got a puppy and sends me pictures every day",
        "we're doing a potluck at {friend}'s place on {day}",
        "I reconnected with an old friend from high school",
    ),
    "treatment": (
        "I've been on {meds} for about [six months|a year|two years]",
        "my therapist is on vacation [for two weeks|until {month}]",
        "I switched therapists in {month} because of scheduling",
        "my insurance only covers [eight|ten|twelve] therapy sessions a year",
        "I have a psychiatrist appointment [next week|on {day}]",
        "{doctor} wants to [adjust my dose|try something different] at the next appointment",
        "I finally found a therapist who takes my insurance",
        "my pharmacy keeps running out of {meds}",
        "I've been going to therapy [every other week|weekly] since {month}",
        "I'm on a waitlist for [a therapist|the clinic|group therapy] [near me|in {city}]",
        "{doctor} suggested I keep a journal between sessions",
        "I had bloodwork done [last week|on {day}] for my annual checkup",
        "my GP referred me to a counselor",
    ),
    "cooking": (
        "I made {food} from scratch on {day} and it actually turned out great",
        "I'm trying to cook more instead of getting takeout",
        "I bought an air fryer and I use it for everything",
        "{roommate} and I take turns cooking dinner",
        "I finally learned how to make my grandma's [soup|dumplings|bread]",
        "I burned the garlic bread [again|the second I looked away] lol",
        "we did a [taco night|pizza night|hotpot] with some friends",
        "I've been meal prepping on Sundays for work lunches",
        "I tried a new [ramen place|bakery|taco truck] near work",
        "my sourdough starter is finally alive",
    ),
    "tech": (
        "my laptop [died|crashed] in the middle of an assignment and I lost an hour of work",
        "I finally switched phones after [five|six] years",
        "the wifi in our building goes out every evening",
        "I've been trying to delete {app} from my phone",
        "my phone storage is full of screenshots I never look at",
        "I built my first PC last month",
        "I spent an hour on hold with my internet provider",
        "I deleted a bunch of apps to spend less time on my phone",
    ),
    "commute": (
        "my bus [was late|didn't show up|broke down] [again|on {day}] and I missed my first class",
        "I bike to work when it's not raining",
        "my commute is [forty minutes|an hour|two trains and a bus] each way",
        "someone backed into my car in the parking lot at {place}",
        "they're doing roadwork on my street so I have to take a detour",
        "I listen to podcasts on the way to work",
        "I finally got my driver's license [last month|on my third try]",
        "the train was so packed this morning I had to wait for the next one",
    ),
    "stress": (
        "I've been [really |so |]stressed about [money|the move|finals|this deadline] "
        "[lately|this month]",
        "I get [really |]nervous before [presentations|phone calls|job interviews], always have",
        "I was so [annoyed|mad|frustrated] at {roommate} [on {day}|last night] I had to go for a "
        "walk",
        "I'm [nervous|anxious] about [the interview|my review|meeting {partner}'s parents] next "
        "week",
        "honestly I'm proud of myself for [finally calling the landlord|asking for that raise|"
        "signing up for the class]",
        "the whole thing with {annoyance} has me [so frustrated|pretty stressed|annoyed]",
        "I'm excited but also kind of scared about [the new job|moving to {city}|the trip]",
        "I cried a little at [my cousin's graduation|the airport|the end of the movie], happy "
        "tears",
        "I get grumpy when I'm hungry, {partner} knows to feed me first",
        "I'm worried about [my grandma|{relative}|{pet_name}], [she|he]'s getting old",
        "I've been [a bit |]on edge waiting to hear back about [the apartment|the job|my visa]",
        "I snapped at {relative} on the phone and felt bad, so I called back and apologized",
        "work stress is the main thing right now",
        "I've been overthinking [the group chat|a text I sent|what I said at dinner] all day",
    ),
    "errands": (
        "I went to {place} [on {day}|this morning|after work]",
        "I have a dentist appointment [on {day}|next week]",
        "I renewed my [license|passport|library card] finally",
        "I returned like four packages at the post office",
        "I finally booked a haircut after putting it off for months",
        "I spent my Saturday doing laundry and cleaning the fridge",
        "I got my car inspected and it passed",
        "I need to buy a gift for my cousin's baby shower",
    ),
}
"""Topic -> neutral sentence templates."""

VIGNETTES: dict[str, tuple[tuple[str, ...], ...]] = {
    "work": (
        (
            "{boss} changed the schedule again",
            "now I'm closing [three|four] nights a week",
            "I asked if I could keep my Sundays and {he} said [we'll see|no promises]",
        ),
        (
            "we got a new manager in {month}",
            "[she|he]'s fine I guess, just really into spreadsheets",
            "every meeting is about metrics now",
        ),
        (
            "I had an interview on {day} for a [remote job|job at a hospital|role in {city}]",
            "it went okay, they said they'd get back to me in two weeks",
            "I'm trying not to get my hopes up",
        ),
        (
            "there's a guy at work who takes credit for everything",
            "last week he presented my slides like they were his",
            "I didn't say anything, which I'm annoyed at myself for",
        ),
        (
            "they announced layoffs at {workplace} [last month|in {month}]",
            "my team wasn't affected but two people I liked got cut",
            "it's been weird and quiet since",
        ),
        (
            "I finally asked for a raise",
            "{boss} said the budget is frozen until next year",
            "so I've started looking at other jobs, quietly",
        ),
        (
            "we're short staffed [again|this month]",
            "I've covered [four|five] extra shifts since {day}",
            "the overtime pay is nice at least",
        ),
        (
            "I work as {job}",
            "it's not what I thought I'd be doing at {age} but it pays the bills",
        ),
        (
            "so at work there's this new system for logging hours",
            "it's supposed to save time but it crashes every afternoon",
            "now we log everything twice, once in the system and once on paper",
            "{boss} says it'll be fixed by {month}",
            "nobody believes that",
        ),
        (
            "I got asked to train the new hire this week",
            "[she|he]'s nice, just very nervous",
            "I remember being like that my first month",
            "it's weird being the person who knows where everything is now",
        ),
        (
            "a customer yelled at me on {day} because we were out of something",
            "like full on yelling, in front of everyone",
            "{boss} came out and handled it, which honestly surprised me",
            "I got a free coffee out of it at least",
        ),
        (
            "there's a promotion opening up on my team",
            "I'm not sure if I want it",
            "it's more money but it's also way more meetings",
            "I have until {day} to decide if I'm applying",
        ),
        (
            "my coworker is leaving at the end of the month",
            "we've worked together since I started",
            "we're doing a little send-off thing at a bar near {workplace}",
        ),
    ),
    "school": (
        (
            "I have [two|three] exams next week",
            "one of them is [stats|organic chem|anatomy], which I've been dreading since the "
            "start of the semester",
            "the professor's practice exams don't even match the lectures",
        ),
        (
            "my group project is a disaster",
            "one guy hasn't answered a message in a week and another just rewrote my section "
            "without asking",
            "it's due {day}",
        ),
        (
            "I switched my major to {subject} [last year|this semester]",
            "my parents weren't thrilled",
            "I like it way more than what I was doing before though",
        ),
        (
            "I'm in my {school_year} year of {subject}",
            "I'm also working [twenty|fifteen] hours a week at {workplace}",
        ),
        (
            "my advisor wants a thesis proposal by {month}",
            "I have like three half ideas and none of them are good enough yet",
        ),
        (
            "I got my grades back for the midterm",
            "a [B|B minus|C plus], which is fine, not great",
            "I'll need to do better on the final",
        ),
        (
            "my professor for {subject} is kind of legendary for being tough",
            "half the class dropped after the first quiz",
            "I stayed because I need it for my degree",
            "it's going okay so far, better than I expected",
        ),
        (
            "I'm thinking about applying for a semester abroad",
            "there's a program in [Spain|Japan|the Netherlands] that counts toward my degree",
            "the application needs two references and an essay",
            "my parents think it's too expensive, which it kind of is",
        ),
        (
            "our lab partner situation is a mess",
            "there are three of us and only one of us knows how the equipment works",
            "it's not me",
        ),
        (
            "I have a presentation on {day}",
            "it's twenty minutes on a topic I picked at random in week one",
            "I've made the slides but haven't practiced at all",
        ),
    ),
    "housing": (
        (
            "our landlord still hasn't fixed the [heater|leak under the sink|washing machine]",
            "I've emailed him [three|four] times",
            "he keeps saying someone will come next week",
        ),
        (
            "{roommate} and I have been arguing about the dishes",
            "{he} says {he} does them at night but they're always there in the morning",
            "I'm not trying to be petty but it's getting ridiculous",
        ),
        (
            "our lease is up in {month}",
            "rent is going up [$150|$200|almost 10 percent]",
            "so I'm looking at places [further out|with roommates|closer to work] but everything "
            "is either tiny or expensive",
        ),
        (
            "I moved back in with my parents in {month} to save money",
            "it's fine mostly",
            "my mom still knocks before coming in which I appreciate",
        ),
        (
            "the people upstairs got a [dog|drum kit|treadmill]",
            "it's been loud every evening since",
            "I left a polite note and nothing changed",
        ),
        (
            "we found mice in the kitchen [last week|again]",
            "{roommate} screamed so loud the neighbors knocked",
            "the landlord sent someone to put down traps",
        ),
        (
            "we're moving apartments at the end of {month}",
            "the new place is smaller but it has a balcony and actual water pressure",
            "I've been packing a box a day",
            "I didn't realize how much random stuff I own",
        ),
        (
            "{roommate} wants to get a cat",
            "I'm not against it but our lease says no pets",
            "{he} thinks the landlord won't notice",
            "the landlord lives downstairs",
        ),
        (
            "the washing machine in our building broke [again|two weeks ago]",
            "so now I haul everything to the laundromat on {day}",
            "it's actually kind of peaceful, I bring a book",
        ),
    ),
    "family": (
        (
            "my parents are coming to visit for {holiday}",
            "which means cleaning the whole apartment and hiding the mess in my closet",
        ),
        (
            "{relative} called on {day} to ask about my plans for the summer",
            "{he} always asks like I have a five year plan",
            "I told {him} I'd think about it",
        ),
        (
            "my sister just had a baby",
            "I've been driving over on weekends to help out",
            "the baby is adorable and very loud",
        ),
        (
            "my dad is retiring at the end of the year",
            "he's already talking about buying a boat",
            "my mom is not on board with the boat",
        ),
        (
            "my grandma's 80th birthday is in {month}",
            "the whole family is flying in",
            "I'm in charge of the slideshow for some reason",
        ),
        (
            "my little brother is applying to colleges",
            "he keeps sending me his essays to read",
            "they're honestly pretty good",
        ),
        (
            "family group chat has been chaos since my uncle started sharing conspiracy videos",
            "my mom keeps trying to change the subject with pictures of her garden",
        ),
        (
            "my mom has been on a genealogy kick",
            "she found out we're apparently related to some guy who owned a bakery in the 1800s",
            "she's very proud of this",
            "she's planning a trip to go see the town",
        ),
        (
            "my brother and I aren't really talking right now",
            "it's over something stupid from {holiday}",
            "my parents keep trying to get us in the same room",
        ),
        (
            "{relative} is turning sixty this year",
            "we're trying to plan a surprise party",
            "{he} is impossible to surprise, {he} finds out about everything",
        ),
        (
            "my parents are getting a new dog",
            "they've sent me about forty pictures of puppies to vote on",
            "I voted for the ugliest one and they're considering it",
        ),
    ),
    "hobbies": (
        (
            "I signed up for a [pottery|climbing|woodworking] class in {month}",
            "I'm terrible at it but it's fun",
            "my first [bowl|attempt] looked like an ashtray",
        ),
        (
            "{friend} got me into [bouldering|board games|birdwatching]",
            "we go every {day} after work",
            "I'm not good yet but I'm getting better",
        ),
        (
            "I've been learning {instrument} from YouTube videos",
            "I can play like three songs badly",
            "{roommate} has been very patient about it",
        ),
        (
            "I started a balcony garden this spring",
            "the tomatoes are doing great and everything else died",
        ),
        (
            "I've been doing a two thousand piece puzzle",
            "it's been on the dining table for three weeks",
            "{pet_name} knocked half of it on the floor on {day}",
        ),
    ),
    "games": (
        (
            "I've been playing {game} with [friends|my brother|some people from Discord]",
            "we're terrible but it's fun",
            "last night we lost like six games in a row and couldn't stop laughing",
        ),
        (
            "I finally beat [the final boss|that one boss] in {game}",
            "it took me [forty|about twenty] tries",
            "I actually yelled when it died",
        ),
        (
            "my PC can barely run {game}",
            "I'm saving up for a new graphics card",
            "which at current prices means never",
        ),
        (
            "we have a game night every {day}",
            "it started with four of us and now it's like ten people",
        ),
        (
            "I've sunk way too many hours into {game} this month",
            "{friend} got me into it",
            "we play most nights after dinner",
            "I'm still terrible at it",
        ),
    ),
    "pets": (
        (
            "I have a {pet} named {pet_name}",
            "I adopted [her|him] from a shelter [two years ago|last spring]",
            "best decision I've made honestly",
        ),
        (
            "{pet_name} had a vet appointment on {day}",
            "everything's fine, just needs to lose a little weight",
            "the vet said to cut back on treats, which {pet_name} will not be happy about",
        ),
        (
            "{pet_name} has figured out how to open the cupboard",
            "I came home to cereal everywhere",
            "I'm buying child locks this weekend",
        ),
        (
            "{roommate} is allergic to {pet_name}",
            "we didn't know that when {he} moved in",
            "{he}'s been taking allergy pills and being a good sport about it",
        ),
        (
            "{pet_name} got out [on {day}|last week]",
            "I spent an hour walking around the block calling {pet_name}'s name",
            "turns out {pet_name} was under the neighbor's porch the whole time",
        ),
        (
            "I've been trying to train {pet_name} to stop [jumping on people|stealing "
            "socks|yelling at 6am]",
            "it's going badly",
            "the trainer says it takes time",
        ),
    ),
    "travel": (
        (
            "I went to {city} [last month|in {month}] to visit [friends|my cousin]",
            "it rained the whole time but we found a great [ramen place|bookstore|bar]",
        ),
        (
            "my flight home got delayed [four hours|overnight]",
            "I spent the night at the gate eating overpriced pretzels",
            "at least I finished my book",
        ),
        (
            "we're planning a road trip for the summer",
            "nobody can agree on where to go",
            "{friend} wants the coast and I want the mountains",
        ),
        (
            "I went camping with my cousins last weekend",
            "the tent leaked and someone forgot the marshmallows",
            "still a good time though",
        ),
        (
            "I'm going to {city} for a work thing in {month}",
            "it's three days of conferences and a dinner I can't get out of",
            "I'm trying to add a day at the end to actually see the city",
        ),
    ),
    "weather": (
        (
            "it's been raining here for a week straight",
            "our basement flooded a little on {day}",
            "everything smells like wet carpet now",
        ),
        (
            "it snowed like a foot overnight",
            "the buses stopped running so I walked to work",
            "my boots are not as waterproof as the box said",
        ),
        (
            "it's been [ninety|ninety five] degrees all week",
            "my apartment has no AC so I've been living in front of a fan",
        ),
        (
            "it's been so windy here",
            "our recycling bin ended up two streets away",
            "I found it on {day} next to a very confused neighbor's car",
        ),
    ),
    "money": (
        (
            "my car needs a new [transmission|set of tires|battery]",
            "the quote was {money}",
            "I'm going to have to put it on my credit card and deal with it later",
        ),
        (
            "I finally made a budget spreadsheet",
            "it turns out I spend a scary amount on takeout and subscriptions",
            "so I cancelled three of them on {day}",
        ),
        (
            "my student loan payments start again in {month}",
            "I've been trying to pick up extra shifts to get ahead of it",
        ),
        (
            "I got a surprise bill from the dentist for {money}",
            "apparently my insurance doesn't cover what they told me it covered",
            "I spent an hour on the phone and got nowhere",
        ),
        (
            "I did my taxes for the first time by myself",
            "it took an entire weekend and a lot of googling",
            "I'm getting {money} back which feels like a fortune",
        ),
        (
            "I've been trying the no-spend month thing",
            "I made it eleven days",
            "then I bought {new_thing} on sale, so",
        ),
    ),
    "relationships": (
        (
            "{partner} and I have been together for [two years|eight months|almost five years]",
            "{he} just started a new job in {city}",
            "so we're figuring out the long distance thing for now",
        ),
        (
            "{partner}'s parents are coming to visit next month",
            "I've only met them once",
            "{he} says they'll love me but {he} says that about everything",
        ),
        (
            "{partner} and I had our anniversary on {day}",
            "we went to the restaurant from our first date",
            "it's closed on Mondays now so we went on Tuesday",
        ),
        (
            "my ex texted me out of nowhere [last week|on my birthday]",
            "just a 'hey how are you'",
            "I haven't answered and I don't think I will",
        ),
        (
            "{partner} and I keep arguing about whose turn it is to do laundry",
            "we made a chart",
            "the chart has not solved anything",
        ),
        (
            "{partner} and I are trying to plan a trip for our anniversary",
            "{he} wants somewhere warm and I want somewhere with museums",
            "we've been going back and forth for two weeks",
            "at this point we'll probably end up at {his} parents' lake house again",
        ),
        (
            "I met {partner}'s friends for the first time on {day}",
            "I was nervous but they were really nice",
            "one of them is also into {hobby} so we talked about that for an hour",
        ),
        (
            "{partner} is learning to cook",
            "so far we've had pasta four nights in a row",
            "it's good pasta though",
        ),
    ),
    "friends": (
        (
            "{friend} is moving to {city} next month",
            "we've lived ten minutes apart since [high school|college]",
            "we're doing a going away thing on {day}",
        ),
        (
            "our group chat has been planning a trip for two years",
            "every time we get close someone can't afford it or can't get time off",
        ),
        (
            "{friend} just got engaged",
            "I'm really happy for {him}",
            "{he} asked me to be in the wedding which is a whole thing to plan",
        ),
        (
            "I reconnected with an old friend from high school",
            "we got coffee on {day} and talked for like three hours",
        ),
        (
            "{friend} is getting married in {month}",
            "I'm in the wedding party",
            "the bachelor weekend is in {city} and it's going to cost a fortune",
            "I said yes anyway",
        ),
        (
            "I've been trying to make new friends since moving to {city}",
            "it's harder as an adult than anyone tells you",
            "I joined a trivia team through an app and they're pretty fun",
        ),
        (
            "{friend} and I had a falling out a while ago",
            "we ran into each other at {place} last week",
            "it was awkward for about a minute and then kind of fine",
        ),
    ),
    "treatment": (
        (
            "I've been on {meds} for about [six months|a year]",
            "{doctor} wants to see me every couple of months to check in",
            "the appointments are short but fine",
        ),
        (
            "my therapist is on vacation for two weeks",
            "we have a session booked for the week after",
        ),
        (
            "I finally found a therapist who takes my insurance",
            "it took [four|five] months of calling around",
            "the first session is on {day}",
        ),
        (
            "my pharmacy keeps running out of {meds}",
            "I had to drive to three different locations last month",
            "the pharmacist said it's a supply issue",
        ),
        (
            "I had my yearly checkup on {day}",
            "{doctor} ordered the usual bloodwork",
            "results should be back next week",
        ),
        (
            "I started seeing a new therapist in {month}",
            "she does a lot of homework type stuff, worksheets and tracking",
            "I was skeptical but it's actually been useful",
        ),
        (
            "my insurance changed at the start of the year",
            "now my meds cost {money} a month instead of ten",
            "I spent a whole afternoon on the phone trying to sort it out",
            "the pharmacy found a coupon thing that helps a bit",
        ),
        (
            "{doctor} wants me to try a different dose of {meds}",
            "we're going to check in after six weeks",
            "I'm keeping a little log on my phone like {he} asked",
        ),
    ),
    "cooking": (
        (
            "I made {food} from scratch on {day}",
            "it took three hours and the kitchen was a disaster",
            "worth it though",
        ),
        (
            "I bought an air fryer",
            "I'm one of those people now",
            "I've made fries, wings and somehow a cake in it",
        ),
        (
            "I'm trying to learn my grandma's recipes before I forget them",
            "last week it was her soup",
            "mine tastes fine but not like hers",
        ),
        (
            "I tried making bread for the first time",
            "it came out flat and kind of dense",
            "{roommate} ate half of it anyway so I'm counting it as a win",
        ),
    ),
    "tech": (
        (
            "my laptop crashed in the middle of an assignment",
            "I lost about an hour of work",
            "I've turned on autosave for everything now",
        ),
        (
            "the wifi in our building goes out every evening around 8",
            "I've called the provider twice",
            "they keep telling me to restart the router",
        ),
        (
            "I finally replaced my phone after [five|six] years",
            "transferring everything took a whole afternoon",
        ),
    ),
    "commute": (
        (
            "my bus didn't show up [again|on {day}]",
            "I waited forty minutes in the cold and then walked",
            "I was late and {boss} made a whole thing of it",
        ),
        (
            "I started biking to work when the weather's okay",
            "it's faster than the bus honestly",
            "the hill at the end is brutal though",
        ),
    ),
    "errands": (
        (
            "I finally got my passport renewed",
            "the line was two hours",
            "the photo looks like a mugshot",
        ),
        (
            "I spent Saturday doing laundry and cleaning out the fridge",
            "I found a container of something from {month}",
            "I didn't open it, I just threw the whole thing out",
        ),
        (
            "I finally went to the DMV to sort out my license",
            "the line was out the door",
            "I forgot one document and have to go back {day}",
        ),
    ),
}
"""Topic -> short stories of a few sentences, told in order; they make long posts hang together."""

ONGOING: tuple[str, ...] = (
    "I've been [working doubles|picking up extra shifts|covering weekends]",
    "I've been saving for a trip to {city}",
    "I've been trying to cook more",
    "I've been watching {show} with {partner}",
    "{roommate} has been having people over a lot",
    "work has been [really busy|pretty chill|a lot]",
    "I've been looking at apartments [in {city}|closer to work]",
    "I've been talking to {friend} more",
    "I've been going to therapy every week",
    "I've been volunteering at an animal shelter",
    "I've been reading a lot of sci-fi",
    "I've been job hunting",
    "I've been helping {relative} with {his} new house",
    "it's been really busy at {workplace}",
    "I've been taking the long way home through the park",
    "I've been working from home",
    "I've been journaling on and off",
    "I've been on {meds}",
    "I've been doing a lot of overtime",
    "I've been teaching {pet_name} new tricks",
    "I've been trying to call {relative} more",
    "we've been renovating the kitchen",
)
"""Ongoing neutral activities; they take the same time frames ("lately", "since March")
that evidence sentences take, so a time frame never marks evidence."""

INTRO: tuple[str, ...] = (
    "I'm {age}{sex} and I work as {job}",
    "I'm {age} and in my {school_year} year of {subject}",
    "some background, I'm {age}, I live in {city} with {roommate}",
    "I'm {age2}, two kids, I work as {job}",
    "quick background: {age}{sex}, {subject} student, living with my parents",
    "I'm a {age} year old [guy|girl|student] from {city}",
    "for context I'm {age2} and I've been with {partner} for years",
    "I'm {age}{sex}, I just moved to {city} for work",
    "me: {age}, {subject} student, part time job at {workplace}",
    "so I'm {age} and I just graduated",
    "I'm {age2}{sex}, I live alone with {pet_name}, my {pet}",
)
"""Who the writer is: the first lines of many posts."""

QUESTIONS: tuple[str, ...] = (
    "has anyone else dealt with this?",
    "is this normal?",
    "what would you do in my situation?",
    "does anyone have advice?",
    "how do you guys deal with this?",
    "should I talk to my doctor about this?",
    "am I overreacting?",
    "does it get better?",
    "has anyone tried {meds}?",
    "how do I even bring this up with {relative}?",
    "what helped you?",
    "is it worth switching therapists?",
    "any tips for talking to {boss} about it?",
    "how do you know when it's time to ask for help?",
    "should I just tell {partner}?",
    "does anyone else feel weird posting here?",
)
"""Questions to the subreddit; they close many posts, symptom or not."""

COMMENTS: tuple[str, ...] = (
    "it's whatever",
    "so that's been fun",
    "we'll see how it goes",
    "not a big deal, just annoying",
    "I'm kind of excited about it actually",
    "honestly it's kind of funny looking back",
    "that's a whole other story",
    "long story",
    "I'm trying not to stress about it",
    "which, fine",
    "I don't mind it most of the time",
    "could be worse",
    "I'll figure it out",
    "my friends think it's hilarious",
    "but that's beside the point",
    "anyway, that's not really why I'm posting",
    "it's a small thing but it's been on my mind",
    "I know that sounds minor",
    "sorry, tangent",
    "I'm mostly just annoyed",
    "it worked out in the end",
    "it's fine, it's just a lot of logistics",
)
"""Neutral asides people drop between facts."""


def realize_filler(
    topic: str,
    rng: random.Random,
    persona: Persona,
    *,
    continuing: bool,
    used: set[str] | None = None,
) -> str:
    """One neutral sentence on ``topic`` (without final punctuation).

    Args:
        topic: A key of :data:`TOPICS`, ``"intro"`` or ``"question"``.
        rng: The post's random generator.
        persona: The post's sticky slot values.
        continuing: Whether the sentence follows another one in its paragraph.
        used: Templates this post already used; they are avoided while others
            remain, and the chosen one is added.
    """
    if topic == "intro":
        return render(_pick(INTRO, rng, used), rng, persona)
    if topic == "question":
        return render(_pick(QUESTIONS, rng, used), rng, persona)
    if rng.random() < 0.12:
        lead = render(rng.choice(TIME_FRAMES), rng, persona) if rng.random() < 0.6 else ""
        return lead + render(_pick(ONGOING, rng, used), rng, persona)
    body = render(_pick(TOPICS[topic], rng, used), rng, persona)
    roll = rng.random()
    if roll < 0.12 and continuing:
        return rng.choice(CONTINUING_LEADS) + body
    if roll < 0.18:
        return rng.choice(SHARED_LEADS) + body
    return body


def realize_vignette(
    topic: str, rng: random.Random, persona: Persona, used: set[str] | None = None
) -> list[str] | None:
    """A short story on ``topic``: its sentences in order, or ``None`` if all are used.

    Args:
        topic: A key of :data:`VIGNETTES`.
        rng: The post's random generator.
        persona: The post's sticky slot values (people named in the story
            keep their pronouns from one sentence to the next).
        used: Stories this post already told (by first line); updated.
    """
    stories = [v for v in VIGNETTES.get(topic, ()) if used is None or v[0] not in used]
    if not stories:
        return None
    story = rng.choice(stories)
    if used is not None:
        used.add(story[0])
    return [render(line, rng, persona, fresh=i == 0) for i, line in enumerate(story)]


def _pick(bank: tuple[str, ...], rng: random.Random, used: set[str] | None) -> str:
    if used is None:
        return rng.choice(bank)
    fresh = [t for t in bank if t not in used]
    choice = rng.choice(fresh or bank)
    used.add(choice)
    return choice
