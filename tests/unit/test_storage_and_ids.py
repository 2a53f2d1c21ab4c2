from __future__ import annotations

import uuid

from shared.infra.ids import uuid7
from shared.infra.storage import UrlSigner, valid_key

KEY = "outputs/01a20003-675b-7f97-98cf-3c2203a85aa8/0.png"


def test_signed_urls_verify_and_cannot_be_altered_or_extended() -> None:
    signer = UrlSigner(b"k" * 32, "http://h", ttl_s=3600)
    url = signer.url(KEY, now=1_000_000)
    query = dict(part.split("=") for part in url.split("?", 1)[1].split("&"))
    expires, signature = int(query["expires"]), query["signature"]
    assert expires >= 1_000_000 + 3600
    assert signer.verify(KEY, expires, signature, now=1_000_000)
    assert not signer.verify(KEY, expires + 3600, signature, now=1_000_000)
    assert not signer.verify(KEY.replace("0.png", "1.png"), expires, signature, now=1_000_000)
    assert not signer.verify(KEY, expires, signature, now=expires + 1)
    assert not UrlSigner(b"other" * 8, "http://h", 3600).verify(KEY, expires, signature, now=1_000_000)


def test_storage_keys_cannot_escape_the_storage_folder() -> None:
    assert valid_key(KEY)
    assert not valid_key("outputs/../../etc/passwd")
    assert not valid_key("/etc/passwd")
    assert not valid_key("outputs/01a20003-675b-7f97-98cf-3c2203a85aa8/../0.png")


def test_uuid7_is_version_7_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_random_bits_differ_between_a_forked_child_and_its_parent() -> None:
    import os

    uuid7()  # the parent has random bytes read ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send the random part of its next id, and leave at once
        os.write(write, uuid7().bytes[8:])
        os._exit(0)
    os.close(write)
    child_random = os.read(read, 8)
    os.waitpid(pid, 0)
    assert uuid7().bytes[8:] != child_random
