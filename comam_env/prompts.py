"""The three agent prompts of the memory system and the rendering of their inputs.

CoMAM's memory system (docs/design.md §1) has three LLM agents. Their instructions are
kept here, in one module, written in our own words after the paper's appendix:

* **extractor** — reads one chunk of the raw conversation and writes the key
  facts/turns of the user, one per line, dropping redundant text. Its outputs,
  concatenated over the chunks, are the fine-grained memory M_f.
* **profiler** — reads M_f and writes a user profile (scenarios, behaviour
  patterns, preferences), one statement per line: the coarse-grained memory M_c.
* **retriever** — reads the memory M = M_f + M_c, the user's query and the
  answer options; copies the memory lines that matter inside
  ``<information>…</information>`` and answers with
  ``<final_answer>(x)</final_answer>``.

Two human speakers. A dataset whose histories are conversations between two
people (LoCoMo: ``History.meta["speakers"] == {"user": A, "assistant": B}``, see
:func:`dialogue_speakers`) gets speaker-neutral instructions: the extractor is
told the conversation is between A and B and to keep what *both* say (nothing
tells it to drop one speaker), the profiler profiles both, the retriever answers
a question about either. Roles and names come from the data: the role labels of
the rendered lines (``User: A: …``, ``Assistant: B: …``) and the names are
explained in the instruction. Pass ``speakers=(A, B)`` to :func:`build_prompt`.

Rendering conventions (what the reward code relies on):

* A chunk is rendered one message per line, ``Role: text`` (newlines inside a
  message are folded to spaces, :meth:`History.render`), so the *line* is the
  natural memory unit and copying a line copies exactly one message.
* The memory block shows M_f and M_c under two headings; an empty part is shown
  as ``(empty)`` so an agent can tell "nothing yet" from a rendering bug. Under a
  retriever memory budget (``EnvConfig.memory_budget``) the retriever's block is
  :func:`render_budgeted_memory`: the profile units first, then the fine-memory
  units retrieved for the query.
* Options are rendered ``(a) text`` one per line; an open question (LoCoMo) has
  no options and the retriever prompt then asks for a free-text answer.

Everything is plain ``str`` formatting: :func:`build_prompt` is the only
function the environment calls per step, and the throughput benchmark times it
on its own as the baseline the environment's overhead is measured against.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from comam_env.data.schema import History, Question
from comam_env.roles import ROLE_NAMES, role_of


EXTRACTOR_INSTRUCTIONS = """\
You are the memory extractor of a personal assistant. Below is one part of a long \
conversation between a user and an assistant. Write down what the assistant must \
remember about this user: the facts the user shares, their preferences and every \
change of preference together with the reason given, their plans and experiences. \
Keep the user's own wording where you can and leave out greetings, small talk, \
repetitions and the assistant's generic replies.
Write one fact or turn per line. Write nothing else."""

PROFILER_INSTRUCTIONS = """\
You are the user profiler of a personal assistant. Below is the fine-grained memory \
collected from the user's conversations. Summarise it into a profile of the user: \
the situations and scenarios they are in, their habits and behaviour patterns, and \
their current preferences (say which earlier preferences changed, and why).
Write one short statement per line. Write nothing else."""

RETRIEVER_INSTRUCTIONS = """\
You are the retrieval and answering module of a personal assistant. Below is the \
memory kept about the user, followed by the user's latest message and the candidate \
responses. First copy, word for word, the memory lines needed to choose the best \
response, one per line, inside <information> and </information>. Then give the \
letter of the best response inside <final_answer> and </final_answer>, for example \
<final_answer>(b)</final_answer>."""

RETRIEVER_OPEN_INSTRUCTIONS = """\
You are the retrieval and answering module of a personal assistant. Below is the \
memory kept about the user, followed by a question about the user. First copy, word \
for word, the memory lines needed to answer, one per line, inside <information> and \
</information>. Then give a short answer inside <final_answer> and </final_answer>; \
if the memory does not contain the answer, say that the information is not available."""

EXTRACTOR_DIALOGUE_INSTRUCTIONS = """\
You are the memory extractor of a personal assistant. Below is one part of a long \
conversation between two people, {a} and {b}; each line gives a role label and then \
the speaker's name ("User: {a}: ..." or "Assistant: {b}: ..."). Write down what must \
be remembered about both of them: the facts each person shares, their preferences and \
every change of preference together with the reason given, their plans, experiences \
and the events they mention. Keep the speaker's name and own wording where you can, \
and leave out greetings, small talk and repetitions.
Write one fact or turn per line. Write nothing else."""

PROFILER_DIALOGUE_INSTRUCTIONS = """\
You are the profiler of a personal assistant. Below is the fine-grained memory \
collected from the conversations between {a} and {b}. Summarise it into a profile of \
each of them: the situations and scenarios they are in, their habits and behaviour \
patterns, and their current preferences (say which earlier preferences changed, and why).
Write one short statement per line, starting with the person's name. Write nothing else."""

RETRIEVER_OPEN_DIALOGUE_INSTRUCTIONS = """\
You are the retrieval and answering module of a personal assistant. Below is the \
memory kept about two people, {a} and {b}, followed by a question about one of them. \
First copy, word for word, the memory lines needed to answer, one per line, inside \
<information> and </information>. Then give a short answer inside <final_answer> and \
</final_answer>; if the memory does not contain the answer, say that the information \
is not available."""

