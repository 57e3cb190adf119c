"""The three roles of the memory system, their agent names and indices: the one place that says so.

=========  =====  ===============  ==============================================
role       index  agent id         acts
=========  =====  ===============  ==============================================
extractor  0      ``extractor_0``  once per chunk of the history H; writes M_f
profiler   1      ``profiler_0``   once; reads M_f, writes the profile M_c
retriever  2      ``retriever_0``  once per question; reads M = M_f + M_c, answers
=========  =====  ===============  ==============================================

The index is the ``role`` field of every observation (text and selection views) and the
role id the policies in ``agents`` use. (``comam_env.data.schema.MESSAGE_ROLES`` is something
else: the *message* roles ``system``/``user``/``assistant`` of a conversation.)
"""

from __future__ import annotations

import enum

__all__ = ["Role", "ROLE_NAMES", "AGENTS", "ROLE_OF", "role_of", "role_index"]


class Role(enum.IntEnum):
    """A role of the memory system, in MDP order (the value is its index)."""

    EXTRACTOR = 0
    PROFILER = 1
    RETRIEVER = 2

    @property
    def label(self) -> str:
        """The role name: ``"extractor"``, ``"profiler"`` or ``"retriever"``."""
        return self.name.lower()

    @property
    def agent(self) -> str:
        """The PettingZoo agent id: ``"extractor_0"``, …"""
        return f"{self.label}_0"

    @classmethod
    def of(cls, role: "Role | int | str") -> "Role":
        """The role of an index (0..2), a role name (``"retriever"``) or an agent id
        (``"retriever_0"``); digits in a string are an index (JSON turns int keys into
        strings). Anything else raises ``ValueError`` naming the accepted forms."""
        if isinstance(role, cls):
            return role
        if isinstance(role, bool):
            raise ValueError(f"role must be an index 0..2 or a role name, got {role!r}")
        if isinstance(role, str):
            text = role.strip()
            if text.isdigit():
                return cls.of(int(text))
            head, _, tail = text.rpartition("_")
            name = head if tail.isdigit() and head else text
            if name in ROLE_NAMES:
                return cls(ROLE_NAMES.index(name))
        elif hasattr(role, "__index__"):
            i = int(role.__index__())
            if 0 <= i < len(cls):
                return cls(i)
        raise ValueError(f"unknown role {role!r}; expected 0..{len(cls) - 1}, one of {ROLE_NAMES} or an agent id like 'retriever_0'")


#: Role names in MDP order (index = :class:`Role` value).
ROLE_NAMES: tuple[str, ...] = tuple(r.name.lower() for r in Role)
#: Agent ids in MDP order.
AGENTS: tuple[str, ...] = tuple(f"{n}_0" for n in ROLE_NAMES)
#: Agent id → role name.
ROLE_OF: dict[str, str] = dict(zip(AGENTS, ROLE_NAMES))


def role_of(agent: "Role | int | str") -> str:
    """The role name of an agent id, role name or index (``"retriever_0"`` → ``"retriever"``)."""
    return Role.of(agent).label


def role_index(role: "Role | int | str") -> int:
    """The index (0..2) of a role given as an index, name or agent id."""
    return int(Role.of(role))
