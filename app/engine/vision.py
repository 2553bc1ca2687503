"""Images in chat, in the engine child: llama.cpp's multimodal library (libmtmd) with a
model's projector (``mmproj*.gguf``).

The prompt is rendered with the model's own chat template (the same formatter that counts
text prompts), each image standing in the text as libmtmd's media marker; libmtmd then
splits it into text and image chunks, encodes each image with the projector and writes its
embeddings into the model's context. llama-cpp-python's ``MTMDChatHandler`` does the same,
but renders content parts as lists (which most GGUF templates print as Python reprs) and
always adds its own BOS; this keeps Hearth's template, BOS and stop handling.

Only the child imports this module's ``Projector`` (it loads ``llama_cpp``); the message
helpers at the top are plain Python, also used to check requests elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: What a model without a projector answers a message with images.
NO_VISION = (
    "This model can't see images: it has no image projector (mmproj). Pick a vision model, "
    "or set its projector under Models > Manage models > Defaults, or remove the image and send the text."
)

#: What libmtmd looks for in the text where an image goes (``mtmd_default_marker()``).
MEDIA_MARKER = "<__media__>"


def image_urls(content: object) -> list[str]:
    """The image URLs of one message's content (OpenAI content parts), in order."""
    urls: list[str] = []
    if not isinstance(content, list):
        return urls
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            urls.append(url if isinstance(url, str) else "")
    return urls


def has_images(messages: list[dict[str, Any]]) -> bool:
    return any(image_urls(m.get("content")) for m in messages)


def content_text(content: object) -> str:
    """The text of a message's content: a string as is, the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def text_only(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The messages with their images left out (for a model that cannot see them)."""
    return [{**m, "content": content_text(m.get("content"))} for m in messages]


def decode_data_url(url: str) -> bytes:
    """The bytes of a ``data:image/...;base64,`` URL; ValueError in plain words otherwise
    (nothing is ever fetched from the network)."""
    if not url.startswith("data:"):
        raise ValueError("Only images sent inline (data: URLs) can be used; nothing is fetched from the network.")
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise ValueError("An image's data: URL must be base64-encoded.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("An image's data: URL is not valid base64.") from exc


def with_markers(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[bytes]]:
    """Messages whose content is a string in which each image is the media marker (images
    before the text of their message, as most vision models were trained), and the images'
    bytes in the same order. The person's own text cannot forge a marker."""
    out: list[dict[str, str]] = []
    images: list[bytes] = []
    for m in messages:
        urls = image_urls(m.get("content"))
        text = content_text(m.get("content")).replace(MEDIA_MARKER, "")
        for url in urls:
            images.append(decode_data_url(url))
        out.append({**m, "content": (MEDIA_MARKER + "\n") * len(urls) + text if urls else text})
    return out, images


class Projector:
    """A model's projector loaded into libmtmd, bound to one loaded ``Llama``."""

    def __init__(self, path: str, llm: Any, n_threads: int, use_gpu: bool) -> None:
        import llama_cpp.mtmd_cpp as mtmd  # noqa: PLC0415 - child process only

        self._mtmd = mtmd
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = max(1, n_threads)
        params.warmup = True
        with _quiet():
            ctx = mtmd.mtmd_init_from_file(path.encode("utf-8"), llm.model, params)
        if not ctx:
            raise ValueError("libmtmd could not load it (not a projector, or not one for this model)")
        self._ctx = ctx
        if not mtmd.mtmd_support_vision(ctx):
            self.close()
            raise ValueError("it has no vision encoder")

    def close(self) -> None:
        if self._ctx is not None:
            self._mtmd.mtmd_free(self._ctx)
            self._ctx = None

    @contextmanager
    def _chunks(self, prompt: str, images: list[bytes], add_special: bool) -> Iterator[Any]:
        mtmd = self._mtmd
        bitmaps = []
        chunks = None
        try:
            for number, data in enumerate(images, 1):
                buf = (ctypes.c_uint8 * len(data)).from_buffer(bytearray(data))
                with _quiet():
                    bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buf, len(data), False)
                if not bitmap:
                    raise ValueError(f"Image {number} could not be read (not a PNG, JPEG, GIF, BMP or WebP image?).")
                bitmaps.append(bitmap)
            text = mtmd.mtmd_input_text()
            encoded = prompt.encode("utf-8")
            text.text = encoded
            text.text_len = len(encoded)
            text.add_special = add_special
            text.parse_special = True
            chunks = mtmd.mtmd_input_chunks_init()
            array = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            with _quiet():
                result = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), array, len(bitmaps))
            if result != 0:
                raise ValueError(f"llama.cpp could not prepare the images (mtmd_tokenize returned {result}).")
            yield chunks
        finally:
            if chunks is not None:
                mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def count(self, prompt: str, images: list[bytes], add_special: bool) -> int:
        """Tokens the prompt takes in the context, each image as the tokens it becomes."""
        with self._chunks(prompt, images, add_special) as chunks:
            return int(self._mtmd.mtmd_helper_get_n_tokens(chunks))

    def evaluate(self, llm: Any, prompt: str, images: list[bytes], add_special: bool) -> list[int]:
        """Write the prompt, images included, into ``llm``'s context from position 0.
        Returns the token list to pass to ``create_completion``: llama-cpp-python finds it
        all already evaluated (its prefix match) and only samples from there. The
        positions of images hold ids that are no real prompt's, and the caller resets
        ``llm`` after the reply so that no later prompt can match them."""
        import llama_cpp  # noqa: PLC0415

        mtmd = self._mtmd
        with self._chunks(prompt, images, add_special) as chunks:
            total = int(mtmd.mtmd_helper_get_n_tokens(chunks))
            if total >= llm.n_ctx():
                raise ValueError(f"The images and text take {total:,} tokens; the context holds {llm.n_ctx():,}.")
            llm.reset()
            llm._ctx.kv_cache_clear()
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t()
                    tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    if n.value:
                        llm.eval([tokens[j] for j in range(n.value)])
                    continue
                start = llm.n_tokens
                new_past = llama_cpp.llama_pos(0)
                with _quiet():
                    result = mtmd.mtmd_helper_eval_chunk_single(
                        self._ctx,
                        llm._ctx.ctx,
                        chunk,
                        llama_cpp.llama_pos(start),
                        llama_cpp.llama_seq_id(0),
                        llm.n_batch,
                        False,
                        ctypes.byref(new_past),
                    )
                if result != 0:
                    raise ValueError(f"llama.cpp could not encode an image (error {result}).")
                llm.input_ids[start : new_past.value] = llm.token_bos()
                llm.n_tokens = new_past.value
            return [int(t) for t in llm.input_ids[: llm.n_tokens]]


@contextmanager
def _quiet() -> Iterator[None]:
    """libmtmd prints its progress on stderr for every image: keep the child's log clean."""
    from llama_cpp._utils import suppress_stdout_stderr  # noqa: PLC0415

    with suppress_stdout_stderr(disable=False):
        yield
