#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/corpus/<target>/.

Run from anywhere: `python3 fuzz/seeds.py`. It rewrites only the files named
here; other files in the corpus directories (inputs kept from fuzzing runs,
such as the `roundtrip` seeds, which are `arbitrary`-encoded) are left alone.
The stream targets' inputs start with two bytes, [flags][chunk seed]; see
`crest_fuzz::flags` in src/lib.rs.
"""

import base64
import hashlib
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# RFC 6455 §1.3.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = base64.b64encode(
    hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
).decode()
assert ACCEPT == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# Flags (crest_fuzz::flags).
EOF, BYTES, EXTENSION, NO_AUTO_PONG, TINY = 0x01, 0x02, 0x04, 0x08, 0x80


def chunk(log2):
    """Flag bits for chunks of at most 2**log2 bytes."""
    return (log2 & 7) << 4


def frame(opcode, payload=b"", fin=True, rsv=0, mask=None):
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    m = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes([m | n])
    elif n <= 0xFFFF:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask is not None:
        head += bytes(mask)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def client(opcode, payload=b"", fin=True, rsv=0):
    """A masked frame, as a client sends it."""
    return frame(opcode, payload, fin, rsv, mask=[0x37, 0xFA, 0x21, 0x3D])


def close_body(code, reason=b""):
    return struct.pack(">H", code) + reason


def msg(data):
    """One message of the `inflate` target: [len: u16 LE][bytes]."""
    return struct.pack("<H", len(data)) + data


def zeros_bomb(n):
    """`n` zero bytes as raw deflate data, sync-flushed, tail stripped."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(bytes(n)) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def rle(data):
    """x-fuzz's run-length coding: (count, byte) pairs."""
    out = b""
    for b in data:
        out += bytes([1, b])
    return out


REQUEST = (
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
).encode()
REQUEST_EXT = REQUEST.replace(
    b"Sec-WebSocket-Version: 13\r\n", b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: x-fuzz\r\n"
)
MINIMAL = (
    "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
PLAIN = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"

RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {ACCEPT}\r\n"
    "Sec-WebSocket-Protocol: chat\r\n\r\n"
).encode()
RESPONSE_BARE = RESPONSE.replace(b"Sec-WebSocket-Protocol: chat\r\n", b"")
RESPONSE_EXT = RESPONSE.replace(
    b"Sec-WebSocket-Protocol: chat\r\n", b"Sec-WebSocket-Extensions: x-fuzz\r\n"
)

# RFC 6455 §5.7 examples.
RFC_UNMASKED_HELLO = bytes([0x81, 0x05]) + b"Hello"
RFC_MASKED_HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
RFC_HEL = bytes([0x01, 0x03]) + b"Hel"
RFC_LO = bytes([0x80, 0x02]) + b"lo"
RFC_PING = bytes([0x89, 0x05]) + b"Hello"
RFC_MASKED_PONG = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
RFC_256 = bytes([0x82, 0x7E, 0x01, 0x00])
RFC_64K = bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])

