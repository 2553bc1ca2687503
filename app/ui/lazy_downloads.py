"""The download manager, made only when it is needed.

Building it imports the Hub client and its HTTP stack (huggingface_hub, httpx2) and reads the
keyring: about half a second of CPU that the window's first frame does not need. So the app
holds a :class:`LazyDownloads` and the queue is made when the downloads dialog opens, or just
after the first frame when the state file lists downloads that are not finished (the queue
then marks the ones that were running when Hearth quit as paused, trimmed to the bytes on disk).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import paths

if TYPE_CHECKING:
    from app.core.downloads import DownloadQueue
    from app.core.hub import HubClient

# DownloadState values (app.core.downloads) after which an item needs nothing more.
_SETTLED = {"complete", "cancelled"}


def pending_downloads(state_path: Path) -> bool:
    """Whether the queue's state file lists a download that is not complete or cancelled.

    Read as plain JSON, so asking costs no import of the download machinery; an unreadable
    file counts as pending, and the queue (which knows how to read it) decides."""
    try:
        data: Any = json.loads(state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return True
    return any(not isinstance(raw, dict) or raw.get("state") not in _SETTLED for raw in items)


class LazyDownloads:
    """(DownloadQueue, HubClient), built on the first :meth:`get`; settings given before that
    are kept and applied then."""

    def __init__(self, max_parallel: int = 1, endpoint: str | None = None) -> None:
        self._max_parallel = max_parallel
        self._endpoint = endpoint
        self._pair: tuple[DownloadQueue, HubClient] | None = None

    @classmethod
    def of(cls, queue: DownloadQueue, hub: HubClient) -> LazyDownloads:
        """A manager made already (tests, or a caller with its own endpoint)."""
        lazy = cls(queue.max_parallel)
        lazy._pair = (queue, hub)
        return lazy

    @property
    def started(self) -> bool:
        return self._pair is not None

    def pending(self) -> bool:
        return pending_downloads(paths.data_dir() / "downloads.json")

    def get(self) -> tuple[DownloadQueue, HubClient]:
        """The queue and the Hub client; the first call builds them (on the GUI thread)."""
        if self._pair is None:
            from app.ui.downloads import create_download_manager

            queue, hub, _bridge = create_download_manager(self._endpoint)
            queue.set_max_parallel(self._max_parallel)
            self._pair = (queue, hub)
        return self._pair

    def set_max_parallel(self, n: int) -> None:
        self._max_parallel = n
        if self._pair is not None:
            self._pair[0].set_max_parallel(n)

    def set_models_dir(self, folder: Path) -> None:
        """New downloads land here (a queue made later reads paths.models_dir() itself)."""
        if self._pair is not None:
            self._pair[0].models_dir = folder

    def close(self) -> None:
        """Partial downloads stay on disk and are listed as paused next time."""
        if self._pair is not None:
            self._pair[0].close()
