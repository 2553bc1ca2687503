"""Hub search, repo references, GGUF file grouping and errors, against the local fake Hub
with the real huggingface_hub client (nothing leaves 127.0.0.1)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import socket
import time
from pathlib import Path

import pytest
from fake_hub import FakeFile, FakeHub, make_content, sha256_hex

from app.core.hub import (
    GATED_MESSAGE,
    HubClient,
    HubError,
    HubGated,
    HubNotFound,
    HubOffline,
    HubUnauthorized,
    parse_repo_ref,
    quant_label,
)


@pytest.fixture(autouse=True)
def hf_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def hub():
    with FakeHub() as server:
        server.add_repo(
            "alice/Tiny-Llama-GGUF",
            {
                "tiny-llama.Q8_0.gguf": make_content(3000, 1),
                "tiny-llama.Q4_K_M.gguf": make_content(2000, 2),
                "tiny-llama.IQ2_XXS.gguf": make_content(1000, 3),
                "tiny-llama-f16-00001-of-00003.gguf": make_content(1500, 4),
                "tiny-llama-f16-00002-of-00003.gguf": make_content(1500, 5),
                "tiny-llama-f16-00003-of-00003.gguf": make_content(700, 6),
                "mmproj-tiny-llama-F16.gguf": make_content(400, 7),
                "README.md": FakeFile(b"# Tiny", lfs=False),
                "config.json": FakeFile(b"{}", lfs=False),
            },
            downloads=500,
            likes=10,
            last_modified="2024-03-01T10:00:00.000Z",
            license="llama3.1",
        )
        server.add_repo(
            "bob/popular-llama-gguf",
            {"model-q5_k_s.gguf": make_content(100, 8)},
            downloads=90_000,
            likes=3,
            last_modified="2023-01-01T00:00:00.000Z",
        )
        server.add_repo(
            "carol/fresh-llama-GGUF",
            {"Q6_K/model-Q6_K.gguf": make_content(100, 9)},
            downloads=7,
            likes=400,
            last_modified="2025-06-01T00:00:00.000Z",
            gated="manual",
            license=None,
            allowed_tokens={"hf_granted"},
        )
        server.add_repo("dave/llama-safetensors", {"model.safetensors": make_content(10)}, tags=["safetensors"])
        server.valid_tokens |= {"hf_granted", "hf_other"}
        yield server


def test_search_filters_gguf_repos_and_sorts(hub: FakeHub) -> None:
    client = HubClient(endpoint=hub.url)

    by_downloads = client.search("llama", sort="downloads")
    assert [r.repo_id for r in by_downloads] == [
        "bob/popular-llama-gguf",
        "alice/Tiny-Llama-GGUF",
        "carol/fresh-llama-GGUF",
    ]  # the safetensors-only repo is not a GGUF repo
    tiny = by_downloads[1]
    assert (tiny.author, tiny.downloads, tiny.likes) == ("alice", 500, 10)
    assert tiny.last_modified is not None and tiny.last_modified.year == 2024
    assert by_downloads[2].gated and not tiny.gated

    assert [r.repo_id for r in client.search("llama", sort="likes")][0] == "carol/fresh-llama-GGUF"
    assert [r.repo_id for r in client.search("llama", sort="recent")] == [
        "carol/fresh-llama-GGUF",
        "alice/Tiny-Llama-GGUF",
        "bob/popular-llama-gguf",
    ]
    assert [r.repo_id for r in client.search("TINY")] == ["alice/Tiny-Llama-GGUF"]
    assert len(client.search("llama", limit=2)) == 2
    assert client.search("no-such-thing") == []

    query = hub.requests[0].query
    assert query["filter"] == ["gguf"] and query["sort"] == ["downloads"] and query["search"] == ["llama"]


def test_parse_repo_ref() -> None:
    cases = {
        "alice/Tiny-Llama-GGUF": "alice/Tiny-Llama-GGUF",
        "  alice/Tiny-Llama-GGUF  ": "alice/Tiny-Llama-GGUF",
        "https://huggingface.co/alice/Tiny-Llama-GGUF": "alice/Tiny-Llama-GGUF",
        "https://huggingface.co/alice/Tiny-Llama-GGUF/": "alice/Tiny-Llama-GGUF",
        "huggingface.co/alice/Tiny-Llama-GGUF": "alice/Tiny-Llama-GGUF",
        "https://huggingface.co/alice/Tiny-Llama-GGUF/blob/main/tiny-llama.Q4_K_M.gguf": "alice/Tiny-Llama-GGUF",
        "https://huggingface.co/alice/Tiny-Llama-GGUF/tree/main": "alice/Tiny-Llama-GGUF",
        "https://huggingface.co/alice/Tiny-Llama-GGUF/resolve/main/x.gguf?download=true": "alice/Tiny-Llama-GGUF",
        "https://hf.co/alice/Tiny-Llama-GGUF:Q4_K_M": "alice/Tiny-Llama-GGUF",
        "https://huggingface.co/alice/Tiny-Llama-GGUF#files": "alice/Tiny-Llama-GGUF",
        "": None,
        "just-a-word": None,
        "a/b/c": None,
        "https://huggingface.co/datasets/alice/data": None,
        "https://huggingface.co/spaces/alice/demo": None,
        "https://huggingface.co/models?search=llama": None,
        "https://huggingface.co/alice": None,
        "https://example.com/alice/Tiny-Llama-GGUF": None,
        "ftp://huggingface.co/alice/x": None,
        "alice/../etc": None,
        "../x": None,
        "alice/na me": None,
    }
    for text, expected in cases.items():
        assert parse_repo_ref(text) == expected, text


def test_quant_labels() -> None:
    cases = {
        "Llama-3.2-1B-Instruct-Q4_K_M.gguf": "Q4_K_M",
        "model.q8_0.gguf": "Q8_0",
        "model-IQ2_XXS.gguf": "IQ2_XXS",
        "model-iq4_nl.gguf": "IQ4_NL",
        "Qwen2.5-7B-Instruct-Q3_K_L-00001-of-00002.gguf": "Q3_K_L",
        "Q6_K/model-Q6_K.gguf": "Q6_K",
        "model-f16.gguf": "F16",
        "model-BF16.gguf": "BF16",
        "model.fp32.gguf": "F32",
        "model-Q4_0_4_4.gguf": "Q4_0_4_4",
        "UD-Q4_K_XL/model-UD-Q4_K_XL.gguf": "Q4_K_XL",
        "qwen2-0_5b.gguf": None,
        "model.gguf": None,
    }
    for name, expected in cases.items():
        assert quant_label(name) == expected, name


def test_list_gguf_files_groups_splits_and_sorts_by_size(hub: FakeHub) -> None:
    files = HubClient(endpoint=hub.url).list_gguf_files("alice/Tiny-Llama-GGUF")
    repo = hub.repos["alice/Tiny-Llama-GGUF"]
    assert files.repo_id == "alice/Tiny-Llama-GGUF"
    assert files.license == "llama3.1" and files.gated is False
    assert files.revision == repo.sha  # downloads can be pinned to the listed commit

    assert [(f.quant, f.size) for f in files.files] == [
        ("F16", 400),
        ("IQ2_XXS", 1000),
        ("Q4_K_M", 2000),
        ("Q8_0", 3000),
        ("F16", 3700),
    ]
    projector, _, q4, _, split = files.files
    assert projector.is_projector and not q4.is_projector
    assert split.is_split and split.complete and split.name == "tiny-llama-f16"
    assert split.filenames == [f"tiny-llama-f16-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split.part_sizes == [1500, 1500, 700]
    assert split.parts_sha256 == [sha256_hex(repo.files[n].content) for n in split.filenames]
    assert split.sha256 == split.parts_sha256[0]
    assert q4.filenames == ["tiny-llama.Q4_K_M.gguf"] and not q4.is_split
    assert q4.sha256 == sha256_hex(repo.files["tiny-llama.Q4_K_M.gguf"].content)
    assert hub.requests[-1].query.get("blobs") == ["true"]  # files_metadata=True: sizes and LFS hashes


def test_split_set_with_a_missing_part_is_marked_incomplete(hub: FakeHub) -> None:
    hub.add_repo(
        "erin/broken-GGUF",
        {
            "m-Q4_K_M-00001-of-00003.gguf": make_content(10),
            "m-Q4_K_M-00003-of-00003.gguf": make_content(10),
            "../../evil-Q4_K_M.gguf": make_content(10),  # untrusted names are not even listed
            "/abs-Q8_0.gguf": make_content(10),
            "dir\\win-Q8_0.gguf": make_content(10),
        },
    )
    (entry,) = HubClient(endpoint=hub.url).list_gguf_files("erin/broken-GGUF").files
    assert entry.is_split and not entry.complete and entry.size == 20


def test_gated_repo_lists_but_file_access_needs_a_granted_token(hub: FakeHub) -> None:
    files = HubClient(endpoint=hub.url).list_gguf_files("carol/fresh-llama-GGUF")
    assert files.gated is True and files.license is None
    assert [f.filenames for f in files.files] == [["Q6_K/model-Q6_K.gguf"]]

    with pytest.raises(HubGated) as anonymous:
        HubClient(endpoint=hub.url).check_access("carol/fresh-llama-GGUF", "Q6_K/model-Q6_K.gguf")
    assert str(anonymous.value) == GATED_MESSAGE
    with pytest.raises(HubGated):
        HubClient(endpoint=hub.url, token="hf_other").check_access("carol/fresh-llama-GGUF", "Q6_K/model-Q6_K.gguf")

    access = HubClient(endpoint=hub.url, token="hf_granted").check_access(
        "carol/fresh-llama-GGUF", "Q6_K/model-Q6_K.gguf"
    )
    assert access.size == 100 and access.commit == hub.repos["carol/fresh-llama-GGUF"].sha
    assert hub.requests[-1].headers["authorization"] == "Bearer hf_granted"


def test_not_found_unauthorized_and_server_errors_are_typed(hub: FakeHub) -> None:
    client = HubClient(endpoint=hub.url)
    with pytest.raises(HubNotFound, match="nobody/nothing was not found"):
        client.list_gguf_files("nobody/nothing")
    with pytest.raises(HubNotFound, match="not a valid"):
        client.list_gguf_files("not a repo")
    with pytest.raises(HubNotFound):
        client.list_gguf_files("alice/Tiny-Llama-GGUF", revision="no-such-branch")
    with pytest.raises(HubNotFound):
        client.check_access("alice/Tiny-Llama-GGUF", "missing.gguf")
    with pytest.raises(HubUnauthorized, match="access token"):
        HubClient(endpoint=hub.url, token="hf_wrong").search("llama")

    hub.fail(503, match="/api/models")
    with pytest.raises(HubError, match="error 503") as server_error:
        client.search("llama")
    assert not isinstance(server_error.value, (HubNotFound, HubOffline))

    client.set_token("hf_granted")
    assert client.check_access("carol/fresh-llama-GGUF", "Q6_K/model-Q6_K.gguf").size == 100


def test_unreachable_hub_says_offline_quickly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = HubClient(endpoint=url)
    began = time.monotonic()
    with pytest.raises(HubOffline, match="could not be reached"):
        client.search("llama")
    with pytest.raises(HubOffline):
        client.list_gguf_files("alice/Tiny-Llama-GGUF")
    assert time.monotonic() - began < 5  # no silent retry loop behind the search box


def test_download_url_is_built_by_the_client(hub: FakeHub) -> None:
    client = HubClient(endpoint=hub.url)
    assert client.download_url("alice/Tiny-Llama-GGUF", "Q6_K/a b.gguf", revision="abc") == (
        f"{hub.url}/alice/Tiny-Llama-GGUF/resolve/abc/Q6_K/a%20b.gguf"
    )
    assert HubClient().download_url("a/b", "c.gguf") == "https://huggingface.co/a/b/resolve/main/c.gguf"
