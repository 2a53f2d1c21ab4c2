"""A task's input media: resolved once, at submit, into Conduit's own copies; handed to providers in the worker.

At submit (``resolve_task_media``), each parameter of type ``image``, ``mask``, ``video`` or ``image_list`` names
a file (``shared.media.sources``): an upload is linked (not copied) under ``inputs/<task id>/``, a URL is fetched
through the URL guard and a ``data:`` URI decoded, both stored there (written while the task row is inserted,
before its job is handed out). The task's input then holds, for each,
``{"key", "content_type", "size_bytes", "width", "height", "duration_s", "source"}`` (and the ``upload_id``), so
the task never depends on a URL that changes or expires, or an upload deleted meanwhile, and the worker never
fetches a user's URL. A ``mask`` must have the size of the request's ``image``. The copies go with the task's
retention (``shared.tasks.retention``) and the account's deletion.

In the worker (``attach_input_files``), each stored entry becomes an ``InputFile``: the bytes, and a signed,
expiring Conduit URL an upstream can fetch.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.catalog import Model
from shared.catalog.params import MEDIA_KINDS, Parameter
from shared.infra.errors import InvalidInput
from shared.infra.storage import EXTENSIONS, LocalStorage, UrlSigner
from shared.media.sources import LoadedMedia, MediaSources
from shared.providers.base import InputFile


def input_prefix(task_id: uuid.UUID) -> str:
    return f"inputs/{task_id}"


def media_parameters(model: Model) -> list[Parameter]:
    return [p for p in model.parameters if p.type in MEDIA_KINDS]


@dataclass(slots=True)
class ResolvedMedia:
    """A task's input with its file references resolved, and the fetched files still to be written (``write``:
    the submit writes them while it inserts the task, and before its job is handed out)."""

    params: dict[str, Any]
    unwritten: list[tuple[str, bytes]] = field(default_factory=list)

    async def write(self, storage: LocalStorage) -> None:
        await asyncio.gather(*(storage.put(key, data) for key, data in self.unwritten))

    async def image_uris(self, storage: LocalStorage) -> list[str]:
        """The input images as ``data:`` URIs (for the moderation model): fetched ones from memory, uploads from
        their linked copies."""
        pending = dict(self.unwritten)
        entries = [entry for value in self.params.values() for entry in (value if isinstance(value, list) else [value])
                   if isinstance(entry, dict) and str(entry.get("content_type", "")).startswith("image/")]  # fmt: skip
        uris = []
        for entry in entries:
            data = pending.get(entry["key"]) or await storage.read(entry["key"])
            uris.append(f"data:{entry['content_type']};base64,{base64.b64encode(data).decode()}")
        return uris


async def resolve_task_media(
    sources: MediaSources, account_id: uuid.UUID, task_id: uuid.UUID, model: Model, params: dict[str, Any]
) -> ResolvedMedia:
    """``params`` with each file reference replaced by its entry (uploads linked under ``inputs/<task id>/``
    already; fetched and decoded files to write); ``InvalidInput`` naming the parameter. On a refusal the links
    made so far are deleted."""
    resolved = ResolvedMedia(dict(params))
    try:
        for parameter in media_parameters(model):
            value = params.get(parameter.name)
            if value is None:
                continue
            kind = MEDIA_KINDS[parameter.type]
            param = f"input.{parameter.name}"
            if parameter.type == "image_list":
                resolved.params[parameter.name] = [
                    await _store(sources, resolved, account_id, task_id, item, param=f"{param}[{i}]",
                                 name=f"{parameter.name}-{i}", kind=kind)
                    for i, item in enumerate(value)
                ]  # fmt: skip
            else:
                resolved.params[parameter.name] = await _store(
                    sources, resolved, account_id, task_id, value, param=param, name=parameter.name, kind=kind
                )
        _check_masks(model, resolved.params)
    except BaseException:
        await sources.storage.delete_prefix(input_prefix(task_id))
        raise
    return resolved


async def _store(
    sources: MediaSources,
    resolved: ResolvedMedia,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    value: Any,
    *,
    param: str,
    name: str,
    kind: str,
) -> dict[str, Any]:
    loaded: LoadedMedia = await sources.load(account_id, value, param=param, kind=kind)
    info = loaded.info
    key = f"{input_prefix(task_id)}/{name}.{EXTENSIONS[info.content_type]}"
    if loaded.upload is not None:
        await sources.storage.copy(loaded.upload.storage_key, key)
    else:
        assert loaded.data is not None
        resolved.unwritten.append((key, loaded.data))
    entry: dict[str, Any] = {
        "key": key,
        "content_type": info.content_type,
        "size_bytes": info.size_bytes,
        "width": info.width,
        "height": info.height,
        "duration_s": info.duration_s,
        "source": loaded.source,
    }
    if loaded.upload is not None:
        entry["upload_id"] = loaded.upload.public_id
    return entry


def _check_masks(model: Model, resolved: dict[str, Any]) -> None:
    image = resolved.get("image")
    for parameter in model.parameters:
        mask = resolved.get(parameter.name)
        if parameter.type != "mask" or not isinstance(mask, dict) or not isinstance(image, dict):
            continue
        if (mask["width"], mask["height"]) != (image["width"], image["height"]):
            raise InvalidInput(
                f"the mask is {mask['width']}x{mask['height']} but the image is {image['width']}x{image['height']}; "
                "they must be the same size",
                code="mask_size_mismatch",
                param=f"input.{parameter.name}",
            )


def is_stored_input(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("key"), str) and value["key"].startswith("inputs/")


async def attach_input_files(
    storage: LocalStorage, signer: UrlSigner, model: Model, params: dict[str, Any]
) -> dict[str, Any]:
    """A task's input with each stored file as an ``InputFile`` (bytes and signed URL), for the providers."""
    names = [p.name for p in media_parameters(model) if p.name in params]
    if not names:
        return params
    attached = dict(params)
    for name in names:
        value = params[name]
        if isinstance(value, list):
            attached[name] = [await _input_file(storage, signer, item) for item in value]
        elif is_stored_input(value):
            attached[name] = await _input_file(storage, signer, value)
    return attached


async def _input_file(storage: LocalStorage, signer: UrlSigner, entry: dict[str, Any]) -> InputFile:
    return InputFile(
        key=entry["key"],
        content_type=entry["content_type"],
        url=signer.url(entry["key"]),
        data=await storage.read(entry["key"]),
        width=entry.get("width"),
        height=entry.get("height"),
        duration_s=entry.get("duration_s"),
    )
