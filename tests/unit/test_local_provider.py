from __future__ import annotations

import io

from PIL import Image

from shared.catalog.pricing import max_input_tokens
from shared.providers.local import count_tokens, draw_animation, draw_image, frame_delays_ms, reply_text
from shared.providers.media import measure


def test_images_are_real_pngs_of_the_requested_size_and_depend_on_the_seed() -> None:
    first = draw_image("a red fox", seed=1, width=320, height=192)
    assert Image.open(io.BytesIO(first)).size == (320, 192)
    assert draw_image("a red fox", seed=1, width=320, height=192) == first
    assert draw_image("a red fox", seed=2, width=320, height=192) != first


def test_animations_have_one_frame_per_second_per_fps() -> None:
    gif = Image.open(io.BytesIO(draw_animation("ball", seed=3, width=128, height=128, seconds=2, fps=5)))
    assert gif.format == "GIF"
    assert getattr(gif, "n_frames", 1) == 10


def test_animations_last_exactly_the_seconds_asked_for_at_any_frame_rate() -> None:
    # 1000/24 ms is not a whole number of GIF's 10 ms steps: the delays alternate so that they add up.
    assert sum(frame_delays_ms(5, 24)) == 5000 and set(frame_delays_ms(5, 24)) == {40, 50}
    gif = draw_animation("ball", seed=1, width=64, height=48, seconds=2, fps=24)
    assert measure(gif, "image/gif").duration_s == 2.0


def test_every_parameter_of_an_image_changes_the_drawing() -> None:
    plain = draw_image("a fox", seed=1, width=64, height=64)
    assert draw_image("a fox", seed=1, width=64, height=64, style=("no cats", None, None)) != plain
    assert draw_image("a fox", seed=1, width=64, height=64, style=(None, 30, 7.5)) != plain
    assert draw_image("a fox", seed=1, width=64, height=64, shapes=16) != plain


def test_text_replies_stay_within_max_tokens_and_the_held_prompt_bound() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "tell me about the sea " * 20}]
    text, tokens_in, tokens_out = reply_text(messages, max_tokens=10, seed=0)
    assert 0 < tokens_out <= 10
    assert count_tokens(text) == tokens_out
    assert tokens_in <= max_input_tokens(messages)
