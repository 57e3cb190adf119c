"""A small LoCoMo-format file, generated deterministically from a seed.

The real ``locomo10.json`` (CC BY-NC 4.0) cannot be downloaded on every machine,
so the LoCoMo track is tested and measured on a file written by
:func:`make_locomo_samples` in exactly its format (DESIGN §6): a JSON list of
samples, each with ``sample_id``; ``conversation`` holding ``speaker_a``,
``speaker_b``, ``session_<k>`` turn lists ``{speaker, dia_id, text}`` (some turns
share a photo: ``img_url`` + ``blip_caption``) and ``session_<k>_date_time``;
``qa`` items ``{question, answer, evidence, category}`` (category 5 carries
``adversarial_answer`` instead of ``answer``); ``observation`` (per session, per
speaker ``[fact, dia_id]`` pairs) and ``session_summary``.

What it contains, per sample (two people talking over ``n_sessions`` sessions a
few weeks apart): each speaker shares a new job, a pet and its name, a dated
event ("I ran a charity 5k yesterday") and two hobbies taken up in different
sessions, among greetings, small talk and a shared photo. Questions, per speaker:

* category 4 (single hop): the job, the pet's name;
* category 2 (temporal): the event's date (the day before the session, as in
  LoCoMo, where such answers come from the session time stamp);
* category 1 (multi hop): both hobbies (evidence in two sessions, given as one
  ``"D1:3; D4:2"`` entry, as the real file sometimes does);
* category 3 (open domain): whether the person would enjoy a related activity;
* category 5 (adversarial): the event's date and the pet's name asked about the
  *other* speaker, who has neither (the trap answer is the first speaker's; the
  two speakers' events and pet kinds always differ).

Evidence ids use the real file's spellings: ``D<k>:<j>``, zero-padded
``D2:05`` and the stray ``D:3:4`` form. Nothing here is tuned to any system: the
values come from fixed word lists shuffled by the seed.

Usage::

    python -m comam_env.data.locomo_fixture --out DIR [--samples 6] [--seed 0]

writes ``DIR/locomo10.json``; ``COMAM_DATA_DIR=DIR comam-env evaluate --env locomo ...``
then runs on it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import random
from pathlib import Path
from typing import Any

__all__ = ["make_locomo_samples", "write_locomo_fixture"]

PEOPLE = [("Caroline", "Melanie"), ("Jon", "Gina"), ("Audrey", "Andrew"), ("Nate", "Joanna"),
          ("Tim", "John"), ("Maria", "Deborah"), ("Evan", "Sam"), ("Calvin", "Dave")]
JOBS = ["nurse at the city hospital", "carpenter", "graphic designer", "high school chemistry teacher",
        "pastry chef", "park ranger", "librarian", "physical therapist", "wedding photographer",
        "bus driver", "software tester", "florist"]
PETS = [("puppy", "Luna"), ("kitten", "Oliver"), ("parrot", "Kiwi"), ("rabbit", "Clover"), ("beagle", "Max"),
        ("turtle", "Shelly"), ("guinea pig", "Peanut"), ("golden retriever", "Sunny")]
EVENTS = [("ran a charity 5k for mental health", "run the charity 5k"),
          ("went to an LGBTQ support group meeting", "go to the support group meeting"),
          ("gave a talk at the local library", "give the talk at the library"),
          ("finished my first pottery class", "finish the first pottery class"),
          ("volunteered at the animal shelter", "volunteer at the animal shelter"),
          ("played a gig with my band downtown", "play the gig downtown")]
HOBBIES = [("rock climbing", "a bouldering gym"), ("watercolor painting", "an art museum"),
           ("salsa dancing", "a dance festival"), ("bird watching", "a nature reserve hike"),
           ("sourdough baking", "a bread making workshop"), ("chess", "a chess tournament"),
           ("kayaking", "a river trip"), ("gardening", "a flower show"), ("yoga", "a meditation retreat"),
           ("guitar", "a live acoustic concert")]
GREETINGS = ["Hey {o}! Good to see you again!", "Hi {o}, how have you been?", "Hey {o}! Long time no talk."]
SMALL_TALK = [("How was your week?", "Pretty busy, but good overall."),
              ("The weather has been lovely lately.", "Yes, I finally got to sit outside."),
              ("Did you watch the game on Sunday?", "Only the second half, it was wild."),
              ("I need a vacation soon.", "Same here, work has been a lot.")]
REPLIES = ["That's amazing, congrats!", "Wow, I'm so happy for you!", "That sounds wonderful.",
           "Good for you, that takes courage.", "Nice! Tell me more next time."]
PHOTOS = ["a photo of a sunset over a lake", "a photo of a bowl of ramen", "a photo of a mountain trail",
          "a photo of a birthday cake"]
START = _dt.datetime(2023, 5, 8, 13, 56)


def _stamp(t: _dt.datetime) -> str:
    """The real file's time stamp format, e.g. ``1:56 pm on 8 May, 2023``."""
    hour = t.hour % 12 or 12
    return f"{hour}:{t.minute:02d} {'am' if t.hour < 12 else 'pm'} on {t.day} {t.strftime('%B')}, {t.year}"


