#!/usr/bin/env python3
"""An independent permessage-deflate peer for crest: Python's `websockets`
(zlib underneath), driven against our servers and clients.

    deflate_peer.py client -- CMD... {addr}   # start our server on {addr}, talk to it
    deflate_peer.py server -- CMD... {url}    # serve cases, run our client against {url}

`client` starts the command (an echo server listening on {addr}, a free
127.0.0.1 port), connects with several permessage-deflate offers and checks
that every message comes back intact.

`server` serves the three paths of an Autobahn fuzzingserver that our
`autobahn_client` example uses (getCaseCount, runCase, updateReports): each
case sends one message and expects it echoed. It runs the command once per
server configuration.

Both fail unless permessage-deflate was negotiated on every echo connection
and compressed frames (RSV1) went both ways. Run by scripts/deflate-peer.sh,
which installs `websockets` into a virtualenv. Every wait is bounded; the
child runs in its own session and is stopped by its PID.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions import permessage_deflate as pmd

HOST = "127.0.0.1"
TIMEOUT = 60

# Frames seen by the peer's own extension, with RSV1 set.
RSV1 = {"received": 0, "sent": 0}
_decode, _encode = pmd.PerMessageDeflate.decode, pmd.PerMessageDeflate.encode


def _counting_decode(self, frame, *, max_size=None):
    if frame.rsv1:
        RSV1["received"] += 1
    return _decode(self, frame, max_size=max_size)


def _counting_encode(self, frame):
    frame = _encode(self, frame)
    if frame.rsv1:
        RSV1["sent"] += 1
    return frame


pmd.PerMessageDeflate.decode = _counting_decode
pmd.PerMessageDeflate.encode = _counting_encode


def log(msg):
    print("deflate-peer: %s" % msg, flush=True)


def json_text(n):
    return ",".join('{"id":%d,"name":"user%d","active":%s}' % (i, i * 7919 % 1000, "true" if i % 3 else "false")
                    for i in range(n))


# (name, message): text, binary, a list means a fragmented message.
MESSAGES = [
    ("1 KiB JSON", json_text(20)[:1024]),
    ("64 KiB text", (json_text(2000) * 2)[:65536]),
    ("short text, below crest's threshold", "hi"),
    ("empty text", ""),
    ("non-ASCII text", "Grüße, 世界 " * 200),
    ("256 KiB binary", bytes(range(256)) * 1024),
    ("fragmented text", ["fragment %d; " % i * 50 for i in range(5)]),
]

# Client offers: (name, factory).
OFFERS = [
    ("websockets default (window bits 12)", pmd.ClientPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5})),
    ("no context takeover both ways, window bits 9", pmd.ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=9, client_max_window_bits=9)),
    ("server window bits 8 (crest sends stored blocks)", pmd.ClientPerMessageDeflateFactory(
        server_max_window_bits=8, client_max_window_bits=True)),
    ("plain offer", pmd.ClientPerMessageDeflateFactory()),
]

# Server configurations for our client.
SERVERS = [
    ("websockets default (window bits 12)", pmd.ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5})),
    ("no context takeover both ways, client window bits 9", pmd.ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True, client_max_window_bits=9)),
]


def expected(message):
    return "".join(message) if isinstance(message, list) else message


def negotiated(headers):
    value = headers.get("Sec-WebSocket-Extensions", "")
    if "permessage-deflate" not in value:
        raise AssertionError("permessage-deflate not negotiated (Sec-WebSocket-Extensions: %r)" % value)
    return value


# ----- processes -----


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(argv):
    log("starting: %s" % " ".join(argv))
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)


def stop(child):
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def wait_listening(port, child):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("testee exited with %s before listening" % child.returncode)
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("testee did not listen on port %d within 30 s" % port)


# ----- client mode: we connect to crest -----


async def talk(url):
    for name, factory in OFFERS:
        async with connect(url, extensions=[factory], compression=None, max_size=None,
                           open_timeout=TIMEOUT, close_timeout=5) as ws:
            answer = negotiated(ws.response.headers)
            for what, message in MESSAGES:
                await asyncio.wait_for(ws.send(message), TIMEOUT)
                echo = await asyncio.wait_for(ws.recv(), TIMEOUT)
                if echo != expected(message):
                    raise AssertionError("%s / %s: echo differs (%d bytes back)" % (name, what, len(echo)))
        log("ok: offer %r -> %r, %d messages echoed" % (name, answer, len(MESSAGES)))


def client_mode(argv):
    port = free_port()
    child = start([a.replace("{addr}", "%s:%d" % (HOST, port)) for a in argv])
    try:
        wait_listening(port, child)
        asyncio.run(asyncio.wait_for(talk("ws://%s:%d/" % (HOST, port)), 4 * TIMEOUT))
    finally:
        stop(child)


# ----- server mode: crest connects to us -----


class Cases:
    def __init__(self):
        self.done = []
        self.failures = []
        self.reported = False

    async def handler(self, ws):
        url = urllib.parse.urlsplit(ws.request.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/getCaseCount":
            await ws.send(str(len(MESSAGES)))
        elif url.path == "/runCase":
            index = int(query["case"][0]) - 1
            what, message = MESSAGES[index]
            try:
                negotiated(ws.response.headers)
                await ws.send(message)
                echo = await asyncio.wait_for(ws.recv(), TIMEOUT)
                if echo != expected(message):
                    raise AssertionError("echo differs (%d bytes back)" % len(echo))
                self.done.append(what)
            except Exception as e:  # noqa: BLE001 - reported below
                self.failures.append("%s: %r" % (what, e))
        elif url.path == "/updateReports":
            self.reported = True
        await ws.close()


async def serve_cases(argv, factory):
    cases = Cases()
    port = free_port()
    async with serve(cases.handler, HOST, port, extensions=[factory], compression=None, max_size=None):
        url = "ws://%s:%d" % (HOST, port)
        child = await asyncio.create_subprocess_exec(
            *[a.replace("{url}", url) for a in argv], stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = await asyncio.wait_for(child.wait(), 4 * TIMEOUT)
        finally:
            if child.returncode is None:
                os.killpg(child.pid, signal.SIGKILL)
                await child.wait()
    if code != 0:
        cases.failures.append("client exited with %s" % code)
    if not cases.reported:
        cases.failures.append("client never asked for updateReports")
    if len(cases.done) != len(MESSAGES):
        cases.failures.append("%d of %d cases echoed" % (len(cases.done), len(MESSAGES)))
    return cases


def server_mode(argv):
    for name, factory in SERVERS:
        cases = asyncio.run(serve_cases(argv, factory))
        if cases.failures:
            raise AssertionError("server %r: %s" % (name, "; ".join(cases.failures)))
        log("ok: server %r, %d cases echoed by our client" % (name, len(cases.done)))


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("client", "server") or sys.argv[2] != "--":
        sys.exit(__doc__)
    mode, argv = sys.argv[1], sys.argv[3:]
    log("websockets %s" % websockets.__version__)
    try:
        (client_mode if mode == "client" else server_mode)(argv)
        if RSV1["received"] == 0 or RSV1["sent"] == 0:
            raise AssertionError("compressed frames: %r; expected both ways" % RSV1)
    except Exception as e:  # noqa: BLE001 - one line, exit 1
        log("FAILED: %s" % e)
        sys.exit(1)
    log("passed: %d compressed frames received, %d sent" % (RSV1["received"], RSV1["sent"]))


if __name__ == "__main__":
    main()
