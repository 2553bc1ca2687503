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


@dataclass
class Conversation:
    title: str = "New chat"
    messages: list[Message] = field(default_factory=list)
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    pinned: bool = False
    settings: dict[str, Any] | None = None  # the conversation's own sampling settings snapshot

    def chat_messages(self, system_prompt: str = "") -> list[dict[str, str]]:
        """The turns to send to the model; empty failed or unfinished replies are left out."""
        turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
        for m in self.messages:
            if m.role is Role.ASSISTANT and not m.text:
                continue
            turns.append({"role": m.role.value, "content": m.text})
        return turns
