"""Conversation records: what the chat view shows and what the store saves.

Ids are random hex strings made here, not by the database, so a message can be shown and
streamed into before its row is written (the store writes on its own thread), and so
exported conversations can be imported again without clashing.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.core.vision import Attachment


def new_id() -> str:
    return uuid.uuid4().hex


class Role(str, enum.Enum):
    # Values are stored on disk: never change or reuse one.
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageState(str, enum.Enum):
    # Values are stored on disk: never change or reuse one.
    COMPLETE = "complete"
    STREAMING = "streaming"  # still being written; found on start only if the app died
    STOPPED = "stopped"  # the user pressed Stop
    INTERRUPTED = "interrupted"  # the engine died or the app closed mid-reply
    FAILED = "failed"


@dataclass
class Message:
    role: Role
    text: str
    state: MessageState = MessageState.COMPLETE
    model: str | None = None  # display name of the model that wrote it
    settings: dict[str, Any] | None = None  # sampling settings + system prompt used
    stats: dict[str, Any] | None = None  # tokens, tokens_per_s, ttft, seed, finish_reason
    created: float = field(default_factory=time.time)
    id: str = field(default_factory=new_id)
    # The tree of branches: the message this one follows (None: a first message) and
    # whether it is the variant shown among the messages that follow the same one.  For
    # messages on the shown path both follow from list order (see Conversation.link).
    parent_id: str | None = None
    active: bool = True
    # The person's verdict: +1 (good), -1 (bad) or None (not rated); and "this version is
    # better" among the variants of a reply (at most one of them is preferred).
    rating: int | None = None
    preferred: bool = False
    # Images the person attached (a user message to a vision model), in order.
    images: list[Attachment] = field(default_factory=list)


@dataclass
class Conversation:
    """``messages`` is the path the user sees; ``branches`` holds every message on other
    branches: replies that were regenerated, messages that were edited and what followed
    them.  Together they form a tree (each message points at the one it follows) in which
    each set of variants has one active member; the path follows the active ones."""

    title: str = "New chat"
    messages: list[Message] = field(default_factory=list)
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    pinned: bool = False
    settings: dict[str, Any] | None = None  # the conversation's own sampling settings snapshot
    branches: list[Message] = field(default_factory=list)

    def link(self) -> None:
        """Make the shown path's tree links follow its list order (each message follows
        the one before it and is the active variant)."""
        parent: str | None = None
        for message in self.messages:
            message.parent_id = parent
            message.active = True
            parent = message.id

    def all_messages(self) -> list[Message]:
        return [*self.messages, *self.branches]

    def variants(self, message_id: str) -> list[Message]:
        """The message and the others that follow the same message, oldest first."""
        everything = self.all_messages()
        message = next((m for m in everything if m.id == message_id), None)
        if message is None:
            return []
        return _oldest_first(m for m in everything if m.parent_id == message.parent_id)

    def variant_position(self, message: Message | str) -> tuple[int, int]:
        """(1-based number, how many) of a message among its variants; (1, 1) when it has none.

        Called for every message the chat view draws, with the Message: unless a branch
        follows the same message, that costs one pass over the branches, not the whole chat."""
        if not self.branches:
            return 1, 1
        if isinstance(message, Message) and all(m.parent_id != message.parent_id for m in self.branches):
            return 1, 1
        message_id = message.id if isinstance(message, Message) else message
        variants = self.variants(message_id)
        index = next((i for i, m in enumerate(variants) if m.id == message_id), 0)
        return index + 1, max(len(variants), 1)

    def select(self, message_id: str) -> bool:
        """Show the branch through this message (it and, below it, the variants last
        shown there). False when no such message."""
        everything = self.all_messages()
        by_id = {m.id: m for m in everything}
        if message_id not in by_id:
            return False
        seen: set[str] = set()
        current: Message | None = by_id[message_id]
        while current is not None and current.id not in seen:  # every ancestor is chosen too
            seen.add(current.id)
            for m in everything:
                if m.parent_id == current.parent_id:
                    m.active = m is current
            current = by_id.get(current.parent_id) if current.parent_id else None
        self.rebuild(everything)
        return True

    def find(self, message_id: str) -> Message | None:
        return next((m for m in self.all_messages() if m.id == message_id), None)

    def set_rating(self, message_id: str, rating: int | None) -> bool:
        """+1, -1 or None (clear). False when no such message."""
        if rating not in (1, -1, None):
            raise ValueError("a rating is +1, -1 or None")
        message = self.find(message_id)
        if message is None:
            return False
        message.rating = rating
        return True

    def set_preferred(self, message_id: str, preferred: bool = True) -> bool:
        """Mark this version as the better one among its variants (the others lose the
        mark), or clear its mark. False when no such message."""
        message = self.find(message_id)
        if message is None:
            return False
        if preferred:
            for m in self.variants(message_id):
                m.preferred = False
        message.preferred = preferred
        return True

    def rebuild(self, everything: list[Message] | None = None) -> None:
        """Recompute the shown path from the tree: from the first message, follow the
        active variant (the newest if none is marked)."""
        everything = self.all_messages() if everything is None else everything
        children: dict[str | None, list[Message]] = {}
        for m in everything:
            children.setdefault(m.parent_id, []).append(m)
        path: list[Message] = []
        on_path: set[str] = set()
        parent: str | None = None
        while kids := children.get(parent):
            kids = _oldest_first(kids)
            chosen = next((m for m in reversed(kids) if m.active), kids[-1])
            if chosen.id in on_path:  # a damaged tree with a cycle: stop rather than loop
                break
            path.append(chosen)
            on_path.add(chosen.id)
            parent = chosen.id
        self.messages = path
        self.branches = [m for m in everything if m.id not in on_path]
        self.link()

    def remove(self, message_id: str) -> bool:
        """Delete one message; what followed it now follows its parent (nothing else is lost)."""
        everything = self.all_messages()
        gone = next((m for m in everything if m.id == message_id), None)
        if gone is None:
            return False
        everything.remove(gone)
        for m in everything:
            if m.parent_id == gone.id:
                m.parent_id = gone.parent_id
                m.active = m.active and gone.active
        self.rebuild(everything)
        return True

    def chat_messages(self, system_prompt: str = "") -> list[dict[str, Any]]:
        """The turns to send to the model; empty failed or unfinished replies are left out."""
        turns: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        for m in self.messages:
            if m.role is Role.ASSISTANT and not m.text:
                continue
            turns.append({"role": m.role.value, "content": content_parts(m.text, m.images) if m.images else m.text})
        return turns


def content_parts(text: str, images: list[Attachment]) -> list[dict[str, Any]]:
    """A message's content as OpenAI content parts: each image (a data: URL), then the text."""
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": a.data_url()}} for a in images]
    if text:
        parts.append({"type": "text", "text": text})
    return parts


def _oldest_first(messages: Any) -> list[Message]:
    return sorted(messages, key=lambda m: m.created)  # stable: ties keep their order