EMPTY = "(empty)"
#: Heading of the fine memory the retriever is shown under a memory budget (:func:`render_budgeted_memory`).
RETRIEVED_HEADING = "## Fine-grained memory (retrieved for the query below)"


def retriever_action(information: str | Sequence[str], answer: str) -> str:
    """The retriever's text action: the memory lines inside ``<information>``, then the answer
    inside ``<final_answer>`` (``"(b)"`` for an option, a short text for an open question).

    The one renderer of this format (policies, baselines and the selection view use it)."""
    body = information if isinstance(information, str) else "\n".join(information)
    return f"<information>\n{body}\n</information>\n<final_answer>{answer}</final_answer>"


def dialogue_speakers(history: History) -> tuple[str, str] | None:
    """The two people's names when ``history`` is a conversation between two humans, else ``None``.

    Read from ``history.meta["speakers"]`` (``{"user": A, "assistant": B}``, as the
    LoCoMo loader writes it); PersonaMem-style user/assistant histories have none.
    """
    names = history.meta.get("speakers") if history.meta else None
    if not isinstance(names, dict):
        return None
    a, b = names.get("user"), names.get("assistant")
    if isinstance(a, str) and isinstance(b, str) and a.strip() and b.strip():
        return a.strip(), b.strip()
    return None


def render_chunk(history: History, indices: Sequence[int] | range) -> str:
    """The raw conversation of one chunk, one ``Role: text`` message per line."""
    return history.render(indices)


def render_memory(fine: str, coarse: str | None = None) -> str:
    """The memory block: fine-grained memory, then (when given) the user profile.

    ``coarse=None`` renders M_f alone (what the profiler reads); a string, even
    an empty one, renders M = M_f + M_c (what the retriever reads).
    """
    fine = fine.strip() or EMPTY
    if coarse is None:
        return f"## Fine-grained memory\n{fine}"
    coarse = coarse.strip() or EMPTY
    return f"## Fine-grained memory\n{fine}\n\n## User profile\n{coarse}"


def render_budgeted_memory(profile: Sequence[str], fine: Sequence[str]) -> str:
    """The retriever's memory block under a memory budget (:mod:`comam_env.memory_budget`): the
    profile units shown, then the fine-memory units retrieved for the query, one per line."""
    coarse = "\n".join(profile) or EMPTY
    fine_text = "\n".join(fine) or EMPTY
    return f"## User profile\n{coarse}\n\n{RETRIEVED_HEADING}\n{fine_text}"


def render_options(question: Question) -> str:
    """Options as ``(a) text`` lines; an empty string for open questions."""
    return "\n".join(question.labelled_options())


def _names(template: str, speakers: Sequence[str]) -> str:
    a, b = speakers
    return template.format(a=a, b=b)


def extractor_prompt(chunk: str, speakers: Sequence[str] | None = None) -> str:
    text = _names(EXTRACTOR_DIALOGUE_INSTRUCTIONS, speakers) if speakers else EXTRACTOR_INSTRUCTIONS
    return f"{text}\n\n# Conversation\n{chunk.strip() or EMPTY}\n\n# Memory lines\n"


def profiler_prompt(memory: str, speakers: Sequence[str] | None = None) -> str:
    if speakers:
        return f"{_names(PROFILER_DIALOGUE_INSTRUCTIONS, speakers)}\n\n# Memory\n{memory}\n\n# Profiles\n"
    return f"{PROFILER_INSTRUCTIONS}\n\n# Memory\n{memory}\n\n# User profile\n"


def retriever_prompt(memory: str, query: str, options: str, speakers: Sequence[str] | None = None) -> str:
    if options:
        return (
            f"{RETRIEVER_INSTRUCTIONS}\n\n# Memory\n{memory}\n\n# User message\n{query.strip()}\n\n"
            f"# Candidate responses\n{options}\n\n# Your output\n"
        )
    text = _names(RETRIEVER_OPEN_DIALOGUE_INSTRUCTIONS, speakers) if speakers else RETRIEVER_OPEN_INSTRUCTIONS
    return f"{text}\n\n# Memory\n{memory}\n\n# Question\n{query.strip()}\n\n# Your output\n"


def build_prompt(role: str | int, *, chunk: str = "", memory: str = "", query: str = "", options: str = "",
                 speakers: Sequence[str] | None = None) -> str:
    """The full prompt of ``role`` (a role name or index, :mod:`comam_env.roles`) from its rendered fields.

    ``speakers`` — the two people's names when the history is a conversation between
    two humans (:func:`dialogue_speakers`): speaker-neutral instructions naming both.
    """
    if isinstance(role, int):
        role = role_of(role)
    if speakers is not None and len(speakers) != 2:
        raise ValueError(f"speakers must be two names, got {speakers!r}")
    if role == "extractor":
        return extractor_prompt(chunk, speakers)
    if role == "profiler":
        return profiler_prompt(memory, speakers)
    if role == "retriever":
        return retriever_prompt(memory, query, options, speakers)
    raise ValueError(f"unknown role {role!r}; expected one of {ROLE_NAMES}")


@lru_cache(maxsize=256)
def prompt_overhead(speakers: tuple[str, str] | None = None) -> int:
    """Length of the longest prompt of any role around empty fields, for ``speakers``.

    The environment adds the field lengths to it for an upper bound on a prompt's
    length (whether an observation could exceed its cap) without rendering it.
    """
    return max(len(build_prompt(r, chunk="", memory="", query="", options=o, speakers=speakers))
               for r in ROLE_NAMES for o in ("", "x"))
