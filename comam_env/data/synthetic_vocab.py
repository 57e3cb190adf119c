"""Word lists and sentence templates for the synthetic PersonaMem-style generator.

Kept apart from :mod:`comam_env.data.synthetic` so the generator logic stays
readable. Everything here is plain data (tuples and dicts of strings); changing
it changes generated datasets, so bump ``synthetic.GENERATOR_VERSION`` when you
edit it.

Design rules the generator relies on:

* Every topic has five *clusters* of two *items*. Items of one cluster share a
  *quality* (what the user likes about them); a persona's preference timeline
  for a topic visits distinct clusters, so stale and current preferences never
  share a quality.
* Every item, quality and reason has exactly two *wordings* whose distinctive
  content words differ. The paraphrase knob picks, for each option, either the
  wording the evidence used (paraphrase 0) or the other one (paraphrase 1).
* Fact templates come in two evidence/option pairs: option wording ``k``
  reuses the verb words of evidence wording ``k`` and shares none with the
  other one. The slot value (a place, an instrument, …) is the fact itself and
  appears in both.
* Option frames (``ACK_FRAMES`` …) share no content words with the user
  statement frames (``INITIAL_FRAMES`` …), so at paraphrase 1 the only shared
  words between an option and its evidence are slot values of facts.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Topics. items: ((wording0, wording1), (wording0, wording1)) per cluster; quality: 2 wordings.
# fact: evidence templates (2), option templates (2, "you ..."), values, decoy templates (2).
# --------------------------------------------------------------------------------------------

TOPICS: dict[str, dict] = {
    "music": dict(
        label="musicRecommendation",
        noun="music",
        clusters=(
            dict(quality=("improvised, laid-back grooves", "loose spontaneous rhythms"),
                 items=(("jazz", "swing and bebop records"), ("blues", "Delta slide guitar"))),
            dict(quality=("gentle acoustic storytelling", "quiet heartfelt ballads"),
                 items=(("folk music", "singer-songwriter tunes"), ("bluegrass", "fiddle-driven mountain songs"))),
            dict(quality=("pounding high-energy beats", "fast danceable bass drops"),
                 items=(("techno", "warehouse rave tracks"), ("house music", "club dance anthems"))),
            dict(quality=("grand orchestral drama", "sweeping symphonic scores"),
                 items=(("classical music", "Beethoven and Mozart"), ("opera", "arias sung by sopranos"))),
            dict(quality=("loud distorted guitars", "crunchy aggressive riffs"),
                 items=(("metal", "thrash bands"), ("punk rock", "three-chord garage anthems"))),
        ),
        fact=dict(
            evidence=("I finally learned to play the {v}", "I've been practicing the {v} every evening"),
            option=("you learned to play the {v}", "you practice the {v} every evening"),
            values=("ukulele", "cello", "harmonica", "trumpet", "violin", "drums", "mandolin", "accordion"),
            decoy=("my roommate just bought a {v} she never touches", "my uncle keeps talking about selling his {v}"),
        ),
        ack_query="Do you remember what kind of music I'm into these days?",
        rec_query="Any ideas for what I should listen to this weekend?",
        rec_frame="How about a weekend playlist packed with {x}?",
        scenario="I have a long train ride coming up. What sort of soundtrack should I put on?",
        recall_query="I was just reminiscing about music and some of my own little milestones.",
    ),
    "movies": dict(
        label="movieRecommendation",
        noun="movies",
        clusters=(
            dict(quality=("edge-of-your-seat suspense", "nail-biting tension"),
                 items=(("thrillers", "mind-game crime pictures"), ("horror films", "slasher flicks"))),
            dict(quality=("big laughs and silly banter", "goofy lighthearted jokes"),
                 items=(("comedies", "sitcom-style romps"), ("romantic comedies", "meet-cute love stories"))),
            dict(quality=("real stories about real people", "factual eye-opening journalism"),
                 items=(("documentaries", "nonfiction features"), ("biopics", "true-life dramatizations"))),
            dict(quality=("spectacular worlds and visual effects", "imaginative otherworldly spectacle"),
                 items=(("science fiction", "space operas"), ("fantasy epics", "dragon-and-wizard sagas"))),
            dict(quality=("slow, thoughtful character drama", "quiet reflective portraits"),
                 items=(("arthouse cinema", "indie festival films"), ("black-and-white classics", "old Hollywood pictures"))),
        ),
        fact=dict(
            evidence=("I volunteer at the {v} film festival every year", "I help out as an usher at the {v} film festival"),
            option=("you volunteer at the {v} film festival every year", "you help out as an usher at the {v} film festival"),
            values=("Harbor", "Riverside", "Lakeview", "Northgate", "Summit", "Oakwood", "Silverpine", "Meadowbrook"),
            decoy=("my sister got tickets for the {v} film festival", "a colleague of mine organizes the {v} film festival"),
        ),
        ack_query="Do you remember what kind of movies I'm drawn to lately?",
        rec_query="What should I watch on Friday night?",
        rec_frame="How about a cozy Friday lineup of {x}?",
        scenario="I'm hosting a small get-together next Friday. What sort of film should we put on?",
        recall_query="Movies have been on my mind again, along with a few things I do around them.",
    ),
    "books": dict(
        label="bookRecommendation",
        noun="books",
        clusters=(
            dict(quality=("clever puzzles and whodunit twists", "intricate clue-solving plots"),
                 items=(("mystery novels", "detective paperbacks"), ("true crime books", "real murder-case accounts"))),
            dict(quality=("sweeping epic imagination", "magical invented realms"),
                 items=(("fantasy novels", "sword-and-sorcery series"), ("science fiction novels", "futuristic space stories"))),
            dict(quality=("practical lessons to apply", "useful actionable advice"),
                 items=(("self-help books", "personal growth guides"), ("business books", "entrepreneur memoirs"))),
            dict(quality=("lyrical, beautiful language", "poetic elegant prose"),
                 items=(("literary fiction", "prize-winning serious novels"), ("poetry collections", "verse anthologies"))),
            dict(quality=("vivid journeys into the past", "richly detailed bygone eras"),
                 items=(("historical fiction", "period novels"), ("history books", "scholarly chronicles of empires"))),
        ),
        fact=dict(
            evidence=("I joined a book club that meets at the {v}", "my reading group gathers monthly at the {v}"),
            option=("you joined a book club that meets at the {v}", "your reading group gathers monthly at the {v}"),
            values=("library", "bakery", "community center", "bookstore cafe", "museum lobby", "wine bar",
                    "park pavilion", "old train station"),
            decoy=("my neighbor runs a poetry night at the {v}", "my cousin found a quiet reading spot at the {v}"),
        ),
        ack_query="Do you remember what kind of books I've been reaching for lately?",
        rec_query="I need something new to read. What would you pick for me?",
        rec_frame="How about starting a fresh stack of {x}?",
        scenario="I'm packing for a week at a lake house. What kind of reading should I bring?",
        recall_query="I was thinking about books and my own reading life earlier today.",
    ),
    "travel": dict(
        label="travelPlanning",
        noun="travel",
        clusters=(
            dict(quality=("sun, sand and slow days", "lazy warm seaside afternoons"),
                 items=(("beach resorts", "tropical island getaways"), ("cruises", "ocean liner voyages"))),
            dict(quality=("fresh air and rugged trails", "wild outdoor adventure"),
                 items=(("hiking trips", "backpacking treks"), ("camping", "tent nights under the stars"))),
            dict(quality=("museums, cafes and busy streets", "lively urban culture"),
                 items=(("city breaks", "metropolitan weekend jaunts"), ("food tours", "street-market tasting walks"))),
            dict(quality=("snowy peaks and cozy lodges", "wintry alpine scenery"),
                 items=(("ski holidays", "snowboarding getaways"), ("northern lights tours", "aurora-chasing expeditions"))),
            dict(quality=("peace, quiet and unhurried days", "calm slow-paced downtime"),
                 items=(("farm stays", "agritourism homesteads"), ("cottage rentals", "cabin hideaways in villages"))),
        ),
        fact=dict(
            evidence=("I visited {v} last year", "I spent two weeks wandering around {v}"),
            option=("you visited {v} last year", "you spent two weeks wandering around {v}"),
            values=("Lisbon", "Kyoto", "Reykjavik", "Marrakesh", "Vancouver", "Prague", "Buenos Aires", "Cape Town"),
            decoy=("my coworker just got back from {v}", "my brother keeps sending me photos from {v}"),
        ),
        ack_query="Do you remember what kind of trips I enjoy these days?",
        rec_query="I have some vacation days to use. What kind of trip would you suggest?",
        rec_frame="How about booking one of those {x} for your time off?",
        scenario="I have five free days in early spring. What kind of trip should I plan?",
        recall_query="I was daydreaming about travel and places I've been.",
    ),
    "food": dict(
        label="foodRecommendation",
        noun="food",
        clusters=(
            dict(quality=("bold fiery heat", "tongue-tingling chili spice"),
                 items=(("spicy Sichuan dishes", "mapo tofu and dan dan noodles"), ("Mexican food", "tacos and enchiladas"))),
            dict(quality=("fresh, light and green", "crisp wholesome produce"),
                 items=(("vegan cooking", "plant-based meals"), ("salad bowls", "grain-and-greens lunches"))),
            dict(quality=("rich comfort and hearty portions", "warm filling home cooking"),
                 items=(("Italian pasta", "lasagna and risotto"), ("slow-cooked stews", "braised casseroles"))),
            dict(quality=("delicate, precise flavors", "subtle refined craftsmanship"),
                 items=(("sushi", "nigiri and sashimi"), ("French pastry", "croissants and eclairs"))),
            dict(quality=("smoky grilled char", "flame-kissed outdoor cooking"),
                 items=(("barbecue", "smoked brisket and ribs"), ("kebabs", "skewered grilled meats"))),
        ),
        fact=dict(
            evidence=("I grow my own {v} on the balcony", "there's a pot of {v} thriving on my windowsill"),
            option=("you grow your own {v} on the balcony", "there's a pot of {v} thriving on your windowsill"),
            values=("basil", "mint", "rosemary", "thyme", "parsley", "cilantro", "chives", "oregano"),
            decoy=("my mother swears by adding {v} to everything", "a friend gave me a bag of dried {v} once"),
        ),
        ack_query="Do you remember what kind of food I'm craving these days?",
        rec_query="What should I cook for dinner this week?",
        rec_frame="How about planning a few dinners around {x}?",
        scenario="I'm cooking for my own birthday dinner. What sort of menu would suit me?",
        recall_query="I was thinking about food and my little kitchen habits.",
    ),
    "fitness": dict(
        label="fitnessConsultation",
        noun="fitness",
        clusters=(
            dict(quality=("steady endurance over long distances", "stamina built mile after mile"),
                 items=(("running", "jogging long loops"), ("cycling", "road bike rides"))),
            dict(quality=("calm, flexibility and breathing", "mindful stretching and balance"),
                 items=(("yoga", "vinyasa flows"), ("pilates", "reformer classes"))),
            dict(quality=("raw strength and heavy lifts", "building muscle with weights"),
                 items=(("weightlifting", "barbell training"), ("crossfit", "high-intensity circuit workouts"))),
            dict(quality=("team spirit and friendly competition", "playing alongside teammates"),
                 items=(("soccer", "five-a-side football"), ("basketball", "pickup hoops games"))),
            dict(quality=("low-impact rhythmic movement in water", "gentle full-body aquatic exercise"),
                 items=(("swimming", "lap sessions at the pool"), ("rowing", "kayak paddling"))),
        ),
        fact=dict(
            evidence=("I finished my first {v} this spring", "I crossed the finish line of a {v} a few months ago"),
            option=("you finished your first {v} this spring", "you crossed the finish line of a {v} a few months ago"),
            values=("half marathon", "triathlon", "charity ride", "mud run", "swim relay", "ultramarathon",
                    "duathlon", "trail relay"),
            decoy=("my gym buddy is training for a {v}", "my manager bragged about her {v} all week"),
        ),
        ack_query="Do you remember what kind of exercise I'm into these days?",
        rec_query="Can you suggest a workout plan for next week?",
        rec_frame="How about scheduling three sessions of {x} next week?",
        scenario="I'm joining a new gym next month. What kind of classes should I sign up for?",
        recall_query="I was thinking about fitness and what I've managed so far.",
    ),
    "finance": dict(
        label="financialConsultation",
        noun="investing",
        clusters=(
            dict(quality=("safety and predictable returns", "low-risk stability"),
                 items=(("high-yield savings accounts", "certificates of deposit"), ("government bonds", "treasury notes"))),
            dict(quality=("long-term growth with broad diversification", "hands-off wealth building over decades"),
                 items=(("index funds", "passive ETFs"), ("retirement accounts", "pension contributions"))),
            dict(quality=("high risk for a big upside", "speculative chances at huge gains"),
                 items=(("cryptocurrency", "bitcoin and altcoins"), ("picking individual stocks", "day trading tech shares"))),
            dict(quality=("tangible assets to hold", "physical property value"),
                 items=(("real estate", "rental apartments"), ("gold bullion", "precious metal coins"))),
            dict(quality=("values-driven investing", "supporting causes close to my heart"),
                 items=(("sustainable ESG funds", "green impact portfolios"), ("community microloans", "peer-to-peer lending to small businesses"))),
        ),
        fact=dict(
            evidence=("I opened a savings account for {v}", "I've been setting aside part of every paycheck for {v}"),
            option=("you opened a savings account for {v}", "you've been setting aside part of every paycheck for {v}"),
            values=("a new car", "a house deposit", "a wedding", "a sabbatical", "a child's tuition",
                    "an emergency fund", "a home studio", "a dream trip"),
            decoy=("my friend is saving up for {v}", "my accountant mentioned a client saving for {v}"),
        ),
        ack_query="Do you remember how I like to handle my money these days?",
        rec_query="I have a bit of spare cash each month. Where should it go?",
        rec_frame="How about putting a monthly amount into {x}?",
        scenario="I just got a small bonus at work. What should I do with it?",
        recall_query="I was going over my finances and my savings plans.",
    ),
    "home": dict(
        label="homeDecoration",
        noun="home decor",
        clusters=(
            dict(quality=("clean lines and empty space", "uncluttered simplicity"),
                 items=(("minimalist decor", "Scandinavian furniture"), ("Japandi style", "low wooden platforms and paper lamps"))),
            dict(quality=("warm vintage character", "nostalgic lived-in charm"),
                 items=(("mid-century modern pieces", "teak sideboards from the sixties"), ("antiques", "flea-market heirlooms"))),
            dict(quality=("lots of green and natural light", "leafy sunlit rooms"),
                 items=(("houseplants", "hanging ferns and monsteras"), ("boho decor", "rattan and macrame"))),
            dict(quality=("bold colors and statement pieces", "loud vibrant patterns"),
                 items=(("maximalist interiors", "jewel-toned wallpaper"), ("art deco", "gilded geometric glamour"))),
            dict(quality=("raw materials and exposed structure", "rugged unfinished textures"),
                 items=(("industrial lofts", "exposed brick and steel"), ("rustic farmhouse style", "reclaimed barn wood"))),
        ),
        fact=dict(
            evidence=("I repainted my {v} last month", "I spent a weekend redoing the walls of my {v}"),
            option=("you repainted your {v} last month", "you spent a weekend redoing the walls of your {v}"),
            values=("kitchen", "hallway", "bathroom", "bedroom", "study", "porch", "garage", "living room"),
            decoy=("my landlord wants to renovate the {v} downstairs", "my friend ruined her {v} with a paint spill"),
        ),
        ack_query="Do you remember what style I'm going for at home these days?",
        rec_query="I want to refresh my apartment a bit. Any ideas?",
        rec_frame="How about bringing in a few {x} to refresh your rooms?",
        scenario="I'm redoing my guest room. Which direction should I take it?",
        recall_query="I was looking around my place and thinking about my home projects.",
    ),
}

# --------------------------------------------------------------------------------------------
# Reasons for preference updates: two wordings each, no shared distinctive content words.
# --------------------------------------------------------------------------------------------
REASONS: tuple[tuple[str, str], ...] = (
    ("it helps me unwind after long shifts", "it lets me decompress once the workday ends"),
    ("my partner got me hooked on it", "my significant other introduced me to it"),
    ("my doctor suggested I change my routine", "a physician recommended a different habit"),
    ("I moved to a new city with different options", "relocating opened up fresh possibilities nearby"),
    ("money has been tight lately", "my budget shrank this year"),
    ("I wanted something more social", "I craved more time around other people"),
    ("I got bored of doing the same thing", "repetition started to feel stale"),
    ("a close friend kept recommending it", "my best buddy wouldn't stop praising it"),
    ("I have less free time since the new job", "the promotion ate up my evenings"),
    ("it fits better with my kids' schedule", "it works around the children's routines"),
    ("I read an article that changed my mind", "a magazine piece convinced me otherwise"),
    ("I want to challenge myself more", "pushing my limits matters to me now"),
    ("it reminds me of my grandmother", "it brings back memories of my late grandma"),
    ("I've been trying to reduce stress", "calming my anxiety became a priority"),
    ("I started caring about the environment", "sustainability became important to me"),
    ("a bad experience put me off", "one disappointing incident soured me"),
    ("my sleep schedule changed", "I became an early riser"),
    ("I joined a club that does it", "a local group I signed up for practices it"),
    ("a podcast episode inspired me", "an interview I heard sparked my enthusiasm"),
    ("my back injury forced a change", "a spine problem made me adapt"),
    ("I wanted more quiet time to myself", "solitude became precious to me"),
    ("my teenage son got me interested", "my boy sparked my curiosity"),
    ("I traveled abroad and discovered it", "an overseas trip exposed me to it"),
    ("I want to learn something new every year", "continuous learning keeps me motivated"),
    ("my coworkers are all into it", "everyone at the office talks about it"),
    ("it feels more authentic to me", "it seems more genuine and honest"),
    ("I turned forty and rethought things", "hitting a milestone birthday shifted my priorities"),
    ("it gives me more energy", "it leaves me feeling invigorated"),
    ("my neighbor showed me how fun it is", "the person next door demonstrated the appeal"),
    ("I needed a creative outlet", "expressing myself artistically felt necessary"),
)

# --------------------------------------------------------------------------------------------
# User statement frames (first person). {x} item, {q} quality, {r} reason, {o} old item, {n} noun.
# --------------------------------------------------------------------------------------------
INITIAL_FRAMES: tuple[str, ...] = (
    "For {n}, I've always loved {x}; {q} is exactly my thing.",
    "Honestly, {x} is my favorite when it comes to {n}; I adore {q}.",
    "If I'm being honest, nothing in {n} beats {x} for me. I'm drawn to {q}.",
)
#: Statement frames name the topic ({n}) so a retriever can find them from a question about it.
UPDATE_FRAMES: tuple[str, ...] = (
    "When it comes to {n}, I've lately switched over to {x}. I'm really enjoying {q} these days.",
    "These days I'm all about {x} for {n}; {q} just clicks with me.",
    "As far as {n} goes, I've begun getting into {x} recently. Turns out {q} is what I needed.",
)
DROP_FRAMES: tuple[str, ...] = (
    "Funny thing, I've completely lost interest in {o}; {x} won me over.",
    "I don't really bother with {o} anymore, to be honest; {x} took its place.",
    "I used to be keen on {o}, but that phase has passed and {x} replaced it.",
)
#: The turn right after a drop: the reason for the change, on its own so it is easy to find.
REASON_STATEMENT_FRAMES: tuple[str, ...] = (
    "Honestly, {r}; that's what made me switch.",
    "The main thing is that {r}.",
    "Part of it is simply that {r}.",
)
FACT_FRAMES: tuple[str, ...] = (
    "By the way, {f}.",
    "Oh, a detail I forgot to mention: {f}.",
    "Random update from my side: {f}.",
)
DECOY_FRAMES: tuple[str, ...] = (
    "Oh, and {d}.",
    "Unrelated, but {d}.",
)

# --------------------------------------------------------------------------------------------
# Option frames (assistant voice). No content words shared with the statement frames above.
# --------------------------------------------------------------------------------------------
ACK_FRAMES: tuple[str, ...] = (
    "Got it: {x} suits you best right now, so I'll keep that in mind.",
    "Noted, your current go-to is {x}, and I'll tailor suggestions around it.",
    "Understood, {x} is what appeals to you at present.",
)
SUGGEST_FRAMES: tuple[str, ...] = (
    "For something fresh, explore {x}; it offers the {q} you appreciate.",
    "Branch out into {x}, which delivers the {q} that appeals to you.",
)
GENERALIZE_FRAMES: tuple[str, ...] = (
    "Pick something full of {q}; that suits you well.",
    "Go for {q}, since that fits your taste.",
)
EVOLUTION_FRAMES: dict[int, tuple[str, ...]] = {
    2: ("You started out with {0} and now you favor {1}.",),
    3: ("You started out with {0}, later moved to {1}, and now you favor {2}.",),
    4: ("You started out with {0}, moved to {1}, then {2}, and now you favor {3}.",),
}
REASON_FRAMES: tuple[str, ...] = (
    "You changed course because {r}.",
    "The shift happened because {r}.",
)
RECALL_FRAMES: tuple[str, ...] = (
    "I remember that {f}, which is something to be proud of.",
    "Good to think back on: {f}.",
)
EVOLUTION_QUERIES: tuple[str, ...] = (
    "How have my tastes in {n} changed over time?",
    "Can you sum up how my {n} preferences have evolved?",
)
REASON_QUERIES: tuple[str, ...] = (
    "Remind me why I moved on from {o}?",
    "Why did I stop caring about {o} again?",
)
SUGGEST_QUERIES: tuple[str, ...] = (
    "I want to try something new in {n}. Any ideas?",
    "Suggest something in {n} I haven't explored yet.",
)

# --------------------------------------------------------------------------------------------
# Small talk inside persona sessions, and assistant replies.
# --------------------------------------------------------------------------------------------
#: First user turn of a persona session.
USER_OPENERS: tuple[str, ...] = (
    "Hi there! Hope your day is going well.",
    "Hey, it's me again. Got a few minutes to chat?",
    "Good evening! I could use a bit of conversation.",
    "Hello again! Quick check-in from my side.",
    "Morning! I have some time before work, so here I am.",
)
USER_SMALL_TALK: tuple[str, ...] = (
    "It's been a pretty busy week at work, honestly.",
    "The weather has been so unpredictable recently.",
    "I finally cleaned out my inbox this morning, which felt great.",
    "My commute was a bit longer than usual today.",
    "I tried a new coffee place near the office yesterday.",
    "Do you have any tips for staying organized during hectic weeks?",
    "I've been meaning to call my parents more often.",
    "Sometimes I think I should keep a journal.",
    "I'm trying to drink more water during the day.",
    "My phone battery has been dying way too fast.",
    "I had the strangest dream last night.",
    "Weekends always seem to go by so quickly.",
    "I'm thinking of rearranging my desk for better focus.",
    "Thanks for chatting with me, by the way.",
    "I'm not sure why, but I've felt really productive today.",
    "Do you think it's better to plan everything or improvise?",
    "I keep forgetting to water the plants at the office.",
    "My neighbor's dog barked all night again.",
    "I'm curious how other people structure their mornings.",
    "Let me think about that for a second.",
    "That's a good point, I hadn't considered it.",
    "Okay, that makes sense to me.",
    "Interesting, tell me more.",
)
ASSISTANT_REPLIES: tuple[str, ...] = (
    "That sounds like a lot to juggle. Taking small breaks can make a busy stretch feel more manageable.",
    "Thanks for sharing that with me. It's always nice to hear how your days are going.",
    "Good question. Many people find that a simple routine at the start of the day helps a lot.",
    "That's great to hear! Little wins like that add up over time.",
    "I understand. It can help to write down the three most important things for tomorrow.",
    "That makes sense. Everyone has different rhythms, and it's worth finding what works for you.",
    "Happy to help. Let me know if you want to go into more detail on anything.",
    "It sounds like you've been thinking about this carefully. What feels like the next step?",
    "Absolutely. Consistency usually matters more than intensity for habits like that.",
    "I see what you mean. A fresh perspective can make familiar things feel new again.",
    "That's understandable. Changes in routine often take a couple of weeks to settle in.",
    "Interesting! Small adjustments to your environment can have a surprisingly large effect.",
)
#: Assistant replies right after the user shared something personal (no content words of their own
#: that could be mistaken for a preference).
ASSISTANT_ACKS: tuple[str, ...] = (
    "Thanks for telling me, I'll remember that.",
    "Good to know! I appreciate you keeping me posted.",
    "That's useful to hear, and I'll keep it in mind for later.",
    "Noted with thanks. It helps me understand you better.",
)
#: Assistant mentions of other items of the session's topic (they put other items in the history).
ASSISTANT_MENTIONS: tuple[str, ...] = (
    "Some people I chat with swear by {x}, though everyone's different.",
    "{X} comes up a lot in conversations like this one.",
    "If you ever get curious, {x} is another option people talk about.",
    "A lot of folks also mention {q} when they describe what they like.",
)

# --------------------------------------------------------------------------------------------
# Persona attributes.
# --------------------------------------------------------------------------------------------
FIRST_NAMES: tuple[str, ...] = (
    "Ava", "Liam", "Maya", "Noah", "Zara", "Ethan", "Priya", "Mateo", "Chloe", "Kenji", "Amara", "Lucas",
    "Sofia", "Omar", "Hana", "Diego", "Leila", "Tomas", "Nia", "Felix", "Ines", "Ravi", "Elena", "Kofi",
    "Mila", "Jonah", "Aisha", "Oscar", "Yara", "Samuel",
)
LAST_NAMES: tuple[str, ...] = (
    "Bennett", "Okafor", "Nakamura", "Silva", "Kowalski", "Haddad", "Lindqvist", "Moreau", "Patel", "Reyes",
    "Fischer", "Adeyemi", "Novak", "Castillo", "Hughes", "Tanaka", "Rossi", "Mensah", "Larsen", "Duarte",
)
GENDERS: tuple[str, ...] = ("Female", "Male", "Non-binary")
OCCUPATIONS: tuple[str, ...] = (
    "nurse", "software engineer", "high school teacher", "graphic designer", "accountant", "chef",
    "civil engineer", "librarian", "pharmacist", "marketing manager", "electrician", "veterinarian",
    "data analyst", "architect", "social worker", "paramedic", "journalist", "dentist", "photographer",
    "logistics coordinator",
)
HOME_CITIES: tuple[str, ...] = (
    "Denver", "Manchester", "Auckland", "Toronto", "Lyon", "Austin", "Melbourne", "Dublin", "Seattle",
    "Glasgow", "Portland", "Edinburgh", "Minneapolis", "Halifax", "Adelaide",
)
TRAITS: tuple[str, ...] = (
    "curious", "organized", "easygoing", "ambitious", "thoughtful", "outgoing", "introverted", "practical",
    "adventurous", "patient", "witty", "detail-oriented", "generous", "independent", "calm", "energetic",
)

# --------------------------------------------------------------------------------------------
# Filler sessions: unrelated help-desk style conversations (no first-person preferences).
# --------------------------------------------------------------------------------------------
FILLER_QUESTIONS: tuple[str, ...] = (
    "Can you explain how {s} works?",
    "I'm writing a short report on {s}. What are the main points?",
    "What is the history behind {s}?",
    "Could you give me a quick overview of {s}?",
    "What are common misconceptions about {s}?",
    "How would you explain {s} to a twelve-year-old?",
    "Why does {s} matter in everyday life?",
    "What should a beginner know about {s}?",
)
FILLER_SUBJECTS: tuple[str, ...] = (
    "photosynthesis", "the water cycle", "compound interest", "plate tectonics", "the printing press",
    "vaccination", "tides", "the Roman aqueducts", "electric circuits", "the immune system", "recycling",
    "cloud formation", "supply chains", "the metric system", "volcanoes", "bridges", "public libraries",
    "postal services", "time zones", "satellite navigation", "honeybees", "rainforests", "glaciers",
    "spreadsheets", "encryption", "lighthouses", "the periodic table", "wind turbines", "coral reefs",
    "elections", "typography", "sound waves", "magnets", "bread baking chemistry", "earthquakes",
)
FILLER_SENTENCES: tuple[str, ...] = (
    "At its core, the idea is simpler than it first appears.",
    "It helps to start with the basic components and see how they interact.",
    "Historically, people understood this only in part, and early explanations were often wrong.",
    "Scientists refined the picture over many decades through careful measurement.",
    "One useful way to think about it is as a system of inputs and outputs.",
    "Small changes in one part can have large effects elsewhere.",
    "There are a few common misconceptions worth clearing up.",
    "For example, many assume the process is fast, but it usually unfolds gradually.",
    "Engineers and researchers still study the details today.",
    "The key factors are energy, time, and the materials involved.",
    "In practice, this shows up in ordinary situations more often than we notice.",
    "A simple experiment at home can illustrate the main principle.",
    "Different regions of the world experience it in different ways.",
    "Experts usually break the topic into three or four stages.",
    "The first stage sets up the conditions for everything that follows.",
    "The middle stage is where most of the interesting interactions happen.",
    "The final stage often returns the system to a stable state.",
    "Measurements are typically reported in standard units to make comparisons easier.",
    "This is one reason the subject appears in school curricula around the world.",
    "Public policy sometimes depends on understanding it correctly.",
    "Modern tools make it much easier to observe than it used to be.",
    "If you want to go deeper, introductory textbooks cover it well.",
    "Diagrams are especially helpful for visualizing the sequence of events.",
    "It is closely related to several other topics in the same field.",
    "The underlying mathematics can be elegant, although it is not required to grasp the concept.",
    "Researchers continue to debate some of the finer points.",
    "Safety considerations are important whenever people work with it directly.",
    "Costs and benefits need to be weighed when it is applied at scale.",
    "Local conditions can change the outcome in noticeable ways.",
    "A helpful analogy is a busy kitchen where every station depends on the others.",
    "Over time, improvements in technique have made the results more reliable.",
    "Record keeping played a big role in how knowledge about it accumulated.",
    "Some of the earliest written descriptions come from travelers and merchants.",
    "Today there are international standards that describe best practice.",
    "Students often find that drawing it out step by step removes the confusion.",
    "The effects can be seen on scales ranging from tiny to enormous.",
    "Climate and geography influence it more than people expect.",
    "It is also a good example of how theory and observation work together.",
    "Many museums have exhibits that explain it with interactive models.",
    "In short, it is a process with clear causes and predictable consequences.",
)
FILLER_FOLLOWUPS: tuple[str, ...] = (
    "That's helpful, thanks. Can you say a bit more about the middle part?",
    "Interesting. Is there a simple example I could use?",
    "Got it. What would be a good source to read next?",
    "Thanks! How is this usually measured?",
    "Makes sense. Are there any common mistakes to avoid?",
    "Could you summarize that in two sentences?",
)

# --------------------------------------------------------------------------------------------
# Habits: lasting facts about the user's life that no single session states as a preference and
# that no question mentions. Each habit has two wordings (a predicate after "I'm" / "you're" /
# "<someone> is"); wordings never contain "my"/"your", so they read right in every person.
# A persona mentions each of its habits in several sessions (HABIT_MENTION_FRAMES); other
# people's habits appear as decoys (HABIT_DECOY_FRAMES). Habit questions (HABIT_QUERIES) are
# generic planning requests: nothing in the query points at the habit, so query-similarity
# retrieval under a memory budget rarely finds the mentions — the profile has to carry them.
# --------------------------------------------------------------------------------------------
HABITS: tuple[tuple[str, str], ...] = (
    ("waking up at five every morning", "out of bed before sunrise daily"),
    ("a night owl who stays up past midnight", "wide awake until two in the morning"),
    ("on a very tight budget", "counting every single penny"),
    ("allergic to cats", "sneezing around furry pets"),
    ("afraid of flying on planes", "nervous about boarding airplanes"),
    ("living without a car", "getting around by bus and bicycle"),
    ("raising toddlers at home", "a parent of small children"),
    ("working night shifts at the hospital", "on the overnight rota at work"),
    ("recovering from a knee injury", "healing after leg surgery"),
    ("learning Spanish in evening classes", "practicing a foreign language daily"),
    ("caring for an elderly parent", "looking after an aging mother"),
    ("uneasy in big crowds", "avoiding packed noisy places"),
    ("training a rescue puppy", "housebreaking a young dog"),
    ("saving up for a house", "putting money aside for a home purchase"),
)
#: The user stating one of their habits ({h}: a habit wording). No planning words: the mentions
#: must not look like the habit questions.
HABIT_MENTION_FRAMES: tuple[str, ...] = (
    "Not sure I ever told you, but I'm {h}.",
    "Little thing about me: I'm {h}.",
    "As you might have guessed by now, I'm {h}.",
    "It's been true for a while now that I'm {h}.",
    "Honestly, these days I'm {h}.",
)
#: Someone else's habit ({p}: a person, {h}: a habit wording).
HABIT_DECOY_FRAMES: tuple[str, ...] = (
    "Funny enough, {p} is {h}.",
    "I just learned that {p} is {h}.",
)
HABIT_PEOPLE: tuple[str, ...] = (
    "my cousin", "my coworker", "my neighbor", "my old roommate", "my sister", "my brother-in-law",
)
#: Habit questions: generic requests whose right answer depends on a habit.
HABIT_QUERIES: tuple[str, ...] = (
    "I have a free Saturday coming up. What would you suggest?",
    "Could you help me sketch out next month?",
    "I'd like to set up a fresh weekly routine. Where should I start?",
    "What should I do with my upcoming long weekend?",
)
#: Habit options (assistant voice): the habit wording in {h}; no content words shared with the
#: mention frames.
HABIT_OPTION_FRAMES: tuple[str, ...] = (
    "Shape it around the fact that you're {h}.",
    "Build everything to suit someone who is {h}.",
)
