from __future__ import annotations

import io

from PIL import Image

from shared.catalog.pricing import max_input_tokens
from shared.providers.local import count_tokens, draw_animation, draw_image, reply_text


def test_images_are_real_pngs_of_the_requested_size_and_depend_on_the_seed() -> None:
    first = draw_image("a red fox", seed=1, width=320, height=192)
    assert Image.open(io.BytesIO(first)).size == (320, 192)
    assert draw_image("a red fox", seed=1, width=320, height=192) == first
    assert draw_image("a red fox", seed=2, width=320, height=192) != first


def test_animations_have_one_frame_per_second_per_fps() -> None:
    gif = Image.open(io.BytesIO(draw_animation("ball", seed=3, width=128, height=128, seconds=2, fps=5)))
    assert gif.format == "GIF"
    assert getattr(gif, "n_frames", 1) == 10


def test_text_replies_stay_within_max_tokens_and_the_held_prompt_bound() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "tell me about the sea " * 20}]
    text, tokens_in, tokens_out = reply_text(messages, max_tokens=10, seed=0)
    assert 0 < tokens_out <= 10
    assert count_tokens(text) == tokens_out
    assert tokens_in <= max_input_tokens(messages)
