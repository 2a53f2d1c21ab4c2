"""``POST /v1/images/edits``: OpenAI's image edit, multipart (``image`` and optional ``mask`` files, ``prompt``,
``model``, ``n``, ``size``, ``response_format``; ``user`` is accepted and ignored), served as a task of the
model like ``/v1/images/generations`` (``shared.openai_api.images``)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from litestar import Controller, Request, Router, post
from litestar.datastructures import UploadFile
from litestar.di import Provide

from api.contract import reads
from api.deps import PrincipalDep, ServicesDep, TaskAdmissionDep, provide_principal, provide_task_admission
from api.permissions import requires
from api.rate_limit_headers import TASK_ROUTE
from api.routes.openai_api import image_deps, task_exists
from shared.infra.errors import InvalidInput, UnsupportedMediaType
from shared.openai_api.images import ImageInput, ImagesResponse, generate_images

TEXT_FIELDS = ("model", "prompt", "n", "size", "response_format", "user")
FILE_FIELDS = ("image", "mask")


async def read_edit_form(request: Request[Any, Any, Any]) -> ImageInput:
    """The edit request's fields; every file becomes a ``data:`` URI (its type is judged later, by its bytes)."""
    if request.content_type[0] != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data: the image (and mask) as files, the rest as fields")
    form = await request.form()
    texts: dict[str, str] = {}
    files: dict[str, str] = {}
    for name, value in form.multi_items():
        if name in FILE_FIELDS and isinstance(value, UploadFile):
            if name in files:
                raise InvalidInput(f"send one {name} file", param=name)
            files[name] = f"data:application/octet-stream;base64,{base64.b64encode(await value.read()).decode()}"
            await value.close()
        elif name in TEXT_FIELDS and isinstance(value, str):
            texts[name] = value
        else:
            raise InvalidInput(f"unsupported field {name!r} (or a file where text belongs)", param=name)
    for required in ("model", "prompt"):
        if not texts.get(required):
            raise InvalidInput(f"{required} is required", param=required)
    if "image" not in files:
        raise InvalidInput("image is required: the image to edit, as a file", param="image")
    n = texts.get("n")
    if n is not None and not n.isdigit():
        raise InvalidInput("n must be a whole number", param="n")
    return ImageInput(
        model=texts["model"],
        prompt=texts["prompt"],
        n=int(n) if n is not None else None,
        size=texts.get("size"),
        response_format=texts.get("response_format"),
        image=files["image"],
        mask=files.get("mask"),
    )


class ImageEditForm(msgspec.Struct):
    """The text fields of an image edit (multipart, beside the ``image`` and ``mask`` files)."""

    model: str
    prompt: str
    n: int = 1
    size: str = ""
    response_format: str = ""
    user: str = ""


class ImageEditController(Controller):
    path = "/v1/images"
    tags = ["openai"]
    dependencies = {"principal": Provide(provide_principal)}

    @post(
        "/edits",
        operation_id="createImageEdit",
        status_code=200,
        opt={"rate_limit": TASK_ROUTE, **requires("tasks.run")},  # rpm and an in-flight slot, like a submit
        dependencies={"admission": Provide(provide_task_admission)},
    )
    @reads(ImageEditForm, files=FILE_FIELDS, required_files=("image",), multipart_only=True)
    async def image_edits(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        admission: TaskAdmissionDep,
        services: ServicesDep,
    ) -> ImagesResponse:
        """Edit an image (OpenAI's ``images.edit``): a task of the model with the image and mask as its inputs."""
        body = await read_edit_form(request)
        admission.created = True  # from here on the task (if any) owns the slot and gives it back when it ends
        try:
            return await generate_images(image_deps(services), principal, body, admission.task_id)
        except BaseException:
            admission.created = await task_exists(services, admission.task_id)
            raise


def image_edits_router(max_request_bytes: int) -> Router:
    """The edit route, with a body limit that fits an image and a mask at ``UPLOAD_MAX_BYTES`` each."""
    return Router(path="/", route_handlers=[ImageEditController], request_max_body_size=max_request_bytes)
