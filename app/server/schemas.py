"""Request validation for the OpenAI-compatible API: a parsed JSON body in, a
:class:`~app.engine.jobs.JobRequest` (with SamplingSettings-shaped settings) out, or an
:class:`ApiError` whose message says which field is wrong and why.

Only what a request means is read; unknown fields are ignored (clients send many that a
local engine has no use for: user, logprobs, tools…). Every value that reaches the engine has
passed :meth:`SamplingSettings.validate`, so bad input is a 400 here and never a failure later.

Defaults: sampling fields a request leaves out keep Hearth's own defaults (SamplingSettings),
so an API reply reads like one in the window. A request without max_tokens gets
``Limits.max_tokens_cap`` (8192 unless configured), which the engine clamps to the room left
in the model's context: "write until done or the context is full", as OpenAI does, never a
uselessly short 16. An explicit max_tokens above the cap is lowered to the cap, not refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from app.core import response_format as rf
from app.core.settings import SEED_LIMIT, SamplingSettings
from app.core.vision import sniff_image
from app.engine.jobs import API, JobRequest
from app.engine.vision import decode_data_url

ROLES = {"system", "user", "assistant"}
# Newer OpenAI clients send "developer" where older ones sent "system" (same meaning).
ROLE_ALIASES = {"developer": "system"}


@dataclass(frozen=True)
class Limits:
    max_body: int = 32 * 1024 * 1024  # bytes of request body (images come inline, as data: URLs)
    max_image_bytes: int = 16 * 1024 * 1024  # one image, decoded
    max_tokens_cap: int = 8192  # the most new tokens one request may ask for
    max_messages: int = 512  # messages in one chat request
    max_inputs: int = 256  # texts in one embeddings request
    max_stop: int = 16  # stop sequences


class ApiError(Exception):
    """An error the client caused or must handle, as OpenAI's error JSON and an HTTP status.
    ``message`` is written for the client: never a path, a traceback or engine internals."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code or "invalid_value")


@dataclass
class Parsed:
    """A validated request: the job to submit and how to answer."""

    job: JobRequest
    stream: bool = False
    include_usage: bool = False
    model: str | None = None  # as the client named it
    extra: dict[str, Any] = field(default_factory=dict)  # endpoint-specific (encoding_format…)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"'{name}' must be true or false.", name)
    return value


