"""Conversation records: what the chat view shows and what gets saved."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any


class Role(str, enum.Enum):
    # Values are stored on disk: never change or reuse one.
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageState(str, enum.Enum):
    # Values are stored on disk: never change or reuse one.
    COMPLETE = "complete"
    STREAMING = "streaming"
    STOPPED = "stopped"  # the user pressed Stop
    INTERRUPTED = "interrupted"  # the engine died or the app closed mid-reply
    FAILED = "failed"


@dataclass
class Message:
    role: Role
    text: str
    state: MessageState = MessageState.COMPLETE
    model: str | None = None
    settings: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)


@dataclass
class Conversation:
    title: str = "New chat"
    messages: list[Message] = field(default_factory=list)

    def chat_messages(self, system_prompt: str = "") -> list[dict[str, str]]:
        """The turns to send to the model: finished text only, partial replies included."""
        turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
        for m in self.messages:
            if m.role is Role.ASSISTANT and m.state in (MessageState.STREAMING, MessageState.FAILED) and not m.text:
                continue
            turns.append({"role": m.role.value, "content": m.text})
        return turns
