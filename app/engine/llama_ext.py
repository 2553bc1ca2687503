"""``Llama`` with what llama-cpp-python 0.3's constructor cannot say. Imported only by the
engine child (it imports llama_cpp).

Flash attention "auto": ``Llama.__init__`` turns its ``flash_attn`` bool into
``context_params.flash_attn_type`` ENABLED or DISABLED and creates the context from
``self.context_params`` within the same call, so there is no moment to set AUTO (-1) from
outside. Here ``context_params`` is a property: every read inside ``__init__`` hands out the
struct with the requested ``flash_attn_type`` put back, so the context is created with it.
"""

from __future__ import annotations

from typing import Any

from llama_cpp import Llama


class HearthLlama(Llama):
    def __init__(self, *args: Any, flash_attn_type: int | None = None, **kwargs: Any) -> None:
        self._flash_attn_type = flash_attn_type
        super().__init__(*args, **kwargs)

    @property
    def context_params(self) -> Any:
        params = self.__dict__["_context_params"]
        if self.__dict__.get("_flash_attn_type") is not None:
            params.flash_attn_type = self._flash_attn_type
        return params

    @context_params.setter
    def context_params(self, value: Any) -> None:
        self.__dict__["_context_params"] = value
