"""Rating replies in the window: the Good / Bad / Prefer links under a reply, the message menu,
the keyboard (Alt+G, Alt+B, Alt+P), and the count per model in Manage models."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QTextCursor

from app.core.conversation import Conversation, Message, Role
from app.ui.model_table import Column


def _href_present(view, part: str) -> bool:
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            if part in it.fragment().charFormat().anchorHref():
                return True
            it += 1
        block = block.next()
    return False


def _click(qtbot, view, part: str) -> None:
    doc = view.document()
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if part in fragment.charFormat().anchorHref():
                cursor = QTextCursor(doc)
                cursor.setPosition(fragment.position() + fragment.length() // 2)
                view.setTextCursor(cursor)
                view.ensureCursorVisible()
                qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.cursorRect(cursor).center())
                return
            it += 1
        block = block.next()
    raise AssertionError(f"no link to {part!r} in the chat view")


def test_rate_and_prefer_a_reply_and_the_library_counts_it(qtbot, open_main_window) -> None:
    window = open_main_window()
    session, view = window.session, window.chat_view
    name = session.current_model.name
    conv = Conversation(title="to rate")
    question = Message(Role.USER, "Name a colour.", created=1)
    old = Message(Role.ASSISTANT, "Teal.", model=name, created=2, parent_id=question.id, active=False)
    new = Message(Role.ASSISTANT, "Crimson.", model=name, created=3)
    conv.messages = [question, new]
    conv.link()
    conv.branches = [old]
    session.store.import_conversations([conv])
    assert session.conversations.open_conversation(conv.id)
    assert _href_present(view, f"rate-good/{new.id}/on") and _href_present(view, f"prefer/{new.id}/on")

    # the Good link under the reply
    _click(qtbot, view, f"rate-good/{new.id}/on")
    qtbot.waitUntil(lambda: session.conversation.find(new.id).rating == 1)
    assert _href_present(view, f"rate-good/{new.id}/off")  # drawn as rated; a click takes it back
    assert session.store.load(conv.id).messages[-1].rating == 1

    # the message menu: Prefer this version (the reply has two)
    cursor = view.document().find("Crimson.")
    menu = view.build_context_menu(view.cursorRect(cursor).center())
    prefer = menu.findChild(QAction, "preferVersionAction")
    assert prefer is not None and not prefer.isChecked()
    assert menu.findChild(QAction, "rateGoodAction").isChecked()
    prefer.trigger()
    menu.deleteLater()
    stored = {m.id: m for m in session.store.load(conv.id).all_messages()}
    assert stored[new.id].preferred and not stored[old.id].preferred
    assert _href_present(view, f"prefer/{new.id}/off")

    # the keyboard: Alt+B rates the newest reply bad (the Good mark goes)
    bad = window.findChild(QAction, "rateBadMenuAction")
    assert bad.shortcut().toString() == "Alt+B"
    bad.trigger()
    assert session.conversation.find(new.id).rating == -1
    assert session.store.load(conv.id).messages[-1].rating == -1

    # the other version, rated good through the session, counts too
    session.conversations.rate(old.id, 1)
    dialog = window.show_models()
    row = dialog.model.row_of(session.current_model.path)
    cell = dialog.model.index(row, Column.RATINGS)
    qtbot.waitUntil(lambda: cell.data() == "+1 / −1", timeout=5000)
    assert dialog.model.headerData(Column.RATINGS, Qt.Orientation.Horizontal) == "Ratings"
    # rating with the dialog open updates it
    window.findChild(QAction, "rateGoodMenuAction").trigger()
    qtbot.waitUntil(lambda: cell.data() == "+2 / −0", timeout=5000)
    dialog.close()


def test_export_dataset_dialog_previews_counts_and_writes(qtbot, open_main_window, tmp_path) -> None:
    import json

    from tests.test_datasets import check_preference_row, check_sft_row, tutor_chat

    window = open_main_window()
    window.session.store.import_conversations([tutor_chat()])
    action = window.findChild(QAction, "exportDatasetAction")
    assert action is not None and "dataset" in action.text()
    dialog = window.show_dataset_export()
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("2 rows (SFT conversations) from 1 of 1"), timeout=5000)
    assert "A kind of bird." in dialog.preview.toPlainText()  # the rows themselves, as plain text

    # a filter recounts in the background
    dialog.rating.setCurrentIndex(dialog.rating.findData("good"))
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("1 row (SFT"), timeout=5000)
    dialog.kind.setCurrentIndex(dialog.kind.findData("preferences"))
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("1 preference pair "), timeout=5000)
    dialog.model.setCurrentText("No such model")
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("0 preference pairs"), timeout=5000)
    assert "Nothing matches" in dialog.counts.text() and not dialog.export_button.isEnabled()
    dialog.model.setCurrentText("All models")
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("1 preference pair "), timeout=5000)

    out = tmp_path / "pairs.jsonl"
    with qtbot.waitSignal(dialog.exported, timeout=10_000) as done:
        assert dialog.export_to(str(out))
    assert done.args == [str(out), 1]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [check_preference_row(r)[1:] for r in rows] == [("A small wallaby.", "A kind of bird.")]
    assert "Wrote 1 row" in dialog.message.text() and dialog.export_button.isEnabled()

    # SFT in the background too; a folder that does not exist is a plain message
    dialog.kind.setCurrentIndex(dialog.kind.findData("sft"))
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("1 row (SFT"), timeout=5000)
    sft = tmp_path / "sft.jsonl"
    with qtbot.waitSignal(dialog.exported, timeout=10_000):
        dialog.export_to(str(sft))
    assert [check_sft_row(json.loads(line))[-1] for line in sft.read_text().splitlines()] == [
        ("assistant", "A small wallaby.")
    ]
    dialog.export_to(str(tmp_path / "missing" / "x.jsonl"))
    qtbot.waitUntil(lambda: dialog.message.isVisible() and "not written" in dialog.message.text(), timeout=10_000)
    assert "does not exist" in dialog.message.text()
    dialog.grab().save("/tmp/h4_dialog.png")
    dialog.close()


def test_keyboard_rates_the_reply_chosen_with_alt_up_and_keeps_it_chosen(qtbot, open_main_window) -> None:
    window = open_main_window()
    session = window.session
    conv = Conversation(title="two turns")
    turns = [
        Message(Role.USER, "First question.", created=1),
        Message(Role.ASSISTANT, "First answer.", model="M", created=2),
        Message(Role.USER, "Second question.", created=3),
        Message(Role.ASSISTANT, "Second answer.", model="M", created=4),
    ]
    conv.messages = turns
    conv.link()
    session.store.import_conversations([conv])
    assert session.conversations.open_conversation(conv.id)
    for _ in range(3):  # newest, then up to the first answer
        window.navigator.move(-1) if window.navigator.current() else window.navigator.last()
    assert window.navigator.current().id == turns[1].id
    good = window.findChild(QAction, "rateGoodMenuAction")
    good.trigger()
    assert session.conversation.find(turns[1].id).rating == 1 and turns[3].rating is None
    assert window.navigator.current().id == turns[1].id  # still chosen after the redraw
    assert "rated good" in window.navigator.read_current()
    good.trigger()  # again: taken back, on the same reply
    assert turns[1].rating is None and turns[3].rating is None


def test_export_dataset_dialog_filters_by_document_collection(qtbot, open_main_window) -> None:
    from tests.test_datasets import tutor_chat

    window = open_main_window(documents=True)
    chat = tutor_chat()
    window.session.store.import_conversations([chat])
    index = window.session.documents
    zoology = index.create_collection("Zoology")
    index.create_collection("Botany")
    index.enable_collection(chat.id, zoology.id)
    dialog = window.show_dataset_export()
    assert dialog.collection.isEnabled() and dialog.collection.accessibleName() == "Collection"
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("2 rows (SFT conversations)"), timeout=5000)
    dialog.collection.setCurrentIndex(dialog.collection.findData("Botany"))
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("0 rows"), timeout=5000)
    dialog.collection.setCurrentIndex(dialog.collection.findData("Zoology"))
    qtbot.waitUntil(lambda: dialog.counts.text().startswith("2 rows (SFT conversations) from 1 of 1"), timeout=5000)
    dialog.close()
