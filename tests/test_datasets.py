"""Fine-tuning datasets: rows checked one by one against the documented formats, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.datasets import DatasetError, DatasetSpec, build, parse_date, rows_for, write_jsonl
from app.core.store import ConversationStore

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "Answer in one short sentence."
SETTINGS = {"system_prompt": SYSTEM, "temperature": 0.7}


def check_sft_row(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The OpenAI chat format: {"messages": [{"role", "content"}…]} ending with the assistant."""
    assert set(row) == {"messages"}
    turns = row["messages"]
    assert isinstance(turns, list) and turns
    for i, t in enumerate(turns):
        assert set(t) == {"role", "content"} and isinstance(t["content"], str) and t["content"]
        assert t["role"] in {"user", "assistant"} or (t["role"] == "system" and i == 0)
    assert turns[-1]["role"] == "assistant"
    return [(t["role"], t["content"]) for t in turns]


def check_sharegpt_row(row: dict[str, Any]) -> list[tuple[str, str]]:
    assert set(row) == {"conversations"}
    turns = row["conversations"]
    for i, t in enumerate(turns):
        assert set(t) == {"from", "value"} and isinstance(t["value"], str)
        assert t["from"] in {"human", "gpt"} or (t["from"] == "system" and i == 0)
    assert turns[-1]["from"] == "gpt"
    return [(t["from"], t["value"]) for t in turns]


def check_preference_row(row: dict[str, Any]) -> tuple[list[tuple[str, str]], str, str]:
    """TRL's conversational preference format with an explicit prompt."""
    assert set(row) == {"prompt", "chosen", "rejected"}
    prompt = row["prompt"]
    for i, t in enumerate(prompt):
        assert set(t) == {"role", "content"} and isinstance(t["content"], str)
        assert t["role"] in {"user", "assistant"} or (t["role"] == "system" and i == 0)
    assert prompt[-1]["role"] == "user"
    for key in ("chosen", "rejected"):
        assert isinstance(row[key], list) and len(row[key]) == 1
        assert set(row[key][0]) == {"role", "content"} and row[key][0]["role"] == "assistant"
    return [(t["role"], t["content"]) for t in prompt], row["chosen"][0]["content"], row["rejected"][0]["content"]


def msg(role: Role, text: str, at: float, parent: Message | None = None, **kw: Any) -> Message:
    return Message(role, text, created=at, parent_id=parent.id if parent else None, **kw)


def tutor_chat() -> Conversation:
    """A system prompt, one few-shot example, two turns; the first reply has a 👎 version and
    the second a stopped one."""
    conv = Conversation(title="tutor", settings={**SETTINGS, "few_shot": [["2+2?", "4."]]}, created=1000)
    u1 = msg(Role.USER, "What is a quokka?", 1001)
    a1 = msg(Role.ASSISTANT, "A small wallaby.", 1002, u1, model="Model A", settings=SETTINGS, rating=1)
    a1b = msg(Role.ASSISTANT, "A kind of bird.", 1003, u1, model="Model B", settings=SETTINGS, rating=-1)
    u2 = msg(Role.USER, "Where does it live?", 1004, a1)
    a2 = msg(Role.ASSISTANT, "On Rottnest Island.", 1005, u2, model="Model A", settings=SETTINGS)
    a2b = msg(Role.ASSISTANT, "On Rott", 1006, u2, model="Model A", settings=SETTINGS, state=MessageState.STOPPED)
    conv.messages = [u1, a1, u2, a2]
    for m in (a1b, a2b):
        m.active = False
    conv.branches = [a1b, a2b]
    return conv


PREAMBLE = [("system", SYSTEM), ("user", "2+2?"), ("assistant", "4.")]


def test_sft_rows_follow_every_branch_with_the_system_prompt_and_few_shot_turns() -> None:
    rows = rows_for(tutor_chat(), DatasetSpec(kind="sft"))
    got = sorted(check_sft_row(r) for r in rows)
    assert got == sorted(
        [
            # the path through both shown replies; its first half is not a row of its own
            PREAMBLE
            + [
                ("user", "What is a quokka?"),
                ("assistant", "A small wallaby."),
                ("user", "Where does it live?"),
                ("assistant", "On Rottnest Island."),
            ],
            # the other version of the first reply (the stopped one is left out)
            PREAMBLE + [("user", "What is a quokka?"), ("assistant", "A kind of bird.")],
        ]
    )


