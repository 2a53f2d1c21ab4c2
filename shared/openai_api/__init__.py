"""OpenAI-compatible requests: chat completions served in the API process, image generations through tasks.

* ``chat_input``: an OpenAI chat request turned into a model's validated parameters and its worst-case hold;
* ``chat``: the completion itself, plain or streamed, with its hold and its single settlement;
* ``images``: an image generation as a task, waited for;
* ``routing``: a model's routes for one synchronous request (breaker, retries, fallbacks);
* ``billing``: the hold and the settlement + usage record, one round trip each.
"""
