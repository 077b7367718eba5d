"""Shared pieces of the IMAP benchmarks (bench/imap_big.py, bench/imap_idle.py): a release server
on free loopback ports with a staff user, a tiny streaming IMAP client, RSS sampling.

Standard library only.
"""
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (config rewriting: every listener on a free loopback port)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "bench password 12345"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """`mailroom serve` (release) on deploy/mailroom.toml with every listener moved to a free
    port, `imap_limit` IMAP sessions allowed from 127.0.0.1, and user anna (support-agent)."""

    def __init__(self, binary, imap_limit=1000, nofile=4096, data_root=None):
        self.binary = binary
        self.work = tempfile.mkdtemp(prefix="mailroom-imapbench-", dir=data_root)
        self.data = os.path.join(self.work, "data")
        self.config = os.path.join(self.work, "mailroom.toml")
        ports = bench.make_config(os.path.join(REPO, "deploy", "mailroom.toml"), self.config)
        self.smtp_port = ports["smtp"][0]
        self.imaps_port = ports["imap"][1]
        with open(self.config) as f:
            text = f.read()
        text = re.sub(r"(?m)^max_connections = 1000 +# IMAP.*$", f"max_connections = {imap_limit}", text)
        text = re.sub(r"(?m)^max_connections_per_source = 50 .*$", f"max_connections_per_source = {imap_limit}", text)
        text = re.sub(r"(?m)^max_unauthenticated = 100 .*$", "max_unauthenticated = 1000", text)
        # All sessions come from 127.0.0.1: no share kept for other addresses.
        text = re.sub(r"(?m)^reserved_percent = .*$", "reserved_percent = 0", text)
        # A login in progress counts as a failure until its password is checked, per source:
        # logins several at a time from one address would otherwise lock it out.
        text = re.sub(r"(?m)^max_failures = \d+", "max_failures = 1000", text)
        with open(self.config, "w") as f:
            f.write(text)
        self.log = open(os.path.join(self.work, "server.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", "--data-dir", self.data, "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
        for _ in range(400):
            if os.path.exists(os.path.join(self.data, "listeners.json")):
                break
            time.sleep(0.05)
        else:
            sys.exit("server did not start: see " + self.log.name)
        self.cli(["user", "add", "anna", "--password-stdin", "--role", "support-agent"], PASSWORD + "\n")

    def cli(self, args, stdin=""):
        out = subprocess.run([self.binary, *args, "--data-dir", self.data, "--config", self.config], input=stdin.encode(),
                             capture_output=True)
        if out.returncode != 0:
            sys.exit(f"mailroom {' '.join(args)}: {out.stderr.decode()}")
        return out.stdout.decode()

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def stop(self, keep=False):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Imap:
    """IMAP over implicit TLS; `command` streams the response, counting untagged lines instead of
    keeping them (a 1,000,000-line FETCH)."""

    def __init__(self, port, ctx=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock = (ctx or tls_context()).wrap_socket(raw)
        self.buf = b""
        self.tag = 0
        greeting = self.line()
        assert greeting.startswith(b"* OK"), greeting

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def command(self, text, keep=10):
        """(status line, number of untagged lines, the first `keep` of them)."""
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        n, kept = 0, []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:].decode(), n, kept
            n += 1
            if len(kept) < keep:
                kept.append(line.decode(errors="replace"))

    def login(self, user="anna"):
        status, _, _ = self.command(f'LOGIN {user} "{PASSWORD}"')
        assert status.startswith("OK"), status
        return self


class RssPeak:
    """The highest RSS of `pid` while the block runs (sampled every 20 ms)."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))


def fill(smtp_port, n, sessions=32, size=300):
    """`n` messages to support@example.com with Postfix's smtp-source, in runs of 200,000."""
    smtp_source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    while n > 0:
        chunk = min(n, 200_000)
        out = subprocess.run([smtp_source, "-s", str(sessions), "-l", str(size), "-m", str(chunk), "-M", "bench.example.org",
                              "-f", "kim@customer.example", "-t", "support@example.com", f"127.0.0.1:{smtp_port}"],
                             capture_output=True)
        if out.returncode != 0:
            sys.exit("smtp-source failed: " + out.stderr.decode()[:300])
        n -= chunk
