"""Models served by another program, as the picker and the session see them.

A remote model gets the same record as a file in the library (:class:`ModelInfo`), with
``remote`` set to the connection's name and a ``remote://connection/model`` reference as
its path, so choosing, labelling and recording a reply work alike for both. These records
are made from what the server lists and are never written to the library.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from app.core.connections import Connection
from app.core.library import ModelInfo

SCHEME = "remote://"


def remote_ref(connection: str, model_id: str) -> str:
    return f"{SCHEME}{quote(connection, safe='')}/{quote(model_id, safe='')}"


def parse_remote_ref(path: str) -> tuple[str, str] | None:
    """(connection name, model id) of a ``remote://`` reference, or None for a file path."""
    if not path.startswith(SCHEME):
        return None
    connection, sep, model_id = path[len(SCHEME) :].partition("/")
    if not sep or not connection or not model_id:
        return None
    return unquote(connection), unquote(model_id)


def remote_model_info(connection: Connection, model_id: str, context_length: int | None = None) -> ModelInfo:
    """The record for ``model_id`` as served by ``connection``: named “model · connection”, so
    a reply records both which model and which server wrote it."""
    return ModelInfo(
        path=remote_ref(connection.name, model_id),
        name=f"{model_id} · {connection.name}",
        size=0,
        context_length=context_length,
        has_chat_template=True,  # the server applies its own template
        linked=True,
        added=connection.added,
        remote=connection.name,
    )