def _day(d: _dt.date) -> str:
    return f"{d.day} {d.strftime('%B')} {d.year}"


def _sample(rng: random.Random, k: int, a: str, b: str, n_sessions: int) -> dict[str, Any]:
    names = (a, b)
    jobs, pets, events, hobbies = (rng.sample(x, 2) for x in (JOBS, PETS, EVENTS, HOBBIES))
    extra = rng.sample([h for h in HOBBIES if h not in hobbies], 2)
    # what each speaker shares, by session: (session, speaker index, kind, text)
    plan: list[tuple[int, int, str, str]] = []
    for s in (0, 1):
        first, second = rng.sample(range(1, n_sessions + 1), 2)
        plan += [
            (first, s, "job", f"Guess what, I just started a new job as a {jobs[s]}!"),
            (second, s, "pet", f"We adopted a {pets[s][0]} and named it {pets[s][1]}."),
            (rng.randint(1, n_sessions), s, "event", f"I {events[s][0]} yesterday, it was so powerful."),
            (min(first, second), s, "hobby1", f"I've been getting into {hobbies[s][0]} lately."),
            (max(first, second), s, "hobby2", f"I also took up {extra[s][0]} this month."),
        ]
    conv: dict[str, Any] = {"speaker_a": a, "speaker_b": b}
    observation: dict[str, Any] = {}
    summary: dict[str, str] = {}
    where: dict[tuple[int, str], tuple[str, int]] = {}  # (speaker, kind) -> (dia_id, session)
    date = START + _dt.timedelta(days=rng.randint(0, 60))
    dates: dict[int, _dt.datetime] = {}
    for sess in range(1, n_sessions + 1):
        dates[sess] = date
        turns: list[dict[str, Any]] = []

        def say(speaker: int, text: str, sess: int = sess, turns: list = turns, **extra_fields: Any) -> str:
            dia = f"D{sess}:{len(turns) + 1}"
            turns.append({"speaker": names[speaker], "dia_id": dia, "text": text, **extra_fields})
            return dia

        opener = rng.randint(0, 1)
        say(opener, rng.choice(GREETINGS).format(o=names[1 - opener]))
        say(1 - opener, f"Hey {names[opener]}! I'm doing well, thanks.")
        obs: dict[str, list[list[str]]] = {a: [], b: []}
        for _, s, kind, text in sorted((p for p in plan if p[0] == sess), key=lambda p: (p[1], p[2])):
            dia = say(s, text)
            where[(s, kind)] = (dia, sess)
            obs[names[s]].append([f"{names[s]} said: {text}", dia])
            say(1 - s, rng.choice(REPLIES))
        q, r = rng.choice(SMALL_TALK)
        say(opener, q)
        say(1 - opener, r, img_url=[f"https://example.invalid/{k}-{sess}.jpg"], blip_caption=rng.choice(PHOTOS))
        conv[f"session_{sess}_date_time"] = _stamp(date)
        conv[f"session_{sess}"] = turns
        observation[f"session_{sess}_observation"] = obs
        summary[f"session_{sess}_summary"] = f"{a} and {b} catch up on session {sess}."
        date += _dt.timedelta(days=rng.randint(10, 25), hours=rng.randint(-3, 3))

    def ev(s: int, kind: str, style: str = "plain") -> str:
        dia, sess = where[(s, kind)]
        turn = int(dia.split(":")[1])
        return {"plain": dia, "padded": f"D{sess}:{turn:02d}", "stray": f"D:{sess}:{turn}"}[style]

    qa: list[dict[str, Any]] = []
    for s in (0, 1):
        n, o = names[s], names[1 - s]
        event_day = _day((dates[where[(s, "event")][1]] - _dt.timedelta(days=1)).date())
        qa += [
            {"question": f"What new job did {n} start?", "answer": jobs[s], "evidence": [ev(s, "job")],
             "category": 4},
            {"question": f"What is the name of {n}'s {pets[s][0]}?", "answer": pets[s][1],
             "evidence": [ev(s, "pet", "padded")], "category": 4},
            {"question": f"When did {n} {events[s][1]}?", "answer": event_day,
             "evidence": [ev(s, "event", "stray" if s else "plain")], "category": 2},
            {"question": f"What hobbies has {n} taken up?", "answer": f"{hobbies[s][0]}, {extra[s][0]}",
             "evidence": [f"{ev(s, 'hobby1')}; {ev(s, 'hobby2')}"], "category": 1},
            {"question": f"Would {n} enjoy {hobbies[s][1]}?", "answer": "Likely yes",
             "evidence": [ev(s, "hobby1")], "category": 3},
            {"question": f"When did {o} {events[s][1]}?", "adversarial_answer": event_day,
             "evidence": [ev(s, "event")], "category": 5},
            {"question": f"What is the name of {o}'s {pets[s][0]}?", "adversarial_answer": pets[s][1],
             "evidence": [ev(s, "pet")], "category": 5},
        ]
    return {"qa": qa, "conversation": conv, "observation": observation, "session_summary": summary,
            "sample_id": f"conv-{k + 1}"}


