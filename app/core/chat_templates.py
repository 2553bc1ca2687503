"""Known chat templates, for models whose GGUF carries none (base models) or a broken one.

A chat model is trained to see a conversation in one exact shape: role markers, turn ends,
where the reply starts. The GGUF normally carries that shape as a Jinja template
(``tokenizer.chat_template``). A base model has none: it was trained on plain text, and fed
a chat through a guessed template it tends to end its reply at once. The person can then
pick one of these shapes for the model (saved with the model's defaults); the engine renders
it with llama-cpp-python's Jinja formatter, the same code that renders GGUF templates.

The templates follow the published formats of each family; ``stop`` lists the strings that
end a turn in that format, so generation stops there even when the model's own
end-of-sequence token is a different one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    key: str  # stored in the model's defaults: never rename one
    label: str  # what the person sees
    template: str  # Jinja, over ``messages`` (role, content), ``add_generation_prompt``, bos/eos
    stop: tuple[str, ...]


KNOWN_TEMPLATES: tuple[ChatTemplate, ...] = (
    ChatTemplate(
        "chatml",
        "ChatML (Qwen, SmolLM, Hermes, many fine-tunes)",
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        ("<|im_end|>", "<|im_start|>"),
    ),
    ChatTemplate(
        "llama3",
        "Llama 3",
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
        ("<|eot_id|>", "<|start_header_id|>"),
    ),
    ChatTemplate(
        "llama2",
        "Llama 2",
        "{% for m in messages %}{% if m.role == 'system' %}<<SYS>>\n{{ m.content }}\n<</SYS>>\n\n"
        "{% elif m.role == 'user' %}{{ bos_token }}[INST] {{ m.content | trim }} [/INST]"
        "{% else %} {{ m.content | trim }} {{ eos_token }}{% endif %}{% endfor %}",
        ("[INST]",),
    ),
    ChatTemplate(
        "gemma",
        "Gemma",
        "{{ bos_token }}{% for m in messages %}"
        "{% set role = 'model' if m.role == 'assistant' else 'user' %}"
        "<start_of_turn>{{ role }}\n{{ m.content | trim }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
        ("<end_of_turn>", "<start_of_turn>"),
    ),
    ChatTemplate(
        "mistral",
        "Mistral Instruct",
        "{{ bos_token }}{% for m in messages %}{% if m.role in ('user', 'system') %}"
        "[INST] {{ m.content | trim }} [/INST]{% else %}{{ m.content | trim }}{{ eos_token }}"
        "{% endif %}{% endfor %}",
        ("[INST]",),
    ),
    ChatTemplate(
        "phi3",
        "Phi-3",
        "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
        ("<|end|>", "<|user|>", "<|endoftext|>"),
    ),
    ChatTemplate(
        "alpaca",
        "Alpaca (### Instruction / ### Response)",
        "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n"
        "{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n"
        "{% else %}### Response:\n{{ m.content }}\n\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}### Response:\n{% endif %}",
        ("### Instruction:", "### Response:"),
    ),
)

_BY_KEY = {t.key: t for t in KNOWN_TEMPLATES}


def known_template(key: str | None) -> ChatTemplate | None:
    """The template stored under ``key``, or None (unknown keys from a newer version too)."""
    return _BY_KEY.get(key) if isinstance(key, str) else None


def template_problem(template: str | None) -> str | None:
    """Why a GGUF's chat template cannot be used, in plain words, or None when it can.

    Compiled in Jinja's sandbox like llama-cpp-python does; a template that compiles may
    still refuse a conversation at run time (that failure is reported when it happens).
    """
    if template is None:
        return "no chat template"
    if not template.strip():
        return "an empty chat template"
    import jinja2  # here, not at the top: the window's first frame does not need Jinja (~50 ms)
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(loader=jinja2.BaseLoader()).from_string(template)
    except jinja2.TemplateError as exc:
        return f"a chat template that does not compile ({exc.__class__.__name__}: {exc})"
    except (RecursionError, MemoryError, ValueError, TypeError):
        return "a chat template that does not compile"
    return None
