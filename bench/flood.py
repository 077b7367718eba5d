#!/usr/bin/env python3
"""Memory flood (issue #13): many concurrent sessions each sending a large message.

    bench/flood.py [--no-size] [--sessions 300] [--size-mb 10] [--budget-mib 256] [BINARY]
                   (default BINARY: target/release/mailroom; build it with
                    CARGO_INCREMENTAL=0 cargo build --release)

Starts BINARY on a fresh data dir with the server's defaults (limits.message_memory = 256 MiB,
max_message_size = 25 MiB), except max_connections_per_source (all sessions come from
127.0.0.1). SESSIONS threads each connect at once and send one message of SIZE MB: headers with
a distinct Message-ID and a random (incompressible) base64 attachment, generated while it is
sent, declaring SIZE= as Postfix and smtplib do (--no-size: without it, so the server learns the
size only as the data arrives; results then go to bench/results/flood-nosize.md). A 4xx (452 4.3.1 at MAIL,
at DATA or after the data, 421) is retried like an MTA would after a short pause (1-3 s, at most --max-attempts); a 5xx
or a dropped connection counts as a failure. The server's RSS (VmRSS every 20 ms, and VmHWM) is
sampled throughout. Prints peak RSS beside the stated bound (baseline + budget + slack), the
count of 250s and 4xx, the total time; checks that `message list --json` has exactly the
numbers answered 250 and that three of them decrypt to the bytes sent; writes the results
file. Exit status 1 when a check fails or the bound is exceeded.
"""
import argparse, base64, hashlib, json, os, random, resource, socket, subprocess, sys, tempfile, threading, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024
# Budget bytes per message byte (smtp::memory::FACTOR): what the config check and reservations use.
FACTOR = 4
# On top of the budget: the writer's SQLite page cache (cache_size = 64 MiB, filled by the first
# large messages and kept), plus 64 MiB for each session's buffers and task (a few tens of KiB
# each), thread stacks and allocator slack (glibc keeps freed blocks in per-thread arenas).
SLACK_MIB = 128

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("binary", nargs="?", default=os.path.join(REPO, "target", "release", "mailroom"))
ap.add_argument("--sessions", type=int, default=300)
ap.add_argument("--size-mb", type=float, default=10.0, help="message size in MB (10^6 bytes)")
ap.add_argument("--budget-mib", type=int, default=256, help="limits.message_memory in MiB")
ap.add_argument("--max-message-mib", type=int, default=25, help="limits.max_message_size in MiB (message_memory must be at least 4×)")
ap.add_argument("--max-attempts", type=int, default=500, help="tries per message before giving up")
ap.add_argument("--no-size", action="store_true", help="do not declare SIZE= at MAIL")
ap.add_argument("--out", default=None, help="default: bench/results/flood.md (flood-nosize.md with --no-size)")
args = ap.parse_args()
if args.out is None:
    args.out = os.path.join(REPO, "bench", "results", "flood-nosize.md" if args.no_size else "flood.md")

resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
work = tempfile.mkdtemp(prefix="mr-flood-", dir=os.path.join(REPO, "target"))
data = os.path.join(work, "data")
cfg = os.path.join(work, "mailroom.toml")
size = int(args.size_mb * 1_000_000)
budget = args.budget_mib * MIB
open(cfg, "w").write(f'''
[server]
hostname = "mx.example.com"
[smtp]
listen = ["127.0.0.1:0"]
[lmtp]
listen = []
[imap]
listen_starttls = []
listen_tls = []
[http]
listen = []
[limits]
max_connections_per_source = {args.sessions + 10}
message_memory = {budget}
max_message_size = {args.max_message_mib * MIB}
[mail]
domains = ["example.com"]
[authentication]
verify = "off"
[[queues]]
name = "support"
addresses = ["support@example.com"]
''')
server = subprocess.Popen([args.binary, "serve", "--data-dir", data, "--config", cfg], stdout=open(os.path.join(work, "log"), "w"),
                          stderr=subprocess.STDOUT)
