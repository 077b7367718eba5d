#!/usr/bin/env python3
"""Idle-connection benchmark: how much memory mailroom needs per open, idle SMTP session.

Target (PRODUCT.md): 10,000 concurrent idle SMTP connections in under 1 GiB.

Starts the release binary on free loopback ports (config = deploy/mailroom.toml with
max_connections set to N, and N per source address with no reserved share, since every
connection comes from 127.0.0.1), opens N connections that each read the 220 banner and send EHLO
(so every session is fully set up and waiting for its next command), then reads the server's
RSS. Checks that connection N+1 gets `421 4.3.2` (the limit holds) and that, after all idle
sessions are closed, a normal message is still registered. Prints a table and exits non-zero if
the target is missed or a check fails.

    bench/idle.py [--connections 10000] [--binary target/release/mailroom]
"""
import argparse
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_reply(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", "-n", type=int, default=10000)
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "mailroom"))
    args = ap.parse_args()
    n = args.connections

    # Both ends of every connection live in this machine: we need 2N descriptors here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 1024
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            sys.exit(f"idle: need {want} open files, hard limit is {hard} (run as root or raise it)")
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    work = tempfile.mkdtemp(prefix="mailroom-idle-")
    data_dir = os.path.join(work, "data")
    smtp_port, lmtp_port = free_port(), free_port()
    with open(os.path.join(REPO, "deploy", "mailroom.toml")) as f:
        config = f.read()
    config = config.replace("127.0.0.1:2525", f"127.0.0.1:{smtp_port}").replace("127.0.0.1:2424", f"127.0.0.1:{lmtp_port}")
    # In [limits] only: N sessions, all from 127.0.0.1 (no per-address cap, no reserve for
    # other addresses), so that connection N+1 is the first one refused.
    head, limits, tail = re.split(r"(?m)^(\[limits\]\n)", config, maxsplit=1)
    section, rest = re.split(r"(?m)^(?=\[)", tail, maxsplit=1)
    section = re.sub(r"(?m)^(max_connections_per_source|reserved_percent) = .*\n", "", section)
    section = re.sub(r"(?m)^max_connections = \d+", f"max_connections = {n}\nmax_connections_per_source = {n}\nreserved_percent = 0", section)
    config = head + limits + section + rest
    config_path = os.path.join(work, "mailroom.toml")
    with open(config_path, "w") as f:
        f.write(config)

    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([args.binary, "serve", "--data-dir", data_dir, "--config", config_path],
                              stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (want, want)))
    ok = True
    socks = []
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(data_dir, "listeners.json")):
                break
            time.sleep(0.05)
        else:
            sys.exit("idle: server did not start")
        rss_start = rss_kib(server.pid)

        t0 = time.time()
        sel = selectors.DefaultSelector()
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", smtp_port), timeout=30)
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, i)
        # Every session: banner in, EHLO out, EHLO reply in.
        stage = [0] * n
        buf = [b""] * n
        done = 0
        deadline = time.time() + 120
        while done < n and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                i = key.data
                chunk = key.fileobj.recv(4096)
                buf[i] += chunk
                if not buf[i].endswith(b"\r\n"):
                    continue
                last = buf[i].split(b"\r\n")[-2]
                if len(last) < 4 or last[3:4] != b" ":
                    continue
                if stage[i] == 0 and last.startswith(b"220"):
                    stage[i], buf[i] = 1, b""
                    key.fileobj.send(b"EHLO idle.example.org\r\n")
                elif stage[i] == 1 and last.startswith(b"250"):
                    stage[i] = 2
                    done += 1
                    sel.unregister(key.fileobj)
                else:
                    print(f"idle: unexpected reply on connection {i}: {buf[i]!r}")
                    ok = False
                    stage[i] = 2
                    done += 1
                    sel.unregister(key.fileobj)
        setup_s = time.time() - t0
        if done < n:
            print(f"idle: only {done} of {n} sessions completed EHLO")
            ok = False
        time.sleep(1.0)
        rss_idle = rss_kib(server.pid)

        # One more connection: over the limit, it must be told so.
        extra = socket.create_connection(("127.0.0.1", smtp_port), timeout=10)
        over = read_reply(extra).decode(errors="replace").strip()
        extra.close()
        limit_ok = over.startswith("421 4.3.2")
        ok &= limit_ok

        for s in socks:
            s.close()
        socks = []
        time.sleep(2.0)
        rss_after = rss_kib(server.pid)

        # The server still works.
        c = socket.create_connection(("127.0.0.1", smtp_port), timeout=10)
        read_reply(c)
        c.sendall(b"EHLO a\r\n")
        read_reply(c)
        for command in (b"MAIL FROM:<a@b.org>\r\n", b"RCPT TO:<support@example.com>\r\n", b"DATA\r\n"):
            c.sendall(command)
            read_reply(c)
        c.sendall(b"Subject: after idle test\r\n\r\nhello\r\n.\r\n")
        final = read_reply(c).decode(errors="replace").strip()
        c.sendall(b"QUIT\r\n")
        c.close()
        works = final.startswith("250 2.0.0 Registered")
        ok &= works

        per_conn = (rss_idle - rss_start) / n if n else 0
        target_ok = rss_idle < 1024 * 1024
        ok &= target_ok
        print()
        print("| measure | value |")
        print("|---|---|")
        print(f"| idle SMTP sessions (banner + EHLO done) | {done:,} of {n:,} (set up in {setup_s:.1f} s) |")
        print(f"| server RSS before / with all idle / after closing | {rss_start / 1024:.1f} / {rss_idle / 1024:.1f} / {rss_after / 1024:.1f} MiB |")
        print(f"| per idle session | {per_conn:.1f} KiB |")
        print(f"| target: {n:,} idle sessions < 1 GiB | {'PASS' if target_ok else 'FAIL'} ({rss_idle / 1024:.1f} MiB) |")
        print(f"| connection {n + 1:,} | {over!r} ({'PASS' if limit_ok else 'FAIL'}) |")
        print(f"| a message after closing them all | {final!r} ({'PASS' if works else 'FAIL'}) |")
    finally:
        for s in socks:
            s.close()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"idle: kept {work} for inspection")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