def make_locomo_samples(n_samples: int = 6, seed: int = 0, n_sessions: int = 5) -> list[dict[str, Any]]:
    """The samples of a LoCoMo-format file (see the module docstring); a pure function of its arguments."""
    if not 1 <= n_samples <= len(PEOPLE):
        raise ValueError(f"n_samples must be in 1..{len(PEOPLE)}, got {n_samples}")
    if n_sessions < 2:
        raise ValueError(f"n_sessions must be >= 2, got {n_sessions}")
    rng = random.Random(seed)
    return [_sample(rng, k, a, b, n_sessions) for k, (a, b) in enumerate(PEOPLE[:n_samples])]


def write_locomo_fixture(folder: str | Path, n_samples: int = 6, seed: int = 0, n_sessions: int = 5) -> Path:
    """Write ``folder/locomo10.json`` atomically; returns its path."""
    from comam_env.data.paths import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "locomo10.json"
    atomic_write_text(path, json.dumps(make_locomo_samples(n_samples, seed, n_sessions), indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a small LoCoMo-format locomo10.json (deterministic).")
    parser.add_argument("--out", required=True, help="folder to write locomo10.json into")
    parser.add_argument("--samples", type=int, default=6, help="number of conversations (1-8, default 6)")
    parser.add_argument("--sessions", type=int, default=5, help="sessions per conversation (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    args = parser.parse_args(argv)
    print(write_locomo_fixture(args.out, args.samples, args.seed, args.sessions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
