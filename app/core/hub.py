"""Find GGUF models on the Hugging Face Hub: search, repo references, file listings.

A thin layer over the real ``huggingface_hub`` client, which knows the Hub's routes, auth
headers, redirects and error codes. It adds what Hearth needs on top: results as small
records, GGUF files grouped by quantization (split files as one entry), and every failure as
one of a few typed errors whose text a person can act on. The transfer of the files
themselves is :mod:`app.core.downloads` (the client cannot resume, cancel or verify).

API::

    client = HubClient(endpoint=None, token=None)      # endpoint None: huggingface.co
    client.search(query, sort="downloads"|"likes"|"recent", limit=50) -> list[RepoSummary]
    client.list_gguf_files(repo_id, revision=None) -> RepoFiles   # .files: list[QuantFile]
    client.download_url(repo_id, filename, revision="main") -> str
    client.check_access(repo_id, filename, revision="main") -> FileAccess   # HEAD; gated? size?
    parse_repo_ref(text) -> str | None                 # "owner/name" or a huggingface.co URL
    quant_label(filename) -> str | None                # "Q4_K_M", "IQ3_XXS", "F16", ...
    HubError > HubNotFound, HubGated, HubUnauthorized, HubOffline

Calls block (network): run them off the GUI thread. Each has a timeout.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx2
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo as HfModelInfo
from huggingface_hub.utils import get_session, hf_raise_for_status

DEFAULT_TIMEOUT = 15.0

GATED_MESSAGE = "This repo is gated: accept its license on huggingface.co and add an access token in Settings."
OFFLINE_MESSAGE = "Hugging Face could not be reached — check your connection."
UNAUTHORIZED_MESSAGE = "Hugging Face refused the access token: check it in Settings (or remove it for public models)."

SortKey = Literal["downloads", "likes", "recent"]
# Our sort names → the Hub's ``sort`` query values (what HfApi.list_models sends).
_SORTS: dict[str, str] = {"downloads": "downloads", "likes": "likes", "recent": "lastModified"}
# Ask only for what a result row shows: with ``expand`` the Hub returns just these (and the id).
_SEARCH_EXPAND = ["author", "downloads", "likes", "lastModified", "gated"]


class HubError(Exception):
    """Anything that went wrong talking to the Hub; ``str()`` is a sentence for the user."""


class HubNotFound(HubError):
    """No such repo, revision or file (or a private repo we may not see)."""


class HubGated(HubError):
    """The repo is gated and this token (or no token) has not been granted access."""


class HubUnauthorized(HubError):
    """The Hub refused the access token itself."""


class HubOffline(HubError):
    """No answer: DNS, refused connection, timeout, TLS, offline mode."""


@dataclass(frozen=True)
class RepoSummary:
    repo_id: str
    author: str
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool = False


@dataclass(frozen=True)
class QuantFile:
    """One model file as a person sees it: a single ``.gguf`` or all parts of a split one.

    ``size`` is the total of all parts (``None`` if the Hub did not give every part's size);
    ``sha256`` is the first part's LFS hash and ``parts_sha256``/``part_sizes`` follow
    ``filenames`` (split parts in order), which is what the download queue needs per file.
    """

    quant: str | None  # "Q4_K_M", "IQ2_XXS", "F16", ... None when the name carries no label
    name: str  # file name without folder and split suffix: what to show
    filenames: list[str]
    size: int | None
    sha256: str | None
    parts_sha256: list[str | None] = field(default_factory=list)
    part_sizes: list[int | None] = field(default_factory=list)
    complete: bool = True  # False: a split set with parts missing from the listing

    @property
    def is_split(self) -> bool:
        return len(self.filenames) > 1

    @property
    def is_projector(self) -> bool:
        """Vision projector (``mmproj``) files are not chat models on their own."""
        return "mmproj" in self.name.lower()


@dataclass(frozen=True)
class RepoFiles:
    repo_id: str
    revision: str | None  # the commit the listing describes: download from it, not "main"
    license: str | None
    gated: bool
    files: list[QuantFile]


@dataclass(frozen=True)
class FileAccess:
    """What a HEAD on the file's URL says: that we may download it, and how big it is."""

    url: str
    size: int | None
    etag: str | None
    commit: str | None


# --- parsing names and references -------------------------------------------------------------

_QUANT_RE = re.compile(
    r"(?<![a-z0-9])("
    r"i?q[1-8](?:_[01])?(?:_k)?(?:_(?:xxs|xs|s|m|l|xl|nl))?(?:_[48]_[48])?"
    r"|tq[12]_0|bf16|fp16|f16|fp32|f32|mxfp4(?:_moe)?"
    r")(?![a-z0-9])",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HUB_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
# First path segments of huggingface.co pages that are not model repos.
_NOT_MODEL_PREFIXES = {
    "datasets",
    "spaces",
    "models",
    "docs",
    "blog",
    "settings",
    "organizations",
    "collections",
    "papers",
    "api",
    "login",
    "join",
    "pricing",
    "tasks",
    "learn",
    "buckets",
    "kernels",
}


def quant_label(filename: str) -> str | None:
    """The quantization named in a GGUF file name (the last one, as names put it at the end)."""
    stem = posixpath.basename(filename)
    stem = re.sub(r"(-\d{5}-of-\d{5})?\.gguf$", "", stem, flags=re.IGNORECASE)
    matches = _QUANT_RE.findall(stem)
    if not matches:
        return None
    label: str = matches[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(label, label)


def is_valid_repo_id(repo_id: str) -> bool:
    parts = repo_id.split("/")
    return len(parts) == 2 and all(
        _REPO_PART_RE.match(p) and ".." not in p and "--" not in p and not p.endswith(".") for p in parts
    )


def parse_repo_ref(text: str) -> str | None:
    """``owner/name`` from what a person pastes: the id itself or a huggingface.co link.

    Accepts repo pages and ``/blob/…``, ``/tree/…``, ``/resolve/…`` links, with or without the
    scheme, and ``hf.co``; a ``:TAG`` suffix (as in ``hf.co/owner/name:Q4_K_M``) is dropped.
    Returns None for anything else, including dataset and Space links.
    """
    text = text.strip()
    if not text:
        return None
    if "://" in text or text.lower().split("/", 1)[0] in _HUB_HOSTS:
        url = urlsplit(text if "://" in text else "https://" + text)
        if url.scheme not in ("http", "https") or (url.hostname or "").lower() not in _HUB_HOSTS:
            return None
        parts = [unquote(p) for p in url.path.split("/") if p]
    else:
        parts = [p for p in text.split("/") if p]
        if len(parts) != 2:
            return None
    if len(parts) < 2 or parts[0].lower() in _NOT_MODEL_PREFIXES:
        return None
    owner, name = parts[0], parts[1].split(":", 1)[0]
    repo_id = f"{owner}/{name}"
    return repo_id if is_valid_repo_id(repo_id) else None


def _license_of(info: HfModelInfo) -> str | None:
    card = info.card_data
    license_ = getattr(card, "license", None) if card is not None else None
    if isinstance(license_, list):
        license_ = ", ".join(str(x) for x in license_)
    if license_:
        return str(license_)
    for tag in info.tags or []:
        if tag.startswith("license:"):
            return tag.split(":", 1)[1]
    return None


def _is_plain_relative(filename: str) -> bool:
    parts = filename.split("/")
    return not any(p in ("", ".", "..") for p in parts) and not any(c in filename for c in "\\:\0")


def group_gguf_files(siblings: list[tuple[str, int | None, str | None]]) -> list[QuantFile]:
    """Group ``(filename, size, sha256)`` rows into :class:`QuantFile` entries, smallest first."""
    singles: list[QuantFile] = []
    sets: dict[tuple[str, int], dict[int, tuple[str, int | None, str | None]]] = {}
    for filename, size, sha in siblings:
        if not filename.lower().endswith(".gguf") or not _is_plain_relative(filename):
            continue  # names that could escape a folder are not offered at all (the queue refuses them too)
        match = _SPLIT_RE.match(filename)
        if match and int(match["count"]) > 1 and 1 <= int(match["index"]) <= int(match["count"]):
            key = (match["base"], int(match["count"]))
            sets.setdefault(key, {})[int(match["index"])] = (filename, size, sha)
            continue
        stem = posixpath.basename(filename)[: -len(".gguf")]
        singles.append(QuantFile(quant_label(filename), stem, [filename], size, sha, [sha], [size]))
    for (base, count), parts in sets.items():
        ordered = [parts[i] for i in sorted(parts)]
        sizes = [p[1] for p in ordered]
        shas = [p[2] for p in ordered]
        total = sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
        singles.append(
            QuantFile(
                quant=quant_label(base + ".gguf"),
                name=posixpath.basename(base),
                filenames=[p[0] for p in ordered],
                size=total,
                sha256=shas[0],
                parts_sha256=shas,
                part_sizes=sizes,
                complete=len(parts) == count and 1 in parts,
            )
        )
    return sorted(singles, key=lambda q: (q.size is None, q.size or 0, q.name))


# --- errors --------------------------------------------------------------------------------------


def _translate(exc: BaseException, what: str) -> HubError:
    """One of our typed errors, with a sentence, for anything the client or the network raised."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return HubGated(GATED_MESSAGE)
    if isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)):
        return HubNotFound(
            f"{what} was not found on Hugging Face. Check the name; if it is a private repo, "
            "add an access token in Settings."
        )
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return HubUnauthorized(UNAUTHORIZED_MESSAGE)
        if status == 403:
            return HubGated(GATED_MESSAGE)
        if status == 404:
            return HubNotFound(f"{what} was not found on Hugging Face.")
        if status == 429:
            return HubError("Hugging Face is limiting requests right now: wait a minute and try again.")
        if status is not None and status >= 500:
            return HubError(f"Hugging Face had a problem (error {status}): try again in a few minutes.")
        return HubError(f"Hugging Face answered with an error ({status}) for {what}.")
    if isinstance(exc, (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError, TimeoutError)):
        return HubOffline(OFFLINE_MESSAGE)
    if isinstance(exc, HFValidationError):
        return HubNotFound(f"{what} is not a valid Hugging Face repo name.")
    if isinstance(exc, (ValueError, KeyError, TypeError)):  # a reply we could not read
        return HubError(f"Hugging Face sent a reply Hearth could not read for {what}.")
    return HubError(f"Could not talk to Hugging Face: {exc}")


# --- the client ------------------------------------------------------------------------------------


class HubClient:
    """The Hub as Hearth uses it. ``token`` None means anonymous (the user's saved
    ``huggingface-cli`` token is deliberately not picked up: Hearth's token lives in Settings)."""

    def __init__(self, endpoint: str | None = None, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self._token: str | bool = token or False
        self._api = HfApi(endpoint=endpoint.rstrip("/") if endpoint else None, token=self._token)
        self.timeout = timeout

    @property
    def endpoint(self) -> str:
        return self._api.endpoint

    def set_token(self, token: str | None) -> None:
        self._token = token or False
        self._api.token = self._token

    def search(self, query: str, sort: SortKey = "downloads", limit: int = 50) -> list[RepoSummary]:
        """GGUF repos whose name matches ``query``, best first by ``sort``.

        Sends the same ``/api/models`` query as ``HfApi.list_models(filter="gguf", ...)`` but as
        one request through the client's session: ``list_models`` has no timeout and retries a
        refused connection for ~25 s, too long for a search box that should say "offline" now.
        """
        if sort not in _SORTS:
            raise ValueError(f"unknown sort {sort!r}")
        params: dict[str, Any] = {
            "filter": ["gguf"],
            "sort": _SORTS[sort],
            "direction": -1,
            "limit": max(1, min(int(limit), 1000)),
            "expand": _SEARCH_EXPAND,
        }
        if query.strip():
            params["search"] = query.strip()
        try:
            response = get_session().get(
                f"{self.endpoint}/api/models",
                params=params,
                headers=self._api._build_hf_headers(),
                timeout=self.timeout,
            )
            hf_raise_for_status(response)
            items = response.json()
            results = []
            for item in items[:limit]:
                # huggingface_hub leaves ModelInfo.__init__(self, **kwargs) unannotated
                info = HfModelInfo(**{"siblings": None, **item})  # type: ignore[no-untyped-call]
                results.append(
                    RepoSummary(
                        repo_id=info.id,
                        author=info.author or info.id.split("/", 1)[0],
                        downloads=int(info.downloads or 0),
                        likes=int(info.likes or 0),
                        last_modified=info.last_modified,
                        gated=bool(info.gated),
                    )
                )
            return results
        except Exception as exc:
            raise _translate(exc, "The search") from exc

    def list_gguf_files(self, repo_id: str, revision: str | None = None) -> RepoFiles:
        """The repo's GGUF files with sizes and LFS sha256, grouped (see :func:`group_gguf_files`)."""
        if not is_valid_repo_id(repo_id):
            raise HubNotFound(f"“{repo_id}” is not a valid Hugging Face repo name (expected owner/name).")
        try:
            info = self._api.model_info(repo_id, revision=revision, files_metadata=True, timeout=self.timeout)
        except Exception as exc:
            raise _translate(exc, f"The repo {repo_id}") from exc
        rows = [
            (s.rfilename, s.lfs.size if s.lfs else s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings or []
        ]
        return RepoFiles(
            repo_id=info.id or repo_id,
            revision=info.sha,
            license=_license_of(info),
            gated=bool(info.gated),
            files=group_gguf_files(rows),
        )

    def download_url(self, repo_id: str, filename: str, revision: str | None = "main") -> str:
        return hf_hub_url(repo_id, filename, revision=revision or "main", endpoint=self.endpoint)

    def check_access(self, repo_id: str, filename: str, revision: str | None = "main") -> FileAccess:
        """HEAD the file as the client would: raises HubGated/HubNotFound before anything is queued."""
        url = self.download_url(repo_id, filename, revision)
        try:
            meta = get_hf_file_metadata(url, token=self._token, timeout=self.timeout, endpoint=self.endpoint)
        except Exception as exc:
            raise _translate(exc, f"The file {filename}") from exc
        return FileAccess(url=url, size=meta.size, etag=meta.etag, commit=meta.commit_hash)
