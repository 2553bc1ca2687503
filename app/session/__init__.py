"""The chat session, split by responsibility: ``chat`` (conversations and generation),
``models`` (what can be chosen: files and connections), ``documents`` (attachments, indexing,
hybrid retrieval) and ``state`` (the engine's state as the window shows it)."""

from app.session.chat import ChatSession
from app.session.state import EngineState

__all__ = ["ChatSession", "EngineState"]