for _ in range(400):
    if os.path.exists(os.path.join(data, "listeners.json")) or server.poll() is not None:
        break
    time.sleep(0.05)
if server.poll() is not None:
    sys.exit(f"the server did not start: {open(os.path.join(work, 'log')).read()}")
ports = json.load(open(os.path.join(data, "listeners.json")))
host, port = ports["smtp"][0].rsplit(":", 1)
addr = (host, int(port))


def status(field):
    for line in open(f"/proc/{server.pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


time.sleep(1.0)
baseline = status("VmRSS:")
peak_sampled = baseline
sampling = True


def sample():
    global peak_sampled
    while sampling:
        peak_sampled = max(peak_sampled, status("VmRSS:"))
        time.sleep(0.02)


class Session:
    def __init__(self):
        self.sock = socket.create_connection(addr, timeout=600)
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed by the server")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines[-1]

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()


def message_chunks(i, attempt_seed):
    """The message, in pieces, as sent on the wire (no line starts with '.', so no stuffing)."""
    boundary = f"b{i:04d}"
    head = (f"From: flood{i}@client.example.org\r\nTo: support@example.com\r\nSubject: flood {i}\r\n"
            f"Message-ID: <flood-{i}-{attempt_seed}@client.example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n"
            f"Content-Type: text/plain\r\n\r\nAttachment follows.\r\n--{boundary}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename=\"blob{i}.bin\"\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    yield head
    left = size - len(head) - len(tail)
    while left > 0:
        # 1,000 lines of 76 base64 characters + CRLF = 78,000 bytes.
        lines = min(1000, max(1, left // 78))
        raw = base64.b64encode(os.urandom(57 * lines))
        piece = b"\r\n".join(raw[k:k + 76] for k in range(0, len(raw), 76)) + b"\r\n"
        piece = piece[:left] if len(piece) > left else piece
        left -= len(piece)
        yield piece
    yield tail


results = [None] * args.sessions  # per session: (number, sha256, bytes) or ("FAIL", why)
counts = {"250": 0, "452 at MAIL": 0, "452 at DATA": 0, "452 after data": 0, "421": 0, "other 4xx": 0}
count_lock = threading.Lock()


def count(key):
    with count_lock:
        counts[key] = counts.get(key, 0) + 1


def send(i):
    rng = random.Random(i)
    for attempt in range(args.max_attempts):
        try:
            s = Session()
            code, line = s.reply()
            if code == 421:
                count("421")
                s.sock.close()
                time.sleep(rng.uniform(1, 3))
                continue
            code, line = s.cmd("EHLO flood.client.example.org")
            mail = "MAIL FROM:<flood@client.example.org>" + ("" if args.no_size else f" SIZE={size}")
            code, line = s.cmd(mail)
            if code == 452:
                count("452 at MAIL")
                s.cmd("QUIT")
                s.sock.close()
                time.sleep(rng.uniform(1, 3))
                continue
            if code != 250:
                results[i] = ("FAIL", f"MAIL: {line}")
                return
            code, line = s.cmd("RCPT TO:<support@example.com>")
            code, line = s.cmd("DATA") if code == 250 else (code, line)
            if code == 452 and line.startswith("452 4.3.1"):
                count("452 at DATA")
                s.cmd("QUIT")
                s.sock.close()
                time.sleep(rng.uniform(1, 3))
                continue
            if code != 354:
                results[i] = ("FAIL", f"RCPT/DATA: {line}")
                return
            digest, sent = hashlib.sha256(), 0
            for piece in message_chunks(i, attempt):
                digest.update(piece)
                sent += len(piece)
                s.sock.sendall(piece)
            s.sock.sendall(b".\r\n")
            code, line = s.reply()
            if code == 250:
                count("250")
                results[i] = (line.split()[-1], digest.hexdigest(), sent)
                s.cmd("QUIT")
                s.sock.close()
                return
            if code // 100 == 4:
                count("452 after data" if line.startswith("452 4.3.1") else "other 4xx")
                s.cmd("QUIT")
                s.sock.close()
                time.sleep(rng.uniform(1, 3))
                continue
            results[i] = ("FAIL", f"end of data: {line}")
            return
        except (OSError, ConnectionError) as e:
            results[i] = ("FAIL", f"connection: {e}")
            return
    results[i] = ("FAIL", f"no 250 after {args.max_attempts} attempts")


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
started = time.monotonic()
threads = [threading.Thread(target=send, args=(i,)) for i in range(args.sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - started
sampling = False
sampler.join()
hwm = status("VmHWM:")
peak = max(peak_sampled, hwm)

# Every 250 is stored, and nothing else.
failures = [r[1] for r in results if r is None or r[0] == "FAIL"]
numbers = {r[0]: r for r in results if r is not None and r[0] != "FAIL"}
listing = subprocess.run([args.binary, "message", "list", "--json", "--data-dir", data, "--config", cfg], capture_output=True, check=True)
listed = {json.loads(line)["number"] for line in listing.stdout.decode().splitlines() if line.strip()}
problems = list(failures)
if listed != set(numbers):
    problems.append(f"listed {len(listed)} messages, answered 250 for {len(numbers)} (only listed: {sorted(listed - set(numbers))[:5]}, "
                    f"only answered: {sorted(set(numbers) - listed)[:5]})")
for number in sorted(numbers)[:3]:
    shown = subprocess.run([args.binary, "message", "show", number, "--data-dir", data, "--config", cfg], capture_output=True, check=True).stdout
    _, sha, sent = numbers[number]
    if hashlib.sha256(shown[-sent:]).hexdigest() != sha:
        problems.append(f"{number}: the stored message is not the one sent")
server.terminate()
server.wait(timeout=60)

bound = baseline + budget + SLACK_MIB * MIB
without = args.sessions * size
ok = not problems and peak <= bound
mode = "without SIZE=" if args.no_size else "SIZE= declared"
rows = [
    ("sessions × message size", f"{args.sessions} × {size / 1e6:.1f} MB ({without / MIB:,.0f} MiB in all), {mode}"),
    ("limits.message_memory", f"{args.budget_mib} MiB (each message byte counts {FACTOR}×: {budget // (FACTOR * size)} messages of this size at once)"),
    ("server RSS before the flood", f"{baseline / MIB:.0f} MiB"),
    ("**peak RSS** (max of VmRSS every 20 ms and VmHWM)", f"**{peak / MIB:.0f} MiB**"),
    ("stated bound: baseline + message_memory + {SLACK_MIB} MiB (64 writer page cache + 64 slack)".format(SLACK_MIB=SLACK_MIB), f"{bound / MIB:.0f} MiB: {'PASS' if peak <= bound else 'FAIL'}"),
    ("replies", ", ".join(f"{k}: {v}" for k, v in counts.items())),
    ("stored (message list --json) / answered 250", f"{len(listed)} / {len(numbers)}"),
    ("failures (5xx, dropped connection, gave up)", str(len(failures))),
    ("total time until every message was stored", f"{elapsed:.1f} s ({len(numbers) * size / elapsed / 1e6:.1f} MB/s)"),
]
table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
load = open("/proc/loadavg").read().split()[:3]
text = (f"# Memory flood\n\n`bench/flood.py{' --no-size' if args.no_size else ''}` ({os.path.basename(args.binary)}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average after {' '.join(load)}; "
        f"{os.cpu_count()} CPUs)\n\n{table}\n\n" + ("".join(f"- problem: {p}\n" for p in problems[:10]) if problems else "All checks passed.\n"))
print(text)
if os.path.dirname(args.out):
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
open(args.out, "w").write(text)
sys.exit(0 if ok else 1)
