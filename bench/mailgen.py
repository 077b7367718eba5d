#!/usr/bin/env python3
"""A load generator like Postfix's smtp-source, sending realistic mail (PRODUCT.md's benchmark
load): multipart/mixed with a text part, its HTML alternative and a base64 attachment of random
(incompressible) bytes, about --size bytes in all, every message with its own Message-ID. Takes
smtp-source's options, so bench/pg.py swaps one for the other:

    mailgen.py -s SESSIONS -l SIZE -m MESSAGES -M HELO -f FROM -t TO HOST:PORT

One message per connection (banner, HELO, MAIL, RCPT, DATA, QUIT), no pipelining, like
smtp-source without -d. Exits 1 at the first reply it does not expect, as smtp-source does.
smtp-source's own payload (lines of X) compresses ~50x, which flatters a store that compresses.
The text part carries one line of X so the bench can find the message it reads back, and check
that no file holds it in clear.
"""

import argparse
import asyncio
import base64
import os
import random
import sys
import time

WORDS = ("the order invoice delivery account refund please thanks regarding your our we you "
         "number customer support request issue since yesterday still not received payment "
         "attached document kind regards hello could would update status problem contract").split()
VARIANTS = 32  # distinct bodies; each message still differs in Message-ID, Date and Subject


def text_lines(rng, n):
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))).capitalize() + "." for _ in range(n)]


def body(rng, size):
    """Everything after the per-message headers, CRLF line ends, no line starting with '.'."""
    text = text_lines(rng, 10) + ["", "X" * 72, "", "-- ", "Customer Name"]
    html = ["<html><body>"] + [f"<p>{line}</p>" for line in text[:10]] + ["</body></html>"]
    head_len = 600 + sum(len(l) + 2 for l in text + html)
    raw = os.urandom(max(300, (size - head_len) * 3 // 4))  # base64 grows 4/3
    b64 = base64.encodebytes(raw).decode().replace("\n", "\r\n")
    parts = ["MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="mix"', "",
             "--mix", 'Content-Type: multipart/alternative; boundary="alt"', "",
             "--alt", "Content-Type: text/plain; charset=utf-8", "", *text, "",
             "--alt", "Content-Type: text/html; charset=utf-8", "", *html, "",
             "--alt--", "",
             "--mix", 'Content-Type: application/pdf; name="document.pdf"', "Content-Transfer-Encoding: base64",
             'Content-Disposition: attachment; filename="document.pdf"', ""]
    return ("\r\n".join(parts) + "\r\n" + b64 + "--mix--\r\n").encode()


class Failed(Exception):
    pass


class Session(asyncio.Protocol):
    """One connection, one message: a state machine on the replies (asyncio streams cost about
    twice the CPU per message, which a load generator sharing the server's cores cannot afford)."""

    def __init__(self, commands, done):
        self.commands = commands  # [(bytes to send after the reply, expected reply code)]
        self.step = 0
        self.buffer = b""
        self.done = done

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if len(line) >= 4 and line[3:4] == b"-":
                continue  # a multi-line reply goes on
            send, expect = self.commands[self.step]
            if not line.startswith(expect):
                self.finish(Failed(f"expected {expect.decode()}, got {line.decode('utf-8', 'replace').strip()[:200]}"))
                return
            self.step += 1
            if send is None:
                self.finish(None)
                return
            self.transport.write(send)

    def connection_lost(self, exc):
        self.finish(exc or Failed("connection closed early") if self.step < len(self.commands) else None)

    def finish(self, error):
        if not self.done.done():
            if error:
                self.done.set_exception(error)
            else:
                self.done.set_result(None)
        self.transport.close()


async def run(args):
    host, port = args.target.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    rng = random.Random()
    bodies = [body(rng, args.l) for _ in range(VARIANTS)]
    prefix = f"{os.getpid():x}.{int(time.time() * 1000):x}.{rng.getrandbits(32):08x}"
    envelope = [(f"HELO {args.M}\r\n".encode(), b"220"), (f"MAIL FROM:<{args.f}>\r\n".encode(), b"250"),
                (f"RCPT TO:<{args.t}>\r\n".encode(), b"250"), (b"DATA\r\n", b"250")]
    counter = iter(range(args.m))

    async def worker():
        for i in counter:
            date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
            headers = (f"From: <{args.f}>\r\nTo: <{args.t}>\r\nDate: {date}\r\n"
                       f"Message-ID: <{prefix}.{i}@{args.M}>\r\nSubject: Question about order {i}\r\n")
            message = headers.encode() + bodies[i % VARIANTS] + b".\r\n"
            done = loop.create_future()
            commands = envelope + [(message, b"354"), (b"QUIT\r\n", b"250"), (None, b"221")]
            await loop.create_connection(lambda: Session(commands, done), host, int(port))
            await done

    await asyncio.gather(*(worker() for _ in range(min(args.s, args.m))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-s", type=int, default=1, help="parallel sessions")
    ap.add_argument("-l", type=int, default=10240, help="approximate message size in bytes")
    ap.add_argument("-m", type=int, default=1, help="messages")
    ap.add_argument("-M", default="client.example.org", help="HELO name")
    ap.add_argument("-f", default="sender@example.org")
    ap.add_argument("-t", default="support@example.com")
    ap.add_argument("target", help="HOST:PORT")
    args = ap.parse_args()
    try:
        asyncio.run(run(args))
    except (Failed, OSError) as e:
        print(f"mailgen: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
