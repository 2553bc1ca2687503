"""The user's stop sequences, matched on the streamed text by the engine itself.

llama-cpp-python can match stop strings too, but it then reports only ``finish_reason
"stop"``, the same as for the model's own end of turn. A reply that ends empty has to say
why (the model ended at once, or a stop sequence came first), so the engine matches the
user's stop sequences here and knows which one ended the reply. The chat template's own turn
markers are still left to llama-cpp-python.

Like llama-cpp-python, text that could be the start of a stop sequence is held back until
the next piece shows whether it is one, so a stop sequence never reaches the window.
"""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: list[str] | tuple[str, ...]) -> None:
        self.stops = [s for s in stops if s]
        self.matched: str | None = None  # the stop sequence that ended the text
        self._held = ""

    def feed(self, text: str) -> str:
        """The part of the text so far that is safe to show. After a match, nothing more."""
        if self.matched is not None:
            return ""
        if not self.stops:
            return text
        buffer = self._held + text
        first: tuple[int, str] | None = None
        for stop in self.stops:
            at = buffer.find(stop)
            if at >= 0 and (first is None or at < first[0]):
                first = (at, stop)
        if first is not None:
            self.matched = first[1]
            self._held = ""
            return buffer[: first[0]]
        hold = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), hold, -1):
                if buffer.endswith(stop[:size]):
                    hold = size
                    break
        cut = len(buffer) - hold
        self._held = buffer[cut:]
        return buffer[:cut]

    def flush(self) -> str:
        """What was held back, now that no more text comes (it was no stop sequence)."""
        held, self._held = self._held, ""
        return "" if self.matched is not None else held
