"""OpenAI-compatible requests: chat and legacy completions and embeddings served in the API process, image
generations through tasks.

* ``chat_fields``: a chat request's fields checked (each honoured or refused); ``chat_messages``: its messages;
* ``chat_input``: the request checked against one model (capabilities, routes, parameters, hold);
* ``chat``: the completion itself, plain or streamed, with its fallback models, its hold and its single settlement;
  ``chat_response`` and ``chat_events`` render it (``chat.completion``, ``chat.completion.chunk`` events);
* ``completions``: legacy ``/v1/completions`` through the chat machinery; ``embeddings``: ``/v1/embeddings``;
* ``images``: an image generation as a task, waited for;
* ``routing``: which routes may serve a request (capabilities, ``provider`` preferences), fallbacks between routes
  and between models;
* ``pricing``: what a request holds and is charged; ``billing``: the hold and the settlement + usage record;
  ``settlements``: settlements running on their own after the answer went out.
"""
