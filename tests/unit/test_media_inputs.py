"""Input media without servers: file references in the catalog's parameter types, the local provider's use of
masks and its image descriptions, pricing per megapixel, and how a route passes an input file upstream."""

from __future__ import annotations

import io
from fractions import Fraction

import pytest
from PIL import Image

from shared.catalog import Route
from shared.catalog.params import Parameter, validate_input
from shared.catalog.pricing import Pricing, cost, output_megapixels, worst_case_usage
from shared.infra.errors import InvalidInput
from shared.media.files import check_media
from shared.providers.base import InputFile
from shared.providers.local_media import describe, edit, edit_mask
from shared.providers.params import upstream_input


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_file_parameters_take_upload_ids_urls_and_data_uris_only() -> None:
    parameters = (Parameter("image", "image", required=True), Parameter("refs", "image_list", max_items=2))
    ok = validate_input(parameters, {"image": "upl_" + "0" * 32, "refs": ["https://a.example/x.png", "data:,x"]})
    assert ok["refs"] == ["https://a.example/x.png", "data:,x"]
    cases = [
        ({"image": "ftp://a/b.png"}, "input.image"),
        ({"image": 5}, "input.image"),
        ({"image": "upl_1", "refs": []}, "input.refs"),
        ({"image": "upl_1", "refs": ["a", "b", "c"]}, "input.refs"),
        ({"image": "upl_1", "refs": ["https://ok", "file:///etc/passwd"]}, "input.refs[1]"),
    ]
    for raw, param in cases:
        with pytest.raises(InvalidInput) as refused:
            validate_input(parameters, raw)
        assert refused.value.param == param, raw


def test_a_mask_marks_white_or_transparent_pixels_and_the_edit_keeps_the_rest() -> None:
    white_right = Image.new("L", (4, 2), 0)
    white_right.paste(255, (2, 0, 4, 2))
    transparent_left = Image.new("RGBA", (4, 2), (0, 0, 0, 255))
    transparent_left.paste((0, 0, 0, 0), (0, 0, 2, 2))
    assert list(edit_mask(png(white_right), (4, 2)).tobytes()) == [0, 0, 255, 255] * 2
    assert list(edit_mask(png(transparent_left), (4, 2)).tobytes()) == [255, 255, 0, 0] * 2
    source = Image.new("RGB", (40, 20), (10, 200, 30))
    mask = Image.new("L", (40, 20), 0)
    mask.paste(255, (20, 0, 40, 20))
    edited = Image.open(io.BytesIO(edit(png(source), png(mask), "a boat", seed=1))).convert("RGB")
    assert edited.crop((0, 0, 20, 20)).tobytes() == source.crop((0, 0, 20, 20)).tobytes()
    assert edited.crop((20, 0, 40, 20)).tobytes() != source.crop((20, 0, 40, 20)).tobytes()


def test_the_local_description_names_size_format_and_dominant_colours() -> None:
    image = Image.new("RGB", (100, 50), (220, 30, 30))
    image.paste((40, 80, 220), (0, 0, 25, 50))  # a quarter blue
    text = describe(png(image))
    assert text.startswith("a 100x50 PNG image; dominant colours: red (")
    assert "75%" in text and "blue (" in text and "25%" in text


def test_upscales_are_priced_per_megapixel_of_the_result() -> None:
    params = {"image": {"width": 500, "height": 400}, "scale": 4}
    assert output_megapixels(params) == Fraction(500 * 400 * 16, 1_000_000)
    pricing = Pricing(unit="megapixel", per_unit=50_000)  # 0.05 credits
    assert cost(pricing, worst_case_usage("megapixel", params)) == 160_000  # 3.2 MP


def test_a_route_sends_a_file_as_a_signed_url_or_inline() -> None:
    file = InputFile(
        key="inputs/x/image.png", content_type="image/png", url="https://c/v1/files/x?sig", data=b"\x89PNG"
    )
    by_url = Route("fal", "m", params=None)
    assert upstream_input(by_url, {"image": file, "prompt": "p"}) == {
        "image": "https://c/v1/files/x?sig",
        "prompt": "p",
    }
    inline = Route("fal", "m", options={"inputs": "data_uri"}, params=None)
    assert upstream_input(inline, {"image": [file]}) == {"image": ["data:image/png;base64,iVBORw=="]}


def test_media_checks_judge_by_bytes_and_name_the_parameter() -> None:
    info = check_media(png(Image.new("RGB", (3, 2))), max_bytes=10_000, max_pixels=100, param="input.image")
    assert (info.content_type, info.width, info.height) == ("image/png", 3, 2)
    for data, code in (
        (b"GIF89a not really", "media_type_not_allowed"),
        (png(Image.new("RGB", (20, 20))), "image_too_large"),
    ):
        with pytest.raises(InvalidInput) as refused:
            check_media(data, max_bytes=10_000, max_pixels=100, param="input.image")
        assert (refused.value.code, refused.value.param) == (code, "input.image")
    with pytest.raises(InvalidInput) as video:
        check_media(png(Image.new("RGB", (3, 2))), max_bytes=10_000, max_pixels=100, param="v", kind="video")
    assert video.value.code == "media_type_not_allowed"