def _model(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    if model is None or model == "":
        return None  # the model in use
    if not isinstance(model, str):
        raise invalid("'model' must be a string.", "model")
    if len(model) > 1024:
        raise invalid("'model' is too long.", "model")
    return model


def _stop(value: Any, limits: Limits) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise invalid("'stop' must be a string or a list of strings.", "stop")
    if len(value) > limits.max_stop:
        raise invalid(f"'stop' may hold at most {limits.max_stop} sequences.", "stop")
    stops = [s for s in value if s != ""]  # an empty stop would end every reply at once: ignored
    return stops


def sampling(body: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The request's sampling fields as a validated ``SamplingSettings.to_dict()``."""
    settings = SamplingSettings()
    settings.system_prompt = ""  # the messages carry the system prompt
    names = {
        "temperature": "temperature",
        "top_p": "top_p",
        "presence_penalty": "presence_penalty",
        "frequency_penalty": "frequency_penalty",
        # llama.cpp server's extensions, accepted under the same names
        "top_k": "top_k",
        "min_p": "min_p",
        "repeat_penalty": "repeat_penalty",
    }
    for key, attr in names.items():
        value = body.get(key)
        if value is None:
            continue
        if not _number(value):
            raise invalid(f"'{key}' must be a number.", key)
        if attr == "top_k":
            if not float(value).is_integer():
                raise invalid("'top_k' must be a whole number.", key)
            value = int(value)
        setattr(settings, attr, value)

    max_tokens = body.get("max_completion_tokens")
    param = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, param = body.get("max_tokens"), "max_tokens"
    if max_tokens is None:
        settings.max_tokens = limits.max_tokens_cap
    else:
        if not _int(max_tokens):
            raise invalid(f"'{param}' must be a whole number.", param)
        if max_tokens < 1:
            raise invalid(f"'{param}' must be at least 1.", param)
        settings.max_tokens = min(max_tokens, limits.max_tokens_cap)

    settings.stop = _stop(body.get("stop"), limits)

    seed = body.get("seed")
    if seed is not None:
        if not _int(seed):
            raise invalid("'seed' must be a whole number.", "seed")
        if not 0 <= seed < SEED_LIMIT:
            raise invalid(f"'seed' must be between 0 and {SEED_LIMIT - 1}.", "seed")
        settings.seed = seed

    problems = settings.validate(None)  # the context length is the engine's to apply
    if problems:
        first = problems[0]
        raise invalid(" ".join(pr.message for pr in problems), first.field)
    return settings.to_dict()


def _content(value: Any, where: str, limits: Limits | None = None) -> str | list[dict[str, Any]]:
    """A message's content: a string, or a list of text parts (joined into a string), or,
    when it has images (``image_url`` parts, data: URLs only), the parts in order."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[dict[str, Any]] = []
        for i, part in enumerate(value):
            if not isinstance(part, dict):
                raise invalid(f"{where}.content[{i}] must be an object.", f"{where}.content")
            kind = part.get("type")
            if kind == "image_url":
                parts.append(_image_part(part, f"{where}.content[{i}]", f"{where}.content", limits or Limits()))
                continue
            if kind != "text":
                raise invalid(
                    f"{where}.content[{i}] is of type {str(kind)[:40]!r}; only text and image_url parts are supported.",
                    f"{where}.content",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid(f"{where}.content[{i}].text must be a string.", f"{where}.content")
            parts.append({"type": "text", "text": text})
        if any(p["type"] == "image_url" for p in parts):
            return parts
        return "".join(p["text"] for p in parts)
    raise invalid(f"{where}.content must be a string or a list of content parts.", f"{where}.content")


def _image_part(part: dict[str, Any], where: str, param: str, limits: Limits) -> dict[str, Any]:
    """An ``image_url`` part: a data: URL of a PNG, JPEG, GIF, BMP or WebP image no larger than
    ``limits.max_image_bytes``. Nothing is ever fetched: an http(s) URL is refused."""
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str):
        raise invalid(f"{where}.image_url.url must be a string.", param)
    if not url.startswith("data:"):
        raise invalid(
            f"{where}.image_url.url must be a data: URL (base64); this server fetches nothing from the network.",
            param,
            "unsupported_image_url",
        )
    head, _, payload = url.partition(",")
    if len(payload) > limits.max_image_bytes * 4 // 3 + 4:
        raise ApiError(
            413,
            f"{where}: the image is larger than {limits.max_image_bytes:,} bytes.",
            param=param,
            code="image_too_large",
        )
    try:
        data = decode_data_url(url)
    except ValueError as exc:
        raise invalid(f"{where}: {exc}", param, "invalid_image") from None
    mime = sniff_image(data)
    if mime is None:
        raise invalid(f"{where}: the image is not a PNG, JPEG, GIF, BMP or WebP image.", param, "invalid_image")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{payload}"}}


def messages(value: Any, limits: Limits) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid("'messages' must be a non-empty list.", "messages")
    if len(value) > limits.max_messages:
        raise invalid(f"'messages' may hold at most {limits.max_messages} messages.", "messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(f"{where} must be an object.", "messages")
        role = message.get("role")
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise invalid(
                f"{where}.role must be one of 'system', 'user' or 'assistant' (tools are not supported).",
                f"{where}.role",
            )
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""
        out.append({"role": str(role), "content": _content(content, where, limits)})
    return out


def _response_format(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``response_format`` as SamplingSettings fields (structured output, issue 16):
    ``{"type": "json_object"}`` → any JSON; ``{"type": "json_schema", "json_schema": {"schema":
    {...}}}`` → JSON matching that schema (llama-cpp-python's own server refuses this form);
    llama-cpp-python's ``{"type": "json_object", "schema": {...}}`` is read the same way. The
    schema is checked here like one pasted into the settings panel: an unusable one is a 400."""
    value = body.get("response_format")
    if value is None:
        return {}
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise invalid("'response_format' must be an object with a 'type'.", "response_format")
    kind = value["type"]
    if kind == "text":
        return {"response_format": rf.TEXT}
    if kind == "json_object" and value.get("schema") is None:
        return {"response_format": rf.JSON}
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise invalid("'response_format.json_schema' must be an object with a 'schema'.", "response_format")
        schema = spec.get("schema")
    elif kind == "json_object":
        schema = value.get("schema")
    else:
        raise invalid(
            f"'response_format.type' must be 'text', 'json_object' or 'json_schema' (not {kind[:40]!r}).",
            "response_format",
        )
    if not isinstance(schema, dict):
        raise invalid("The response format's 'schema' must be a JSON Schema object.", "response_format")
    text = json.dumps(schema, ensure_ascii=False)
    problem = rf.schema_problem(text)
    if problem is not None:
        raise invalid(problem, "response_format")
    return {"response_format": rf.JSON_SCHEMA, "json_schema": text}


def _n(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid("Only one choice per request is supported ('n' must be 1).", "n")


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = _opt_bool(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise invalid("'stream_options' must be an object.", "stream_options")
        value = options.get("include_usage")
        if value is not None and not isinstance(value, bool):
            raise invalid("'stream_options.include_usage' must be true or false.", "stream_options")
        include_usage = bool(value)
    return stream, include_usage


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, "invalid_json")
    return body


def chat_request(body: Any, limits: Limits, client: str = "") -> Parsed:
    body = _require_object(body)
    model = _model(body)
    msgs = messages(body.get("messages"), limits)
    _n(body)
    stream, include_usage = _stream(body)
    job = JobRequest(
        kind="chat",
        model=model,
        messages=msgs,
        settings={**sampling(body, limits), **_response_format(body)},
        priority=API,
        client=client,
    )
    return Parsed(job, stream, include_usage, model)


def completion_request(body: Any, limits: Limits, client: str = "") -> Parsed:
    body = _require_object(body)
    model = _model(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise invalid("'prompt' must be a string (one prompt per request).", "prompt")
    _n(body)
    if body.get("best_of") not in (None, 1):
        raise invalid("'best_of' must be 1.", "best_of")
    stream, include_usage = _stream(body)
    job = JobRequest(
        kind="complete", model=model, prompt=prompt, settings=sampling(body, limits), priority=API, client=client
    )
    return Parsed(job, stream, include_usage, model, {"echo": _opt_bool(body, "echo")})


def embedding_request(body: Any, limits: Limits, client: str = "") -> Parsed:
    body = _require_object(body)
    model = _model(body)
    value = body.get("input")
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        texts = list(value)
    elif isinstance(value, list) and value and all(_int(t) or isinstance(t, list) for t in value):
        raise invalid("'input' must be text; token arrays are not supported.", "input")
    else:
        raise invalid("'input' must be a string or a non-empty list of strings.", "input")
    if len(texts) > limits.max_inputs:
        raise invalid(f"'input' may hold at most {limits.max_inputs} texts.", "input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _int(dimensions) or dimensions < 1):
        raise invalid("'dimensions' must be a positive whole number.", "dimensions")
    job = JobRequest(kind="embed", model=model, texts=texts, priority=API, client=client)
    return Parsed(job, False, False, model, {"encoding_format": encoding, "dimensions": dimensions})