SEEDS = {
    "frame_decode": {
        "rfc-unmasked-hello": RFC_UNMASKED_HELLO,
        "rfc-masked-hello": RFC_MASKED_HELLO,
        "rfc-fragment-hel": RFC_HEL,
        "rfc-fragment-lo": RFC_LO,
        "rfc-unmasked-ping": RFC_PING,
        "rfc-masked-pong": RFC_MASKED_PONG,
        "rfc-binary-256": RFC_256 + bytes(256),
        "rfc-binary-64k-header": RFC_64K,
        "masked-64k-header": bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]),
        "close-1000": frame(8, close_body(1000, b"bye")),
        "close-masked-empty": client(8),
        "rsv1-text": frame(1, b"x", rsv=0x40),
        "reserved-opcode-3": bytes([0x83, 0x00]),
        "length-top-bit": bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        "ping-126": bytes([0x89, 0x7E, 0x00, 0x7E]),
        "fragmented-ping": bytes([0x09, 0x00]),
    },
    "server_stream": {
        "request": b"\x00\x00" + REQUEST,
        "request-hello": bytes([chunk(3), 1]) + REQUEST + client(1, b"Hello"),
        "request-fragmented-ping-close": bytes([chunk(2), 2])
        + REQUEST
        + client(1, b"Hel", fin=False)
        + client(9, b"ping")
        + client(0, b"lo", fin=False)
        + client(0, "κόσμε".encode())
        + client(2, bytes(range(200)))
        + client(8, close_body(1000, b"done")),
        "request-bytewise-close": bytes([chunk(0), 0]) + MINIMAL + client(8, close_body(1001)),
        "request-eof": bytes([chunk(4) | EOF | BYTES, 3]) + MINIMAL + client(10, b"pong"),
        "request-extension": bytes([chunk(5) | EXTENSION, 4])
        + REQUEST_EXT
        + client(1, rle(b"compressed"), rsv=0x40)
        + client(2, rle(b"ab"), fin=False, rsv=0x40)
        + client(0, rle(b"cd")),
        "request-too-big": bytes([chunk(6), 5]) + MINIMAL + client(2, bytes(300)),
        "request-64k-announced": bytes([chunk(7), 6])
        + MINIMAL
        + bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]),
        "request-invalid-utf8": bytes([chunk(1), 7]) + MINIMAL + client(1, b"\xce\xba\xff"),
        "request-unmasked": bytes([chunk(3), 8]) + MINIMAL + RFC_UNMASKED_HELLO,
        "request-tiny": bytes([chunk(3) | TINY | NO_AUTO_PONG, 9])
        + MINIMAL
        + client(9, b"p")
        + client(1, b"x" * 17),
        "plain-get": bytes([chunk(3), 10]) + PLAIN,
        "version-8": bytes([chunk(3), 11]) + MINIMAL.replace(b"Version: 13", b"Version: 8"),
    },
    "client_stream": {
        "response": b"\x00\x00" + RESPONSE,
        "response-rfc-frames": bytes([chunk(2), 1])
        + RESPONSE
        + RFC_UNMASKED_HELLO
        + RFC_HEL
        + RFC_PING
        + RFC_LO
        + RFC_256
        + bytes(256),
        "response-close": bytes([chunk(0), 2]) + RESPONSE_BARE + frame(8, close_body(1000, b"bye")),
        "response-close-eof": bytes([chunk(3) | EOF, 3]) + RESPONSE_BARE + frame(8),
        "response-extension": bytes([chunk(4) | EXTENSION | BYTES, 4])
        + RESPONSE_EXT
        + frame(1, rle(b"hello"), rsv=0x40),
        "response-masked-frame": bytes([chunk(3), 5]) + RESPONSE + RFC_MASKED_HELLO,
        "response-tiny": bytes([chunk(3) | TINY, 6]) + RESPONSE_BARE + frame(2, bytes(20)),
        "forbidden": bytes([chunk(3), 7])
        + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    },
    "handshake_request": {
        "rfc-request": REQUEST,
        "minimal": MINIMAL,
        "extensions": REQUEST_EXT.replace(
            b"x-fuzz", b"permessage-deflate; client_max_window_bits, x-fuzz"
        ),
        "plain-get": PLAIN,
        "post-upgrade": MINIMAL.replace(b"GET ", b"POST "),
        "http10": MINIMAL.replace(b"HTTP/1.1", b"HTTP/1.0"),
        "bad-key": MINIMAL.replace(KEY.encode(), b"dGhlIHNhbXBsZQ=="),
        "with-frames": MINIMAL + client(1, b"Hello"),
        "lf-only": MINIMAL.replace(b"\r\n", b"\n"),
    },
    "handshake_response": {
        "rfc-response": RESPONSE,
        "bare": RESPONSE_BARE,
        "extension": RESPONSE_EXT,
        "unoffered-protocol": RESPONSE.replace(b"chat\r\n", b"other\r\n"),
        "wrong-accept": RESPONSE_BARE.replace(ACCEPT.encode(), b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        "forbidden": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        "with-frames": RESPONSE_BARE + RFC_UNMASKED_HELLO + RFC_PING,
    },
    "utf8": {
        "ascii": b"\x00Hello, world",
        "greek-split": b"\x03\x01\x02\x05" + "κόσμε".encode(),
        "mixed": b"\x02\x07\x01" + "€ 𝄞 ascii κόσμε".encode(),
        "surrogate": b"\x01\x02ok\xed\xa0\x80",
        "overlong": b"\x00\xc0\xaf",
        "beyond-max": b"\x01\x01\xf4\x90\x80\x80",
        "incomplete-end": b"\x00abc\xe2\x82",
        "max-code-point": b"\x01\x02\xf4\x8f\xbf\xbf",
    },
    "inflate": {
        # [flags][limit: u16 LE] then messages [len: u16 LE][bytes...]; see src/inflate.rs.
        "rfc-hello-twice": b"\x00\x00\x01" + msg(b"\xf2\x48\xcd\xc9\xc9\x07\x00") + msg(b"\xf2\x00\x11\x00\x00"),
        "rfc-stored-block": b"\x01\x10\x00" + msg(b"\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00"),
        "rfc-bfinal": b"\x00\x10\x00" + msg(b"\xf3\x48\xcd\xc9\xc9\x07\x00\x00") * 2,
        "rfc-two-blocks": b"\x00\x10\x00" + msg(b"\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00"),
        "bomb-over-limit": b"\x00\x00\x04" + msg(zeros_bomb(1 << 16)),
        "garbage": b"\x00\x00\x01" + msg(b"\xff" * 16) + msg(b"\xf2\x48\xcd\xc9\xc9\x07\x00"),
        # Roundtrip mode (bit 1), window 15 (bits 2-4 = 7), level 6 (bits 5-7).
        "roundtrip-text": bytes([0x02 | 7 << 2 | 6 << 5]) + b"\x00\x00" + msg(b"Hello") + msg(b"Hello, Hello" * 20),
        "roundtrip-reset-w9": bytes([0x03 | 1 << 2 | 1 << 5]) + b"\x00\x00" + msg(bytes(range(256)) * 4) + msg(b""),
        "roundtrip-w8-stored": bytes([0x02 | 0 << 2 | 6 << 5]) + b"\x00\x00" + msg(b"abcabcabc" * 50),
    },
    "mask": {
        # [key: 4][offset: 8][cut: 2][payload...]
        "rfc-hello": bytes([0x37, 0xFA, 0x21, 0x3D]) + bytes(8) + b"\x00\x02" + b"Hello",
        "long-offset-3": bytes([1, 2, 3, 4]) + bytes([3] + [0] * 7) + b"\x00\x21" + bytes(range(100)),
    },
}


def main():
    for target, seeds in SEEDS.items():
        d = os.path.join(ROOT, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
