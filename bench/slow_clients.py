#!/usr/bin/env python3
"""Slow and idle clients, from outside (issue #8, part 3): prints what an honest client gets.

    bench/slow_clients.py [BINARY]      (default: target/debug/mailroom)

Starts BINARY on free loopback ports with a config that older builds accept too
(limits.max_connections = 50, command_timeout = 10s, all else default), then:
  * SMTP: 50 connections from 127.0.0.2 trickle "EHLO ..." one byte every 2 s; an honest
    sender from 127.0.0.9 connects at t = 3 s; at t = 15 s, how many trickling ones are open;
  * IMAP: 1,000 connections from 127.0.0.2..21 that never log in; a staff LOGIN + SELECT over
    TLS from 127.0.0.100;
  * HTTP: 3,000 idle connections from 127.0.0.2; a curl from 127.0.0.9.
Needs curl and ~8,192 open files (raises its own limit; the hard limit must allow it).
"""
import json, os, resource, socket, ssl, subprocess, sys, tempfile, threading, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "target", "debug", "mailroom")
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
work = tempfile.mkdtemp(prefix="mr-repro-")
data = os.path.join(work, "data")
cfg = os.path.join(work, "mailroom.toml")
open(cfg, "w").write('''
[server]
hostname = "mx.example.com"
[smtp]
listen = ["127.0.0.1:0"]
[lmtp]
listen = []
[imap]
listen_starttls = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
[http]
listen = ["127.0.0.1:0"]
[limits]
max_connections = 50
command_timeout = "10s"
[mail]
domains = ["example.com"]
[authentication]
verify = "off"
[[queues]]
name = "support"
addresses = ["support@example.com"]
[[roles]]
name = "support-agent"
grants = { support = ["read", "act"] }
''')
server = subprocess.Popen([binary, "serve", "--data-dir", data, "--config", cfg], stdout=open(os.path.join(work, "log"), "w"), stderr=subprocess.STDOUT,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192)))
for _ in range(200):
    if os.path.exists(os.path.join(data, "listeners.json")):
        break
    time.sleep(0.05)
ports = json.load(open(os.path.join(data, "listeners.json")))
addr = lambda name: tuple(ports[name][0].rsplit(":", 1)[0:1]) + (int(ports[name][0].rsplit(":", 1)[1]),)
subprocess.run([binary, "user", "add", "anna", "--role", "support-agent", "--password-stdin", "--data-dir", data, "--config", cfg],
               input=b"correct horse battery\n", check=True, capture_output=True)

def conn(src, a):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(10)
    s.connect(a)
    return s

def line(s):
    b = b""
    while not b.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            return (b.decode() + "<closed>").strip()
        b += c
    return b.decode().strip()

def is_open(s):
    s.setblocking(False)
    try:
        d = s.recv(4096)
        return d != b"" and b"421" not in d and b"BYE" not in d and b"503" not in d
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)

print(f"== {binary}")
# SMTP: 50 connections from one address, one byte every 2 s (command_timeout 10 s).
slow = [conn("127.0.0.2", addr("smtp")) for _ in range(50)]
banners = [line(s) for s in slow]
print(f"smtp: 50 trickling connections from 127.0.0.2: {sum(b.startswith('220') for b in banners)} got 220, refused: {sorted(set(b for b in banners if not b.startswith('220')))}")
stop = False
def trickle():
    i = 0
    msg = b"EHLO a.very.slow.attacker.example.org\r\n"
    while not stop:
        for s in slow:
            try:
                s.send(msg[i % len(msg):i % len(msg) + 1])
            except OSError:
                pass
        i += 1
        time.sleep(2)
threading.Thread(target=trickle, daemon=True).start()
time.sleep(3)
t = time.time()
h = conn("127.0.0.9", addr("smtp"))
b = line(h)
if b.startswith("220"):
    h.sendall(b"EHLO honest.example.org\r\n")
    r = line(h)
    print(f"smtp: honest sender from 127.0.0.9 at t=3s: {b!r}, EHLO -> {r[:30]!r} in {time.time()-t:.2f}s")
else:
    print(f"smtp: honest sender from 127.0.0.9 at t=3s: {b!r}")
time.sleep(12)
print(f"smtp: at t=15s (command_timeout 10s), trickling connections still open: {sum(is_open(s) for s in slow)} of {sum(b.startswith('220') for b in banners)}")
stop = True

# IMAP: 1000 idle connections from 20 addresses that never log in, then a staff login.
idle = []
for n in range(2, 22):
    for _ in range(50):
        try:
            idle.append(conn(f"127.0.0.{n}", addr("imap")))
        except OSError as e:
            print("imap connect failed", e)
time.sleep(1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = time.time()
raw = conn("127.0.0.100", addr("imaps"))
s = ctx.wrap_socket(raw)
g = line(s)
result = g
if g.startswith("* OK"):
    s.sendall(b'a1 LOGIN anna "correct horse battery"\r\n')
    while not (l := line(s)).startswith("a1 "):
        pass
    s.sendall(b"a2 SELECT support\r\n")
    while not (m := line(s)).startswith("a2 ") and not m.endswith("<closed>"):
        pass
    result = f"{l[:20]!r}, {m[:20]!r}"
print(f"imap: 1000 idle pre-login connections from 20 addresses held: {sum(is_open(c) for c in idle)}; staff login+SELECT from 127.0.0.100: {result} in {time.time()-t:.2f}s")
for c in idle:
    c.close()

# HTTP: 3000 idle connections from one address.
hs = []
for _ in range(3000):
    try:
        hs.append(conn("127.0.0.2", addr("http")))
    except OSError as e:
        print("http connect failed:", e)
        break
time.sleep(1)
print(f"http: 3000 idle connections from 127.0.0.2: {sum(is_open(c) for c in hs)} held")
t = time.time()
out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.9", f"http://{ports['http'][0]}/api/openapi.json"], capture_output=True, text=True)
print(f"http: curl from 127.0.0.9: {out.stdout} in {time.time()-t:.2f}s")
server.terminate()
server.wait(30)
