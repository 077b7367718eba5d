"""Helpers shared by the real-client tests (driven by tests/python_clients.rs).

Environment (set by the Rust driver):
  MAILROOM_HOST       127.0.0.1
  MAILROOM_SMTP_PORT  SMTP port of the running server
  MAILROOM_LMTP_PORT  LMTP port of the running server
  MAILROOM_TEST_OUT   directory where expected message contents are written as NUMBER.bin;
                      the driver compares them with `mailroom message show NUMBER`.

Output protocol (stdout lines the driver understands):
  REGISTERED <number> <token> [tls]   a message acknowledged with this number
  UNNUMBERED <token>                  a message sent without seeing its number (sendmail)
  EXPECT_TOTAL <n>                    exactly n messages must be stored
"""
import os
import socket
import ssl
import sys

HOST = os.environ.get("MAILROOM_HOST", "127.0.0.1")
SMTP_PORT = int(os.environ["MAILROOM_SMTP_PORT"])
LMTP_PORT = int(os.environ["MAILROOM_LMTP_PORT"])
OUT = os.environ.get("MAILROOM_TEST_OUT")
SERVER_NAME = "mx.example.com"
NUMBER_PREFIX = "MR-"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def check_eq(got, want, what):
    if got != want:
        fail(f"{what}: expected {want!r}, got {got!r}")


def number_from(text, prefix="2.0.0 Registered "):
    """'2.0.0 Registered MR-2026-000001-6' -> number (text may be bytes)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    check(text.startswith(prefix), f"expected {prefix!r}..., got {text!r}")
    number = text[len(prefix):]
    check(number.startswith(NUMBER_PREFIX) and " " not in number, f"bad registration number in {text!r}")
    return number


def registered(number, token, content=None, tls=False):
    print(f"REGISTERED {number} {token}" + (" tls" if tls else ""), flush=True)
    if content is not None and OUT:
        with open(os.path.join(OUT, number + ".bin"), "wb") as f:
            f.write(content)


def unnumbered(token):
    print(f"UNNUMBERED {token}", flush=True)


def expect_total(n):
    print(f"EXPECT_TOTAL {n}", flush=True)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def token(tag):
    return f"py-{tag}-{os.getpid()}-{os.urandom(6).hex()}"


def message(tok, body="Hello from Python.\r\n", extra_headers=""):
    return (
        f"From: Py Client <py@client.example.org>\r\n"
        f"To: support@example.com\r\n"
        f"Subject: {tok}\r\n"
        f"Message-ID: <{tok}@client.example.org>\r\n"
        f"{extra_headers}"
        f"\r\n"
        f"{body}"
    ).encode("utf-8")


class Raw:
    """Raw socket client: exact bytes out, (multi-line) replies in."""

    def __init__(self, port, banner):
        self.sock = socket.create_connection((HOST, port), timeout=15)
        self.buf = b""
        code, lines = self.reply()
        check_eq(lines, [f"220 {SERVER_NAME} {banner} mailroom"], "banner")

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                fail(f"connection closed while waiting for a reply (buffer {self.buf!r})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        check(raw.endswith(b"\r"), f"reply line not CRLF-terminated: {raw!r}")
        return raw[:-1].decode("utf-8")

    def reply(self):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3] == " ":
                return int(l[:3]), lines

    def expect(self, want):
        code, lines = self.reply()
        check_eq(lines, [want], "reply")
        return lines[0]

    def cmd(self, c, want):
        self.send(c.encode("utf-8") + b"\r\n")
        return self.expect(want)

    def close(self):
        self.sock.close()


def dot_stuff(content):
    """content (bytes, CRLF lines) -> DATA wire bytes incl. terminator."""
    out = []
    for line in content.split(b"\r\n")[:-1] if content.endswith(b"\r\n") else content.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out) + b"\r\n.\r\n"
