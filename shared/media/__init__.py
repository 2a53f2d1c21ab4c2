"""Input media: files users give models (uploads, URLs fetched at submit, ``data:`` URIs), checked by their bytes,
kept in storage, and handed to providers as signed URLs or bytes.

* ``files``: what a file is (PNG, JPEG, WebP, GIF, MP4, WebM), judged by its bytes, with the size and pixel caps;
* ``uploads``: ``/v1/uploads``: an account's uploaded files, their quota and their retention;
* ``sources``: turning an upload id, an http(s) URL or a ``data:`` URI into checked bytes;
* ``inputs``: a task's media parameters, resolved at submit into copies under ``inputs/<task id>/``, and handed
  to the worker's providers (``InputFile``);
* ``chat_images``: the image parts of chat messages, inlined as checked ``data:`` URIs;
* ``settings``: the caps, the quota, the retention and the fetch timeout (``Settings.media``).
"""
