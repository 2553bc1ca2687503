"""Markdown to safe HTML, shared by the HTML export and the chat view.

API:
    render_markdown(text, *, code_style="default") -> str   HTML fragment
    render_plain(text) -> str                                 the same text, markup stripped
    CODE_STYLES                                               Pygments style names that exist

Model output is untrusted: a reply can contain ``<script>``, ``<img onerror=…>`` or a
``javascript:`` link, whether by accident (it was asked about HTML) or because a document it
read told it to. So the parser is markdown-it's "js-default" preset, which escapes raw HTML
instead of passing it through and refuses ``javascript:``/``vbscript:``/``file:`` links, and
the renderer is changed in three places:

- images are never loaded (a remote image is a tracking pixel, and a local one is a file
  read): each becomes a link showing its alt text, so the reader sees it and decides;
- links carry their target in ``title`` (visible on hover, so ``[docs](https://evil)`` does
  not hide where it goes) and ``rel="noopener noreferrer"``;
- fenced code is highlighted by Pygments with *inline* styles, so the fragment needs no
  stylesheet: it looks the same in a self-contained HTML file and in Qt's rich text, which
  has no ``<style>`` cascade worth relying on. An unknown or missing language is escaped
  plain ``<pre>``; Pygments never guesses (guessing is slow and often wrong).

Task-list checkboxes are drawn as ☐/☑ characters rather than ``<input>`` elements, which
Qt's rich text cannot show.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from pygments import highlight as _pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.styles import get_all_styles, get_style_by_name
from pygments.util import ClassNotFound

gfm_autolink_plugin: Callable[[MarkdownIt], None] | None
try:  # mdit-py-plugins >= 0.5 with markdown-it-py >= 4.1: bare URLs become links, as on GitHub
    from mdit_py_plugins.gfm_autolink import gfm_autolink_plugin
except ImportError:  # pragma: no cover - older plugin package: bare URLs stay text
    gfm_autolink_plugin = None

CODE_STYLES: frozenset[str] = frozenset(get_all_styles())

_REL = "noopener noreferrer"
# Languages that mean "no highlighting": Pygments has a lexer for some of them, but it only
# wraps the text in spans that change nothing.
_PLAIN_LANGS = frozenset({"", "text", "txt", "plain", "plaintext", "none", "output"})
_SAFE_IMAGE_SCHEMES = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)


def render_markdown(text: str, *, code_style: str = "default") -> str:
    """The HTML fragment for ``text``; safe to embed in any page without sanitizing again.

    ``code_style`` is a Pygments style name (see ``CODE_STYLES``); a dark theme passes a dark
    one. An unknown name falls back to "default" rather than failing a render.
    """
    env = {"code_style": code_style if code_style in CODE_STYLES else "default"}
    html: str = _parser().render(text, env)
    return html


def render_plain(text: str) -> str:
    """The text a reader sees in the rendered markdown, without the markup.

    For places that cannot show rich text (notifications, list previews, "copy as plain
    text"). Links keep their target in brackets so nothing the model pointed at is hidden.
    """
    out: list[str] = []
    lists: list[list[int]] = []  # per open list: [next number or -1 for bullets]
    for tok in _parser().parse(text):
        t = tok.type
        if t == "inline":
            out.append(_inline_plain(tok.children or []))
        elif t in ("paragraph_close", "heading_close"):
            out.append("\n" if tok.hidden or lists else "\n\n")
        elif t in ("fence", "code_block"):
            out.append(tok.content if tok.content.endswith("\n") else tok.content + "\n")
            out.append("\n")
        elif t == "bullet_list_open":
            lists.append([-1])
        elif t == "ordered_list_open":
            lists.append([int(tok.attrGet("start") or 1)])
        elif t in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                out.append("\n")
        elif t == "list_item_open" and lists:
            number = lists[-1][0]
            marker = "•" if number < 0 else f"{number}."
            if number >= 0:
                lists[-1][0] += 1
            if tok.meta and "checked" in tok.meta:
                marker += " ☑" if tok.meta["checked"] else " ☐"
            out.append("  " * (len(lists) - 1) + marker + " ")
        elif t in ("th_open", "td_open"):
            if out and not out[-1].endswith("\n"):
                out.append(" | ")
        elif t == "tr_close":
            out.append("\n")
        elif t == "table_close":
            out.append("\n")
        elif t == "hr":
            out.append("———\n\n")
    plain = "".join(out)
    return re.sub(r"\n{3,}", "\n\n", plain).strip("\n")


def _inline_plain(children: Sequence[Token]) -> str:
    parts: list[str] = []
    links: list[tuple[str, int]] = []  # (href, where its label starts in parts)
    for tok in children:
        t = tok.type
        if t in ("text", "code_inline", "html_inline"):
            parts.append(tok.content)
        elif t in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif t == "image":
            alt = "".join(c.content for c in tok.children or [])
            parts.append(f"[image: {alt}]" if alt else "[image]")
        elif t == "link_open":
            links.append((str(tok.attrGet("href") or ""), len(parts)))
        elif t == "link_close" and links:
            href, start = links.pop()
            label = "".join(parts[start:])
            # An autolink already shows its target; any other link gets it in brackets.
            if href and label not in (href, href.removeprefix("mailto:"), href.removeprefix("http://")):
                parts.append(f" ({href})")
    return "".join(parts)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    """Built once: the rule tables are immutable after setup and render() keeps no state."""
    md = MarkdownIt("js-default", {"tasklists": True})
    md.enable(["table", "strikethrough"])
    if gfm_autolink_plugin is not None:
        md.use(gfm_autolink_plugin)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_code_block)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("image", _render_image)
    md.add_render_rule("list_item_open", _render_list_item_open)
    return md


def _render_fence(self: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    return _code_html(token.content, lang, env.get("code_style", "default"))


def _render_code_block(self: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return _code_html(tokens[idx].content, "", env.get("code_style", "default"))


def _code_html(code: str, lang: str, style: str) -> str:
    background = get_style_by_name(style).background_color or "#f8f8f8"
    pre_open = f'<pre class="code" style="background: {escapeHtml(background)}">'
    lexer = _lexer(lang.lower())
    if lexer is None:
        lang_attr = f' class="language-{escapeHtml(lang)}"' if lang else ""
        return f"{pre_open}<code{lang_attr}>{escapeHtml(code)}</code></pre>\n"
    body = _pygments_highlight(code, lexer, _formatter(style))
    return f'{pre_open}<code class="language-{escapeHtml(lang)}">{body}</code></pre>\n'


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer | None:
    if lang in _PLAIN_LANGS:
        return None
    try:
        # stripnl=False: a fence's leading blank lines are part of what the model wrote.
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


@lru_cache(maxsize=8)
def _formatter(style: str) -> HtmlFormatter:
    return HtmlFormatter(noclasses=True, nowrap=True, style=style)


def _render_link_open(self: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    title = str(token.attrGet("title") or "")
    # The target on hover, always: a markdown title must not be able to hide it.
    token.attrSet("title", f"{title} — {href}" if title and href not in title else (title or href))
    token.attrSet("rel", _REL)
    return self.renderToken(tokens, idx, options, env)


def _render_image(self: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    label = escapeHtml(f"[image: {alt}]" if alt else "[image]")
    if not _SAFE_IMAGE_SCHEMES.match(src):
        # data: and relative sources: show the alt text only (a data URL is not worth a click).
        return f'<span class="image-alt">{label}</span>'
    src_html = escapeHtml(src)
    return f'<a class="image-link" href="{src_html}" title="{src_html}" rel="{_REL}">{label}</a>'


def _render_list_item_open(self: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    result = self.renderToken(tokens, idx, options, env)
    if token.meta and "checked" in token.meta:
        result += "☑ " if token.meta["checked"] else "☐ "
    return result