def test_sft_rating_filters_and_incomplete_replies() -> None:
    good = [check_sft_row(r) for r in rows_for(tutor_chat(), DatasetSpec(rating="good"))]
    assert good == [PREAMBLE + [("user", "What is a quokka?"), ("assistant", "A small wallaby.")]]
    not_bad = [check_sft_row(r)[-1] for r in rows_for(tutor_chat(), DatasetSpec(rating="not_bad"))]
    assert not_bad == [("assistant", "On Rottnest Island.")]
    everything = [check_sft_row(r)[-1][1] for r in rows_for(tutor_chat(), DatasetSpec(include_incomplete=True))]
    assert sorted(everything) == ["A kind of bird.", "On Rott", "On Rottnest Island."]


def test_sft_model_date_and_pinned_filters() -> None:
    by_b = [check_sft_row(r)[-1][1] for r in rows_for(tutor_chat(), DatasetSpec(models=("Model B",)))]
    assert by_b == ["A kind of bird."]
    early = [check_sft_row(r)[-1][1] for r in rows_for(tutor_chat(), DatasetSpec(until=1002.5))]
    assert early == ["A small wallaby."]
    assert rows_for(tutor_chat(), DatasetSpec(since=2000)) == []
    assert rows_for(tutor_chat(), DatasetSpec(pinned_only=True)) == []
    pinned = tutor_chat()
    pinned.pinned = True
    assert len(rows_for(pinned, DatasetSpec(pinned_only=True))) == 2


def test_sharegpt_rows() -> None:
    rows = rows_for(tutor_chat(), DatasetSpec(rating="good", fmt="sharegpt"))
    assert [check_sharegpt_row(r) for r in rows] == [
        [
            ("system", SYSTEM),
            ("human", "2+2?"),
            ("gpt", "4."),
            ("human", "What is a quokka?"),
            ("gpt", "A small wallaby."),
        ]
    ]
    pairs = rows_for(tutor_chat(), DatasetSpec(kind="preferences", fmt="sharegpt"))
    assert pairs == [
        {
            "conversations": [
                {"from": "system", "value": SYSTEM},
                {"from": "human", "value": "2+2?"},
                {"from": "gpt", "value": "4."},
                {"from": "human", "value": "What is a quokka?"},
            ],
            "chosen": {"from": "gpt", "value": "A small wallaby."},
            "rejected": {"from": "gpt", "value": "A kind of bird."},
        }
    ]


def test_preference_pairs_from_ratings_and_from_the_preferred_version() -> None:
    conv = tutor_chat()
    rows = rows_for(conv, DatasetSpec(kind="preferences"))
    assert [check_preference_row(r) for r in rows] == [
        (PREAMBLE + [("user", "What is a quokka?")], "A small wallaby.", "A kind of bird.")
    ]
    # "this one is better" beats the thumbs: the preferred version is chosen over each other one
    conv.set_preferred(conv.branches[0].id)  # the 👎 "bird" version
    conv.set_preferred(conv.messages[3].id)  # the complete second reply over the stopped one
    rows = rows_for(conv, DatasetSpec(kind="preferences", include_incomplete=True))
    got = sorted(check_preference_row(r)[1:] for r in rows)
    assert got == [("A kind of bird.", "A small wallaby."), ("On Rottnest Island.", "On Rott")]
    second = next(r for r in rows if r["chosen"][0]["content"] == "On Rottnest Island.")
    assert check_preference_row(second)[0] == PREAMBLE + [
        ("user", "What is a quokka?"),
        ("assistant", "A small wallaby."),
        ("user", "Where does it live?"),
    ]
    # without include_incomplete the stopped version makes no pair
    rows = rows_for(conv, DatasetSpec(kind="preferences"))
    assert [check_preference_row(r)[1] for r in rows] == ["A kind of bird."]


def test_an_edited_question_gives_its_own_rows() -> None:
    conv = Conversation(title="edited", created=0)
    q1 = msg(Role.USER, "Capital of France?", 1)
    r1 = msg(Role.ASSISTANT, "Paris.", 2, q1)
    q2 = msg(Role.USER, "Capital of Italy?", 3)  # an edit of the first question: another root
    r2 = msg(Role.ASSISTANT, "Rome.", 4, q2)
    conv.messages = [q2, r2]
    conv.branches = [q1, r1]
    q1.active = r1.active = False
    got = sorted(check_sft_row(r) for r in rows_for(conv, DatasetSpec()))
    assert got == [
        [("user", "Capital of France?"), ("assistant", "Paris.")],
        [("user", "Capital of Italy?"), ("assistant", "Rome.")],
    ]
    assert rows_for(conv, DatasetSpec(kind="preferences")) == []  # user versions are not pairs


