"""The main window: model picker, chat view, composer, notices and status bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStatusBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import APP_NAME, paths
from app.core.conversation import Message, MessageState, Role
from app.core.model_bench import file_stamp
from app.core.preferences import Preferences, PreferencesError, PreferencesStore
from app.core.presets import PresetStore
from app.session import ChatSession, EngineState
from app.session.bench import ModelBenchmark
from app.session.notebook import NotebookController, is_notebook
from app.ui.a11y import announce, named
from app.ui.chat_view import ChatView
from app.ui.composer import MessageInput
from app.ui.conversation_list import ConversationListModel, ConversationSidebar
from app.ui.documents_popover import DocumentsPopover
from app.ui.first_run import FirstRunWidget
from app.ui.image_tray import IMAGE_FILTER, ImageTray, is_image_file
from app.ui.lazy_downloads import LazyDownloads
from app.ui.message_nav import MessageNavigator
from app.ui.notebook_view import NotebookView
from app.ui.plain import make_plain, plain_tip
from app.ui.settings_panel import SettingsPanel
from app.ui.template_bar import TemplateBar
from app.ui.theme import apply_chat_font, apply_theme, follow_system, window_font_size

if TYPE_CHECKING:
    # Dialogs and export are imported when first opened or used: the first frame needs none
    # of them (tests/test_startup.py), and the downloads dialog brings the Hub's HTTP stack.
    from app.ui.compare_view import CompareWindow
    from app.ui.connections_dialog import ConnectionsDialog
    from app.ui.downloads_dialog import DownloadsDialog
    from app.ui.models_dialog import ModelsDialog
    from app.ui.preferences_dialog import PreferencesDialog
    from app.ui.server_panel import ServerPanel


def _named(widget, name: str, human: str | None = None, description: str | None = None):
    """objectName for tests and style sheets; a human accessible name where the widget has
    no text of its own to speak (a label or a button with text speaks that text)."""
    if human is None:
        widget.setObjectName(name)
        if description:
            widget.setAccessibleDescription(description)
        return widget
    return named(widget, name, human, description)


class NoticeBar(QFrame):
    """A plain-words message above the chat, with an optional action (e.g. restart)."""

    shown = Signal(str)  # the text now shown (the window announces it)

    def __init__(self, name: str, action_text: str | None = None, parent=None, human: str = "Notice") -> None:
        super().__init__(parent)
        _named(self, name, human)
        self.human = human
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # A fixed light background, so its text colour is fixed too (readable in a dark theme).
        self.setStyleSheet(
            f"#{name} {{ background: #fff4e5; border: 1px solid #e0a040; border-radius: 4px; }}"
            f" #{name}Text, #{name}Close {{ color: #3e2723; background: transparent; border: none; }}"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.label = _named(QLabel(), name + "Text")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.label, 1)
        self.action: QPushButton | None = None
        if action_text:
            self.action = _named(QPushButton(action_text), name + "Action")
            layout.addWidget(self.action)
        close = _named(QPushButton("✕"), name + "Close", f"Dismiss {human.lower()}")
        close.setFlat(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()
        self.shown.emit(text)


class MainWindow(QMainWindow):
    def __init__(
        self,
        session: ChatSession,
        presets: PresetStore,
        downloads=None,
        preferences: tuple[PreferencesStore, Preferences] | None = None,
    ) -> None:
        """``downloads`` is a :class:`LazyDownloads` (or a made (DownloadQueue, HubClient)) for
        the download manager, or None; ``preferences`` is (store, loaded preferences), or None
        for defaults not saved."""
        super().__init__()
        self.session = session
        self._prefs_store: PreferencesStore | None
        self._prefs_store, self.prefs = preferences or (None, Preferences())
        self._presets = presets
        self._downloads: LazyDownloads | None = (
            LazyDownloads.of(*downloads) if isinstance(downloads, tuple) else downloads
        )
        self.downloads_dialog: DownloadsDialog | None = None
        self.models_dialog: ModelsDialog | None = None
        self.benchmarks = ModelBenchmark(parent=self)  # Models > Benchmark; its figures label the picker
        self.connections_dialog: ConnectionsDialog | None = None
        self.server_panel: ServerPanel | None = None
        self.compare_window: CompareWindow | None = None
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_NAME)
        self.resize(900, 700)

        self.conversation_model = ConversationListModel(session.store, parent=self)
        self.sidebar = ConversationSidebar(self.conversation_model)

        chat_area = QWidget()
        layout = QVBoxLayout(chat_area)

        top = QHBoxLayout()
        model_label = QLabel("&Model:")
        top.addWidget(model_label)
        self.model_picker = _named(QComboBox(), "modelPicker", "Model", "The model that answers in this chat")
        model_label.setBuddy(self.model_picker)
        self.model_picker.setMinimumWidth(320)
        self.model_picker.setToolTip("The model that answers in this chat")
        top.addWidget(self.model_picker, 1)
        # Says plainly when this chat's text goes to another computer (a remote model).
        self.remote_badge = _named(QLabel(), "remoteBadge")
        self.remote_badge.setTextFormat(Qt.TextFormat.PlainText)
        self.remote_badge.setStyleSheet(
            "#remoteBadge { background: #fff4e5; color: #3e2723; border: 1px solid #e0a040;"
            " border-radius: 4px; padding: 1px 6px; }"
        )
        self.remote_badge.hide()
        top.addWidget(self.remote_badge)
        self.add_model_button = _named(
            QPushButton("Add model file…"), "addModelButton", "Add model file", "Add a .gguf model file to the library"
        )
        top.addWidget(self.add_model_button)
        # The one visible control for the settings panel (closed at first): View > Settings panel
        self.settings_button = _named(QToolButton(), "settingsButton", "Settings panel")
        self.settings_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        top.addWidget(self.settings_button)
        layout.addLayout(top)

        self.crash_bar = NoticeBar("engineCrashBar", "Restart engine", human="Engine stopped")
        self.notice_bar = NoticeBar("noticeBar", human="Problem")
        self.undo_bar = NoticeBar("undoBar", "Undo", human="Deleted")
        self.info_bar = NoticeBar("infoBar", human="Notice")
        self.template_bar = TemplateBar()
        for bar in (self.crash_bar, self.notice_bar, self.undo_bar, self.info_bar, self.template_bar):
            layout.addWidget(bar)

        self.chat_view = ChatView()
        self.first_run = FirstRunWidget(download_available=downloads is not None)
        self.chat_stack = _named(QStackedWidget(), "chatStack")
        self.chat_stack.addWidget(self.chat_view)
        self.chat_stack.addWidget(self.first_run)
        # completion mode: a notebook conversation shows here instead of the chat and composer
        self.notebook = NotebookController(session)
        self.notebook_view = NotebookView(self.notebook)
        self.chat_stack.addWidget(self.notebook_view)
        layout.addWidget(self.chat_stack, 1)
        self.first_run.useDemo.connect(self._use_demo)
        self.first_run.addModel.connect(self._add_model)
        self.first_run.download.connect(self.show_downloads)

        # Documents: one Attach control in the composer opens a popover with the rest; a slim
        # line above the input says what is attached and shows indexing, only when there is any.
        self.documents_popover = DocumentsPopover(self)
        self.attach_button = self.documents_popover.attach_button
        self.collections_button = self.documents_popover.collections_button
        self.use_documents = self.documents_popover.use_documents
        self.sources_budget = self.documents_popover.sources_budget
        self.sources_budget_label = self.documents_popover.sources_budget_label
        self.sources_budget.setValue(session.docs.sources_budget)
        self.documents_row = _named(QWidget(), "documentsRow")
        docs = QHBoxLayout(self.documents_row)
        docs.setContentsMargins(0, 0, 0, 0)
        self.documents_label = _named(QLabel(""), "documentsLabel")
        self.indexing_bar = _named(QProgressBar(), "indexingBar", "Indexing documents")
        self.indexing_bar.setMaximumWidth(220)
        self.indexing_cancel = _named(QPushButton("Cancel"), "cancelIndexing", "Cancel indexing")
        for widget in (self.documents_label, self.indexing_bar, self.indexing_cancel):
            docs.addWidget(widget)
        docs.addStretch(1)
        self.indexing_bar.hide()
        self.indexing_cancel.hide()
        self.documents_row.hide()
        layout.addWidget(self.documents_row)

        row = QHBoxLayout()
        self.attach_tool = _named(
            QToolButton(),
            "attachTool",
            "Attach documents",
            "Attach files, choose collections and how much of the context documents may use",
        )
        self.attach_tool.setText("Attach…")
        self.attach_tool.setIcon(QIcon.fromTheme("mail-attachment"))  # text alone where no theme has one
        self.attach_tool.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.attach_tool.setToolTip(self.attach_tool.accessibleDescription())
        row.addWidget(self.attach_tool, 0, Qt.AlignmentFlag.AlignBottom)
        # Images for a vision model: the Image… button, a paste or a drop; thumbnails above the box.
        self.image_tool = _named(
            QToolButton(), "imageTool", "Attach an image", "Attach an image for a vision model to see (Ctrl+Shift+I)"
        )
        self.image_tool.setText("Image…")
        self.image_tool.setToolTip(self.image_tool.accessibleDescription())
        row.addWidget(self.image_tool, 0, Qt.AlignmentFlag.AlignBottom)
        self.image_tray = ImageTray()
        layout.addWidget(self.image_tray)
        self.input = MessageInput()
        row.addWidget(self.input, 1)
        buttons = QVBoxLayout()
        self.send_button = _named(QPushButton("Send"), "sendButton", "Send", "Send the message (Enter)")
        self.send_button.setToolTip("Send (Enter)")
        self.stop_button = _named(QPushButton("Stop"), "stopButton", "Stop", "Stop the reply (Esc)")
        self.stop_button.setToolTip("Stop the reply (Esc)")
        self.stop_button.setEnabled(False)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        row.addLayout(buttons)
        layout.addLayout(row)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("mainSplitter")
        splitter.addWidget(self.sidebar)
        splitter.addWidget(chat_area)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 640])
        self.setCentralWidget(splitter)
        self.resize(1280, 760)

        self.status = _named(QStatusBar(), "statusBar")
        self.setStatusBar(self.status)
        self.context_meter = _named(QLabel("— / — tokens"), "contextMeter")
        self.context_meter.setToolTip("How much of the model's context this conversation uses")
        self.context_bar = _named(QProgressBar(), "contextBar", "Context used")
        self.context_bar.setMaximumWidth(120)
        self.context_bar.setMaximumHeight(12)
        self.context_bar.setTextVisible(False)
        self._context_level = ""  # "ok", "near" or "full": the meter's colour and tooltip
        self.status.addPermanentWidget(self.context_meter)
        self.status.addPermanentWidget(self.context_bar)
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(300)  # count after a pause in typing, not per keystroke
        self._count_timer.timeout.connect(
            lambda: session.request_context_count(self.input.toPlainText(), self.image_tray.attachments())
        )

        self.settings_panel = SettingsPanel(presets)
        self.settings_dock = QDockWidget("Settings", self)
        self.settings_dock.setObjectName("settingsDock")
        self.settings_dock.setWidget(self.settings_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.settings_dock)
        # closed on a first start, so the window invites typing; then as the person left it
        self.settings_dock.setVisible(bool(session.config.get("settings_panel_visible", False)))
        self._build_menus()
        self._show_settings()

        # intents
        self.input.submitted.connect(self.send_current)
        self.input.imagePasted.connect(self.image_tray.add_image)
        self.image_tool.clicked.connect(self._attach_image)
        self.image_tray.changed.connect(self._count_timer.start)
        self.image_tray.problem.connect(self.session.errorMessage)
        self.send_button.clicked.connect(self.send_current)
        self.stop_button.clicked.connect(self._stop)
        self.attach_tool.clicked.connect(lambda: self.documents_popover.popup_below(self.attach_tool))
        assert self.crash_bar.action is not None  # built with an action
        self.crash_bar.action.clicked.connect(self._restart_engine)
        self.add_model_button.clicked.connect(self._add_model)
        self.model_picker.activated.connect(self._model_picked)

        # state
        session.statusText.connect(self.status.showMessage)
        session.stateChanged.connect(self._on_state)
        session.messageAdded.connect(self.chat_view.add_message)
        session.replyText.connect(self.chat_view.append_text)
        session.replyFinished.connect(self.chat_view.finish_message)
        session.errorMessage.connect(self.notice_bar.show_message)
        session.engineCrashed.connect(self.crash_bar.show_message)
        # heard as well as seen: a finished reply, a problem, a notice
        session.replyFinished.connect(self._announce_reply)
        for bar, assertive in (
            (self.notice_bar, True),
            (self.crash_bar, True),
            (self.info_bar, False),
            (self.undo_bar, False),
        ):
            bar.shown.connect(lambda text, b=bar, a=assertive: announce(b, f"{b.human}: {text}", assertive=a))
        session.modelsChanged.connect(self._fill_models)
        session.currentModelChanged.connect(self._show_current_model)
        session.currentModelChanged.connect(self._show_settings)
        session.currentModelChanged.connect(self._show_adapters)
        session.modelsChanged.connect(self._show_adapters)
        session.modelsChanged.connect(session.sync_adapters)  # an adapter in use was removed
        session.conversations.conversationOpened.connect(self._show_conversation)
        session.conversations.conversationsChanged.connect(self._refresh_conversations)
        session.conversations.conversationDeleted.connect(
            lambda _id, title: self.undo_bar.show_message(f"Deleted “{title}”.")
        )
        session.infoMessage.connect(self.info_bar.show_message)
        session.contextChanged.connect(self._show_context)
        session.templateStatus.connect(self._show_template_status)
        self.template_bar.templateChosen.connect(session.set_chat_template)
        self.template_bar.completionModeChosen.connect(self.new_notebook)
        self.notebook.problem.connect(lambda text: self.status.showMessage(text, 8000))
        self.input.textChanged.connect(self._count_timer.start)
        assert self.undo_bar.action is not None  # built with an action
        self.undo_bar.action.clicked.connect(self._undo_delete)
        # from a search result, the branch holding the best match is the one shown
        self.sidebar.activated.connect(
            lambda cid: session.conversations.open_conversation(
                cid, reveal=self.conversation_model.best_hit_message(cid)
            )
        )
        self.sidebar.newRequested.connect(self._new_chat)
        self.sidebar.renameRequested.connect(self._rename)
        self.sidebar.deleteRequested.connect(session.conversations.delete_conversation)
        self.sidebar.pinRequested.connect(session.conversations.set_pinned)
        self.sidebar.exportRequested.connect(lambda cid: self._export([cid]))
        self.sidebar.searchChanged.connect(self._search)
        self.chat_view.copied.connect(lambda note: self.status.showMessage(note, 3000))
        self.chat_view.editRequested.connect(self._edit_message)
        self.chat_view.deleteRequested.connect(session.conversations.delete_message)
        self.chat_view.continueRequested.connect(session.conversations.continue_in_new_chat)
        self.chat_view.regenerateRequested.connect(session.regenerate)
        self.chat_view.sourceRequested.connect(self._show_source)
        self.chat_view.variant_position = lambda message: session.conversation.variant_position(message)
        self.chat_view.variantRequested.connect(session.conversations.switch_variant)
        self.chat_view.rateRequested.connect(session.conversations.rate)
        self.chat_view.preferRequested.connect(session.conversations.prefer)
        session.conversations.messageRated.connect(self._on_rated)
        self.attach_button.clicked.connect(self._attach)
        self.collections_button.clicked.connect(self.show_collections)
        self.use_documents.toggled.connect(session.docs.set_retrieval_enabled)
        self.sources_budget.valueChanged.connect(lambda v: setattr(session, "sources_budget", v))
        self.indexing_cancel.clicked.connect(session.docs.cancel_indexing)
        session.docs.documentsChanged.connect(self._show_documents)
        session.docs.indexingProgress.connect(self._indexing_progress)
        session.docs.indexingFinished.connect(self._indexing_finished)
        self.settings_panel.settingsChanged.connect(session.conversations.set_settings)
        self.settings_panel.loadSettingsChanged.connect(session.set_load_settings)
        self.settings_panel.presetApplied.connect(self._preset_applied)
        self.settings_panel.fewShotChanged.connect(session.conversations.set_few_shot)
        session.worker.gpuOffload.connect(self.settings_panel.set_gpu_available)
        self.settings_dock.visibilityChanged.connect(self._dock_visibility)

        apply_chat_font(self.chat_view, self.prefs.chat_font_size)
        apply_chat_font(self.notebook_view.editor, self.prefs.chat_font_size)  # type: ignore[arg-type]
        self._applying_look = False
        qt_app = cast(QApplication, QApplication.instance())
        if window_font_size(qt_app, self.prefs.chat_font_size) is not None:
            self.apply_look()  # the font-size preference scales the whole window
        follow_system(qt_app, self.apply_look)  # dark/light and high contrast, live
        self.input.set_send_with(self.prefs.send_with)
        self._fill_models()
        self._show_documents()
        self.conversation_model.reload()
        self._show_conversation(session.conversation)
        self.input.setFocus()

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        slot: Callable[[], object]
        for text, shortcut, name, slot in (
            ("&New chat", "Ctrl+N", "newChatAction", self._new_chat),
            ("&Search chats", "Ctrl+F", "searchAction", self._focus_search),
            (
                "&Export this conversation…",
                "Ctrl+E",
                "exportAction",
                lambda: self._export([self.session.conversation.id]),
            ),
            ("Export &all conversations…", None, "exportAllAction", lambda: self._export(None)),
            ("Export &dataset for fine-tuning…", None, "exportDatasetAction", self.show_dataset_export),
            ("&Import conversations…", None, "importAction", self._import),
            ("Import &presets…", None, "importPresetsAction", self._import_presets),
            ("Export p&resets…", None, "exportPresetsAction", self._export_presets),
            ("&Preferences…", "Ctrl+Shift+P", "preferencesAction", self.show_preferences),
            ("&Quit", "Ctrl+Q", "quitAction", self.close),
        ):
            action = file.addAction(text)
            action.setObjectName(name)
            if shortcut:
                action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
        chat_menu = bar.addMenu("&Chat")
        for text, shortcut, name, slot in (
            ("&Stop the reply", "Esc", "stopAction", self._stop),
            ("&Regenerate last reply", "Ctrl+R", "regenerateMenuAction", self.session.regenerate),
            ("&Copy last reply", "Ctrl+Shift+C", "copyLastReplyAction", self.chat_view.copy_last_reply),
            ("&Focus the message box", "Ctrl+L", "focusInputAction", self.input.setFocus),
            ("Focus the &conversation list", "Ctrl+Shift+L", "focusConversationsAction", self.sidebar.list.setFocus),
            ("&Attach files…", "Ctrl+Shift+A", "attachAction", self._attach),
            ("Attach an &image…", "Ctrl+Shift+I", "attachImageAction", self._attach_image),
            ("&Documents…", None, "documentsAction", lambda: self.documents_popover.popup_below(self.attach_tool)),
            ("Co&llections…", None, "collectionsAction", self.show_collections),
        ):
            action = chat_menu.addAction(text)
            action.setObjectName(name)
            if shortcut:
                action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
        # message by message: Alt+Up/Down while the chat or the message box has the focus
        # (elsewhere Alt+Down keeps opening a combo box's list)
        chat_menu.addSeparator()
        self.navigator = MessageNavigator(self.chat_view)
        for text, shortcut, name, slot in (
            ("&Previous message", "Alt+Up", "previousMessageAction", lambda: self.navigator.move(-1)),
            ("&Next message", "Alt+Down", "nextMessageAction", lambda: self.navigator.move(1)),
            ("Read the selected &message", "Alt+R", "readMessageAction", self.navigator.read_current),
            ("Cop&y the selected message", "Ctrl+Shift+M", "copyMessageAction", self.navigator.copy_current),
            ("Rate the reply &good", "Alt+G", "rateGoodMenuAction", lambda: self._rate_current(1)),
            ("Rate the reply &bad", "Alt+B", "rateBadMenuAction", lambda: self._rate_current(-1)),
            ("Prefer this &version of the reply", "Alt+P", "preferMenuAction", self._prefer_current),
        ):
            action = chat_menu.addAction(text)
            action.setObjectName(name)
            action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
            if name in ("previousMessageAction", "nextMessageAction", "readMessageAction"):
                action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
                self.chat_view.addAction(action)
                self.input.addAction(action)
        models = bar.addMenu("&Models")
        for text, shortcut, name, slot in (
            ("&Manage models…", "Ctrl+M", "manageModelsAction", self.show_models),
            ("&Download models…", "Ctrl+D", "downloadModelsAction", self.show_downloads),
            ("&Add model file…", None, "addModelAction", self._add_model),
            ("&Connections…", None, "connectionsAction", self.show_connections),
            ("Local API &server…", None, "serverPanelAction", self.show_server_panel),
        ):
            action = models.addAction(text)
            action.setObjectName(name)
            if shortcut:
                action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
            if name == "downloadModelsAction" and self._downloads is None:
                action.setEnabled(False)
        # completion mode: Continue and Undo act while the notebook has the focus (elsewhere
        # Ctrl+Enter stays the message box's, when Preferences make it send)
        chat_menu.addSeparator()
        for text, shortcut, name, slot in (
            ("New &notebook (completion mode)", "Ctrl+Shift+N", "newNotebookAction", self.new_notebook),
            ("Co&ntinue the text", "Ctrl+Return", "notebookContinueAction", self.notebook_view.continue_text),
            ("&Undo the last continuation", "Ctrl+Alt+Z", "notebookUndoAction", self.notebook.undo),
        ):
            action = chat_menu.addAction(text)
            action.setObjectName(name)
            action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
            if name != "newNotebookAction":
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.notebook_view.addAction(action)
        view = bar.addMenu("&View")
        self.notebook_toggle = view.addAction("&Notebook (completion mode)")
        self.notebook_toggle.setObjectName("notebookToggleAction")
        self.notebook_toggle.setCheckable(True)
        self.notebook_toggle.setShortcut(QKeySequence("Ctrl+Shift+B"))
        self.notebook_toggle.setToolTip(
            "Write a text the model continues (no chat template), or go back to chatting (Ctrl+Shift+B)"
        )
        self.notebook_toggle.triggered.connect(self._toggle_notebook)
        compare = view.addAction("&Compare models and settings…")
        compare.setObjectName("compareAction")
        compare.setShortcut(QKeySequence("Ctrl+Shift+K"))
        compare.setToolTip("One prompt, 2–4 models or presets side by side, with a blind vote (Ctrl+Shift+K)")
        compare.triggered.connect(self.show_compare)
        toggle = self.settings_dock.toggleViewAction()
        toggle.setText("&Settings panel")
        toggle.setShortcut(QKeySequence("Ctrl+,"))
        toggle.setObjectName("toggleSettingsAction")
        toggle.setIconText("Settings")
        toggle.setToolTip("Show or hide the settings panel: sampling, presets, system prompt (Ctrl+,)")
        view.addAction(toggle)
        self.settings_button.setDefaultAction(toggle)
        help_menu = bar.addMenu("&Help")
        keys = help_menu.addAction("&Keyboard shortcuts")
        keys.setObjectName("shortcutsAction")
        keys.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))
        keys.triggered.connect(self.show_shortcuts)
        about = help_menu.addAction("&About Hearth")
        about.setObjectName("aboutAction")
        about.triggered.connect(self.show_about)

    def show_shortcuts(self):
        """Help > Keyboard shortcuts: read from the window's own actions and shortcuts."""
        from app.ui.shortcuts_dialog import ShortcutsDialog

        dialog = ShortcutsDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    # -- intents ----------------------------------------------------------------------------

    def show_compare(self) -> CompareWindow:
        """View > Compare…: contenders side by side (app/session/compare.py)."""
        if self.compare_window is None:
            from app.session.compare import CompareController
            from app.ui.compare_view import CompareWindow

            self.compare_window = CompareWindow(CompareController(self.session, self._presets), parent=self)
        else:
            self.compare_window.refresh_choices()
        self.compare_window.show()
        self.compare_window.raise_()
        return self.compare_window

    def show_server_panel(self) -> ServerPanel:
        """Models > Local API server…: serve this window's models to other programs."""
        if self.server_panel is None:
            from app.ui.server_panel import ServerPanel

            self.server_panel = ServerPanel(self.session.worker, self.session.config, parent=self)
        self.server_panel.show()
        self.server_panel.raise_()
        return self.server_panel

    def show_connections(self) -> ConnectionsDialog:
        """Models > Connections…: servers whose models the picker offers."""
        if self.connections_dialog is None:
            from app.ui.connections_dialog import ConnectionsDialog

            self.connections_dialog = ConnectionsDialog(self.session.connections, parent=self)
            self.connections_dialog.connectionsChanged.connect(self.session.models.refresh_remote_models)
        self.connections_dialog.show()
        self.connections_dialog.raise_()
        return self.connections_dialog

    def show_models(self) -> ModelsDialog:
        if self.models_dialog is None:
            from app.ui.models_dialog import ModelsDialog

            model = self.session.current_model
            dialog = ModelsDialog(
                self.session.library,
                model.path if model else None,
                self,
                n_ctx=self.session.load_settings.n_ctx,
                bench=self.benchmarks,
            )
            dialog.aboutToRemove.connect(self.session.unload_if_current)
            dialog.modelsChanged.connect(self.session.modelsChanged)
            dialog.modelChosen.connect(self.session.select_model)
            self.session.currentModelChanged.connect(dialog.set_current_model)
            self.session.conversations.ratingsCounted.connect(dialog.model.set_ratings)
            self.models_dialog = dialog
        self.session.conversations.request_ratings()
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def show_about(self):
        from app.ui.about_dialog import AboutDialog

        dialog = AboutDialog(parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def handle_launch_args(self, files: list) -> None:
        """A later launch handed over (or this one was started with files): come to the
        front and import the GGUF files, as a drop on the window would."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()
        models = [f for f in files if f.lower().endswith(".gguf")]
        if models:
            self._import_gguf(models)

    def _use_demo(self) -> None:
        # registers the demo when the library is empty, and picks it: its header is read on a
        # worker thread, so the window stays responsive
        self.session.models.refresh_models(first_start=True)

    def show_downloads(self):
        if self._downloads is None:
            return None
        if self.downloads_dialog is None:
            from app.ui.downloads_dialog import DownloadsDialog

            queue, hub = self._downloads.get()
            self.downloads_dialog = DownloadsDialog(queue, hub, self)
            self.downloads_dialog.modelDownloaded.connect(self.session.models.model_downloaded)
        self.downloads_dialog.show()
        self.downloads_dialog.raise_()
        return self.downloads_dialog

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        """GGUF files join the model library; any other files are attached as documents."""
        from app.ui.models_dialog import gguf_paths_from_mime

        models = gguf_paths_from_mime(event.mimeData())
        others = [
            u.toLocalFile()
            for u in event.mimeData().urls()
            if u.isLocalFile() and u.toLocalFile() not in models and not u.toLocalFile().lower().endswith(".gguf")
        ]
        images = [path for path in others if is_image_file(path)]
        others = [path for path in others if path not in images]
        if images:
            event.acceptProposedAction()
            self.image_tray.add_files(images)
        if models or others:
            event.acceptProposedAction()
        if models:
            self._import_gguf(models)
        if others:
            self.session.docs.attach_files(others)

    # -- documents ------------------------------------------------------------------------

    def _attach_image(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Attach an image", "", IMAGE_FILTER)
        if files:
            self.image_tray.add_files(files)
            self.input.setFocus()

    def _attach(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Attach documents",
            "",
            "Documents (*.txt *.md *.markdown *.pdf *.docx *.html *.htm *.py *.js *.ts *.c *.cpp *.h *.java *.rs *.go *.rb *.sh *.json *.yaml *.yml *.toml *.csv);;All files (*)",
        )
        if files:
            self.session.docs.attach_files(files)

    def show_dataset_export(self) -> QWidget:
        """File > Export dataset…: SFT rows or preference pairs from the saved chats."""
        from app.ui.dataset_dialog import DatasetDialog

        names = [m.name for m in self.session.library.models()]
        index = self.session.documents
        collections = [c.name for c in index.collections()] if index is not None else []
        dialog = DatasetDialog(self.session.store, names, self, documents=index, collection_names=collections)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.exported.connect(
            lambda path, rows: self.info_bar.show_message(f"Exported {rows:,} dataset rows to {Path(path).name}.")
        )
        dialog.show()
        return dialog

    def _rated_target(self) -> Message | None:
        """The selected reply (Alt+Up/Down), else the newest reply."""
        message = self.navigator.current()
        if message is None or message.role is not Role.ASSISTANT:
            message = next((m for m in reversed(self.session.conversation.messages) if m.role is Role.ASSISTANT), None)
        if message is None or message.state is MessageState.STREAMING:
            announce(self.chat_view, "No finished reply to rate")
            return None
        return message

    def _rate_current(self, value: int) -> None:
        """Alt+G / Alt+B: rate the selected (else newest) reply; again takes it back."""
        message = self._rated_target()
        if message is not None:
            self.session.conversations.rate(message.id, None if message.rating == value else value)

    def _prefer_current(self) -> None:
        message = self._rated_target()
        if message is None:
            return
        if self.session.conversation.variant_position(message)[1] < 2:
            announce(self.chat_view, "This reply has only one version: regenerate it to compare versions")
            return
        self.session.conversations.prefer(message.id, not message.preferred)

    def _on_rated(self, message_id: str) -> None:
        message = self.session.conversation.find(message_id)
        if message is None:
            return
        self.chat_view.refresh_message(message)
        if self.models_dialog is not None and self.models_dialog.isVisible():
            self.session.conversations.request_ratings()
        said = {1: "Rated good", -1: "Rated bad"}.get(message.rating or 0, "Not rated")
        if message.preferred:
            said += "; the preferred version"
        self.status.showMessage(said, 3000)
        announce(self.chat_view, said)

    def show_collections(self):
        from app.ui.collections_dialog import CollectionsDialog

        if getattr(self, "collections_dialog", None) is None:
            self.collections_dialog = CollectionsDialog(self.session, self)
        self.collections_dialog.reload()
        self.collections_dialog.show()
        return self.collections_dialog

    def _show_documents(self) -> None:
        enabled = self.session.documents is not None
        for widget in (self.attach_button, self.collections_button, self.use_documents, self.sources_budget):
            widget.setEnabled(enabled and not self.session.docs.indexing)
        self.attach_tool.setEnabled(enabled)
        docs = self.session.docs.attached_documents()
        if self.session.documents is not None:
            index = self.session.documents
            on = set(index.enabled_collections(self.session.conversation.id))
            docs = docs + [d for c in index.collections() if c.id in on for d in index.documents(c.id)]
        self.use_documents.blockSignals(True)
        self.use_documents.setChecked(self.session.docs.retrieval_enabled())
        self.use_documents.blockSignals(False)
        readable = [d for d in docs if not d.error]
        self.documents_label.setText(f"{len(readable)} document{'s' if len(readable) != 1 else ''}" if docs else "")
        self.documents_label.setToolTip(plain_tip("\n".join(f"{d.name} — {d.error or 'indexed'}" for d in docs)))
        self.documents_row.setVisible(bool(docs) or self.indexing_bar.isVisibleTo(self.documents_row))

    def _indexing_progress(self, done: int, total: int, name: str) -> None:
        self.documents_row.show()
        self.indexing_bar.show()
        self.indexing_cancel.show()
        for widget in (self.attach_button, self.collections_button, self.use_documents, self.sources_budget):
            widget.setEnabled(False)  # no changes while indexing
        self.indexing_bar.setMaximum(max(total, 1))
        self.indexing_bar.setValue(done)
        self.indexing_bar.setFormat(f"{done}/{total} {name}")

    def _indexing_finished(self, report) -> None:
        self.indexing_bar.hide()
        self.indexing_cancel.hide()
        self._show_documents()
        if report is None:
            return
        added = report.added + report.updated
        text = f"Indexed {added} document{'s' if added != 1 else ''}."
        if report.cancelled:
            text += " Indexing was cancelled; the files finished so far are kept."
        if report.skipped:
            text += " Skipped: " + "; ".join(f"{Path(s.path).name} — {s.reason}" for s in report.skipped)
        (self.notice_bar if report.skipped else self.info_bar).show_message(text)

    def _show_source(self, message_id: str, number: int) -> None:
        message = next((m for m in self.session.conversation.messages if m.id == message_id), None)
        sources = (message.stats or {}).get("sources", []) if message else []
        source = next((s for s in sources if int(s.get("number", 0)) == number), None)
        if source is None:
            return
        box = QMessageBox(self)
        box.setObjectName("sourceDialog")
        box.setWindowTitle(f"Source [{number}]")
        box.setText(f"[{number}] {source.get('label', '')}")
        box.setInformativeText(source.get("text", ""))
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        make_plain(box)  # a passage is untrusted: its informative text too, and no links
        box.open()

    def _new_chat(self) -> None:
        before = self.session.conversation
        self.session.conversations.new_conversation()
        if self.session.conversation is not before and self.prefs.default_preset:
            self.settings_panel.select_preset(self.prefs.default_preset)
        self.input.setFocus()

    def show_preferences(self) -> PreferencesDialog:
        from app.ui.preferences_dialog import PreferencesDialog

        models = [(m.label() if m.exists else f"{m.name} (missing)", m.path) for m in self.session.library.models()]
        dialog = PreferencesDialog(
            self.prefs,
            models,
            [p.name for p in self._presets.list()],
            self,
            default_models_dir=str(paths.default_models_dir()),
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.applied.connect(self.apply_preferences)
        dialog.open()
        return dialog

    def apply_look(self, *_args: object) -> None:
        """The theme and the window's font size from the preferences, again (also when the
        system's dark/light or contrast setting changes)."""
        if self._applying_look:  # telling the platform the scheme may signal back
            return
        self._applying_look = True
        try:
            qt_app = cast(QApplication, QApplication.instance())  # instance() is typed QCoreApplication
            apply_theme(qt_app, self.prefs.theme, window_font_size(qt_app, self.prefs.chat_font_size))
        finally:
            self._applying_look = False

    def apply_preferences(self, prefs: Preferences) -> None:
        old, self.prefs = self.prefs, prefs
        if self._prefs_store is not None:
            try:
                self._prefs_store.save(prefs)
            except PreferencesError as exc:
                self.notice_bar.show_message(str(exc))  # still applied for this session
        self.apply_look()
        apply_chat_font(self.chat_view, prefs.chat_font_size)
        apply_chat_font(self.notebook_view.editor, prefs.chat_font_size)  # type: ignore[arg-type]
        self.input.set_send_with(prefs.send_with)
        self.send_button.setToolTip("Send (Ctrl+Enter)" if prefs.send_with == "ctrl+enter" else "Send (Enter)")
        self.session.default_model = prefs.default_model
        if self._downloads is not None:
            self._downloads.set_max_parallel(prefs.max_parallel_downloads)
        if prefs.models_dir != old.models_dir:
            paths.set_models_dir(prefs.usable_models_dir())
            if self._downloads is not None:
                self._downloads.set_models_dir(paths.models_dir())
            self.session.models.refresh_models()  # read on a worker thread; the picker fills after

    def _focus_search(self) -> None:
        self.sidebar.search.setFocus()
        self.sidebar.search.selectAll()

    def _search(self, text: str) -> None:
        if text.strip():
            self.conversation_model.show_search(self.session.conversations.search(text))
        else:
            self.conversation_model.reload()
            self.sidebar.select(self.session.conversation.id)

    def _refresh_conversations(self) -> None:
        self._search(self.sidebar.search.text())
        self.sidebar.select(self.session.conversation.id)

    def new_notebook(self) -> None:
        """Chat > New notebook: the model continues what you write (completion mode)."""
        if self.notebook.new_notebook():
            self.notebook_view.editor.setFocus()

    def _toggle_notebook(self, on: bool) -> None:
        """View > Notebook: an empty conversation changes mode; one with text stays as it is
        and a new one opens in the other mode."""
        if on:
            self.new_notebook()
        elif self.notebook.generating:
            self.notebook.problem.emit("Stop the model first (Esc), then go back to chatting.")
        elif not self.session.conversation.messages and not self.session.conversations.saved:
            self.session.conversation.settings = {
                k: v for k, v in (self.session.conversation.settings or {}).items() if k != "mode"
            }
            self.session.conversation.title = "New chat"
            self.session.conversations.conversationOpened.emit(self.session.conversation)
        else:
            self._new_chat()
        self.notebook_toggle.setChecked(is_notebook(self.session.conversation))

    def _stop(self) -> None:
        """Stop (Esc): the notebook's continuation when it is writing, else the chat's reply."""
        if self.notebook.generating:
            self.notebook.stop()
        else:
            self.session.stop()

    def _conversation_page(self) -> QWidget:
        if not self.session.library.models():
            return self.first_run  # no models at all: the welcome screen instead of an empty chat
        return self.notebook_view if is_notebook(self.session.conversation) else self.chat_view

    def _show_conversation(self, conversation) -> None:
        self.notebook_view.save_text()  # typed in the notebook just left: saved into it first
        self.notebook.show(conversation)
        notebook = is_notebook(conversation)
        self.notebook_toggle.setChecked(notebook)
        for widget in (self.input, self.send_button, self.stop_button, self.attach_tool):
            widget.setVisible(not notebook)
        if notebook:
            self.documents_row.hide()
            self.notebook_view.show_notebook()
        self.chat_stack.setCurrentWidget(self._conversation_page())
        if notebook:
            self.sidebar.select(conversation.id)
            self.setWindowTitle(f"{conversation.title} — {APP_NAME}" if conversation.messages else APP_NAME)
            self._show_settings()
            return
        self._count_timer.start()
        self.chat_view.show_conversation(conversation.messages)
        self.sidebar.select(conversation.id)
        self.setWindowTitle(f"{conversation.title} — {APP_NAME}" if conversation.messages else APP_NAME)
        self._show_settings()
        terms = self.sidebar.search.text().split()
        if terms and hasattr(self.chat_view, "highlight"):
            self.chat_view.highlight(terms)

    def _rename(self, conversation_id: str) -> None:
        current = (
            self.conversation_model.data(
                self.conversation_model.index(self.conversation_model.row_of(conversation_id), 0)
            )
            or ""
        )
        title, ok = QInputDialog.getText(self, "Rename conversation", "Title:", text=current)
        if ok:
            self.session.conversations.rename_conversation(conversation_id, title)

    def _edit_message(self, message_id: str) -> None:
        message = next((m for m in self.session.conversation.messages if m.id == message_id), None)
        if message is None:
            return
        text, ok = QInputDialog.getMultiLineText(
            self, "Edit and resend", "Your message (later replies are replaced):", message.text
        )
        if ok and text.strip() and text != message.text:
            self.session.edit_and_resend(message_id, text)

    def _undo_delete(self) -> None:
        self.undo_bar.hide()
        self.session.conversations.undo_delete()

    def _export(self, conversation_ids: list[str] | None) -> None:
        from app.core.export import EXPORT_FORMATS

        filters = [f"{label} (*{suffix})" for label, suffix in EXPORT_FORMATS.values()]
        base = self.session.conversation.title if conversation_ids else "Hearth conversations"
        safe = "".join(c for c in base if c.isalnum() or c in " -_").strip() or "conversation"
        path, chosen = QFileDialog.getSaveFileName(self, "Export", safe + ".md", ";;".join(filters))
        if not path:
            return
        fmt = list(EXPORT_FORMATS)[filters.index(chosen)] if chosen in filters else "md"
        suffix = EXPORT_FORMATS[fmt][1]
        if not path.endswith(suffix):
            path += suffix
        self.session.conversations.export_conversations(path, fmt, conversation_ids)

    def _import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import conversations", "", "Conversation exports (*.json *.zip);;All files (*)"
        )
        if path:
            self.session.conversations.import_conversations(path)

    def _import_presets(self) -> None:
        from app.core.presets import PresetError, import_presets_file

        path, _ = QFileDialog.getOpenFileName(self, "Import presets", "", "Hearth presets (*.json);;All files (*)")
        if not path:
            return
        try:
            added = import_presets_file(self._presets, path)
        except PresetError as exc:
            self.notice_bar.show_message(f"No presets were imported: {exc}")
            return
        self.settings_panel.refresh_presets()
        self.info_bar.show_message(
            f"Imported {len(added)} preset{'s' if len(added) != 1 else ''}: " + ", ".join(p.name for p in added)
        )

    def _export_presets(self) -> None:
        from app.core.export import ExportError
        from app.core.presets import export_presets_file

        path, _ = QFileDialog.getSaveFileName(self, "Export presets", "hearth-presets.json", "Hearth presets (*.json)")
        if not path:
            return
        try:
            count = export_presets_file(self._presets, path)
        except ExportError as exc:
            self.notice_bar.show_message(str(exc))
            return
        self.info_bar.show_message(f"Exported {count} preset{'s' if count != 1 else ''} to {Path(path).name}.")

    def _preset_applied(self, preset) -> None:
        self.session.conversations.set_few_shot(list(preset.few_shot))

    def _dock_visibility(self, visible: bool) -> None:
        if not self.isMinimized() and self.isVisible():
            self.session.config.set("settings_panel_visible", visible)

    def _show_settings(self, *_args) -> None:
        model = self.session.current_model
        self.settings_panel.set_settings(
            self.session.settings, self.session.load_settings, model.context_length if model else None
        )
        self.settings_panel.set_few_shot(self.session.few_shot)

    def _show_adapters(self, *_args) -> None:
        model = self.session.current_model
        remote = model is not None and model.remote is not None
        self.settings_panel.set_adapters(None if remote else list(model.adapters) if model else [])

    def _import_gguf(self, files: list[str]) -> None:
        """Model files, or LoRA adapters: an adapter goes to the model in use (selected in the
        Models dialog, where it is checked against that model)."""
        dialog = self.show_models()
        model = self.session.current_model
        if model is not None and model.remote is None:
            dialog.select_path(model.path)
        dialog.import_files(files)

    def send_current(self) -> None:
        text = self.input.toPlainText()
        if self.session.send(text, self.image_tray.attachments()):
            self.input.clear()  # only once the session has taken it: nothing typed is lost
            self.image_tray.clear()

    def _announce_reply(self, message) -> None:
        """A finished reply is said aloud: who answered, how it ended, and its first words
        (the rest is a keystroke away: Alt+Up selects it in the chat)."""
        from app.core.conversation import MessageState
        from app.core.markdown_html import render_plain
        from app.ui.stream_markdown import split_reasoning

        ending = {
            MessageState.STOPPED: "Reply stopped",
            MessageState.INTERRUPTED: "Reply interrupted",
            MessageState.FAILED: "Reply failed",
        }.get(message.state, "Reply finished")
        who = f" from {message.model}" if message.model else ""
        answer = render_plain(split_reasoning(message.text)[1]).strip()
        if not answer:
            empty = (message.stats or {}).get("empty_reason") if isinstance(message.stats, dict) else None
            answer = empty if isinstance(empty, str) else "no text"
        if len(answer) > 400:
            answer = answer[:400].rsplit(" ", 1)[0] + "… (continues)"
        announce(self.chat_view, f"{ending}{who}: {answer}")

    def _restart_engine(self) -> None:
        self.crash_bar.hide()
        self.session.restart_engine()

    def _model_picked(self, index: int) -> None:
        path = self.model_picker.itemData(index)
        if path and (self.session.current_model is None or self.session.current_model.path != path):
            self.session.select_model(path)

    def _add_model(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add model files", "", "GGUF models (*.gguf);;All files (*)")
        for path in files:
            self.session.models.add_model_in_background(path)  # the header is read off the GUI thread

    # -- state ------------------------------------------------------------------------------

    def _fill_models(self) -> None:
        current = self.session.current_model.path if self.session.current_model else None
        self.model_picker.blockSignals(True)
        self.model_picker.clear()
        remote = self.session.models.remote_status
        if remote:
            self._picker_heading("On this computer")
        for model in self.session.library.models():
            label = model.label() if model.exists else f"{model.name} (missing)"
            measured = self.benchmarks.store.get(model.path, file_stamp(model.path)) if model.exists else None
            if measured is not None:  # measured here with Benchmark: the speed/memory trade-off at a glance
                label += f" — {measured.summary()}"
            self.model_picker.addItem(label, model.path)
            if measured is not None:
                self.model_picker.setItemData(
                    self.model_picker.count() - 1, measured.describe(), Qt.ItemDataRole.ToolTipRole
                )
        for damaged in self.session.library.damaged():  # listed with why, never choosable
            self._picker_heading(f"{damaged.file_name} (damaged: {damaged.reason})", indent=False)
        for connection in self.session.connections.all():
            if connection.name not in remote:
                continue
            where = "this computer" if connection.is_local else connection.host
            self._picker_heading(f"{connection.name} — on {where}")
            if remote[connection.name]:
                self._picker_heading(f"not answering: {remote[connection.name]}", indent=True)
            for model in self.session.models.remote_models.values():
                if model.remote == connection.name:
                    self.model_picker.addItem(model.label(), model.path)
        self.model_picker.blockSignals(False)
        self._show_current_model(current)
        # No models at all: the welcome screen instead of an empty chat (or notebook).
        self.chat_stack.setCurrentWidget(self._conversation_page())

    def _picker_heading(self, text: str, indent: bool = False) -> None:
        """A line in the picker that is not a model (a group's title, a problem): never chosen."""
        self.model_picker.addItem(("    " if indent else "") + text, None)
        item = self.model_picker.model().item(self.model_picker.count() - 1)
        item.setEnabled(False)

    def _show_remote_badge(self) -> None:
        model = self.session.current_model
        connection = self.session.connections.get(model.remote) if model and model.remote else None
        if connection is None or connection.is_local:
            self.remote_badge.hide()
            return
        self.remote_badge.setText(f"Sent to {connection.host}")
        self.remote_badge.setToolTip(
            f"What you type in this chat, and the documents it retrieves, are sent to {connection.name} "
            f"({connection.base_url}) to be answered there."
        )
        self.remote_badge.setAccessibleName(f"This chat is sent to {connection.host}")
        self.remote_badge.show()

    def _show_template_status(self, path: str, problem: str) -> None:
        model = self.session.library.get(path)
        self.template_bar.show_for(path, model.name if model else Path(path).name, problem)

    def _show_current_model(self, path: str | None) -> None:
        index = self.model_picker.findData(path) if path else -1
        self.model_picker.setCurrentIndex(index)
        self._show_remote_badge()

    def _show_context(self, used: int, size: int) -> None:
        # Called a few times a second while a reply streams: keep it cheap, since with llama.cpp
        # on every core each GUI millisecond is taken from generation. The bar repaints with the
        # next frame (QProgressBar.setValue would repaint at once, ~2-3 ms each here), and the
        # colour and tooltip change only when the level does (setStyleSheet re-polishes).
        about = "" if self.session.context_exact else "≈ "  # a remote server that cannot count says so
        self.context_meter.setText(f"{about}{used:,} / {size:,} tokens")
        bar = self.context_bar
        bar.setUpdatesEnabled(False)
        bar.setMaximum(max(size, 1))
        bar.setValue(min(used, size))
        bar.setUpdatesEnabled(True)  # schedules one update(), painted with the rest of the frame
        level = "full" if used >= size else "near" if used > size * 0.8 else "ok"
        if level == self._context_level:
            return
        self._context_level = level
        if level != "ok":
            note = (
                "Near the end of the model's context: the oldest turns will be left out of the prompt "
                "(the system prompt is kept). Start a new chat or raise the context length to keep them."
            )
            self.context_meter.setStyleSheet("color: #c62828;" if level == "full" else "color: #e65100;")
        else:
            note = "How much of the model's context this conversation uses"
            self.context_meter.setStyleSheet("")
        self.context_meter.setToolTip(note)

    def _on_state(self, value: str) -> None:
        state = EngineState(value)
        generating = state is EngineState.GENERATING
        self.stop_button.setEnabled(generating)
        self.send_button.setEnabled(not generating and state is not EngineState.CRASHED)
        self.model_picker.setEnabled(not generating)
        if state is EngineState.READY:
            self.crash_bar.hide()
            self._count_timer.start()  # a model loaded or a reply ended: count again
            info = self.session.loaded_info
            # knobs a remote server has no use for are marked in the panel, not silently dropped
            self.settings_panel.set_ignored(
                info.ignored_settings if info else frozenset(), info.chat_format if info else ""
            )

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.server_panel is not None:
            self.server_panel.shutdown()  # API clients are told the server is going away
        if self.compare_window is not None:
            self.compare_window.controller.close()
        self.notebook_view.save_text()  # what was typed in the last half second too
        self.notebook.shutdown()
        self.benchmarks.close()
        self.session.shutdown()
        super().closeEvent(event)