def test_build_reads_the_store_and_write_jsonl(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.db")
    try:
        store.import_conversations([tutor_chat(), Conversation(title="empty")])
        seen: list[tuple[int, int]] = []
        result = build(store, DatasetSpec(), progress=lambda d, t: seen.append((d, t)))
    finally:
        store.close()
    assert (result.conversations, result.used, len(result.rows)) == (2, 1, 2)
    assert seen[-1] == (2, 2)
    out = tmp_path / "sft.jsonl"
    write_jsonl(out, result.rows)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == result.rows
    with pytest.raises(DatasetError, match="does not exist"):
        write_jsonl(tmp_path / "no" / "such" / "x.jsonl", result.rows)
    with pytest.raises(DatasetError, match="not a date"):
        parse_date("last tuesday")
    with pytest.raises(DatasetError, match="after the end"):
        DatasetSpec(since=10, until=5).check()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "app", "dataset", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_on_an_empty_data_folder(tmp_path: Path) -> None:
    out = tmp_path / "empty.jsonl"
    done = _cli("--data-dir", str(tmp_path / "home"), "--kind", "sft", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "0 rows (SFT conversations) from 0 of 0" in done.stdout
    assert out.read_text() == ""


def test_cli_on_a_folder_with_conversations(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = ConversationStore(home / "data" / "conversations.sqlite3")
    store.import_conversations([tutor_chat()])
    store.close()
    out = tmp_path / "prefs.jsonl"
    done = _cli("--data-dir", str(home), "--kind", "preferences", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [check_preference_row(r)[1:] for r in rows] == [("A small wallaby.", "A kind of bird.")]
    out = tmp_path / "sft.jsonl"
    done = _cli("--data-dir", str(home), "--kind", "sft", "--format", "sharegpt", "--rating", "good", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [check_sharegpt_row(r)[-1] for r in rows] == [("gpt", "A small wallaby.")]
    done = _cli("--data-dir", str(home), "--kind", "sft", "--model", "Model B", "--since", "1970-01-01", "--dry-run")
    assert done.returncode == 0 and "1 row (SFT conversations) from 1 of 1" in done.stdout
    # bad input: plain messages, no traceback
    bad = _cli("--data-dir", str(home), "--kind", "sft", "--since", "yesterday", "--out", str(out))
    assert bad.returncode == 2 and "not a date" in bad.stderr and "Traceback" not in bad.stderr
    bad = _cli("--data-dir", str(home), "--kind", "sft", "--out", str(tmp_path / "missing" / "x.jsonl"))
    assert bad.returncode == 1 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_the_cli_does_not_import_qt() -> None:
    code = "import sys, app.cli_dataset, app.core.datasets; print(any('PySide6' in m for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_collection_filter_in_build_and_the_cli(tmp_path: Path) -> None:
    """Conversations that use a document collection (Hearth's way to group chats by subject)."""
    from app.core.documents.index import DocumentIndex

    home = tmp_path / "home"
    store = ConversationStore(home / "data" / "conversations.sqlite3")
    marsupials, other = tutor_chat(), tutor_chat()
    other.id, other.title = "other-chat", "Other"
    for m in other.all_messages():
        m.id = "o-" + m.id
        m.parent_id = ("o-" + m.parent_id) if m.parent_id else None
    store.import_conversations([marsupials, other])
    index = DocumentIndex(home / "data" / "documents.sqlite3")
    zoology = index.create_collection("Zoology")
    index.create_collection("Empty")
    index.enable_collection(marsupials.id, zoology.id)
    try:
        everything = build(store, DatasetSpec())
        only = build(store, DatasetSpec(collections=("zoology",)), documents=index)  # names ignore case
        none = build(store, DatasetSpec(collections=("Empty",)), documents=index)
        with pytest.raises(DatasetError, match="no collection named “Botany”"):
            build(store, DatasetSpec(collections=("Botany",)), documents=index)
        with pytest.raises(DatasetError, match="no document collections"):
            build(store, DatasetSpec(collections=("Zoology",)))
    finally:
        store.close()
    assert everything.used == 2 and only.used == 1 and none.rows == []
    assert len(only.rows) * 2 == len(everything.rows)

    out = tmp_path / "zoo.jsonl"
    done = _cli("--data-dir", str(home), "--kind", "sft", "--collection", "Zoology", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(only.rows)
    done = _cli("--data-dir", str(home), "--kind", "sft", "--collection", "Botany", "--dry-run")
    assert done.returncode == 1 and "no collection named “Botany”" in done.stderr
