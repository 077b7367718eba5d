#!/usr/bin/env python3
"""10,000 logged-in IMAP sessions in IDLE (issue #13): the server's RSS beside the 1 GiB target.

    bench/imap_idle.py [--sessions 10000] [--binary target/release/mailroom]

Starts the release server (deploy/mailroom.toml on free loopback ports, the IMAP session limits
raised to --sessions, user anna with support-agent, one message in `support`), then opens the
sessions over implicit TLS, 16 at a time: LOGIN (argon2id, so this takes a while), SELECT
support, IDLE. With all of them idling it reads the server's RSS, then delivers one message and
times until every session has been told `* 2 EXISTS` (one commit wakes them all). Writes
bench/results/imap_idle.md.
"""
import argparse
import concurrent.futures
import datetime as dt
import os
import resource
import selectors
import smtplib
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapbench  # noqa: E402

REPO = imapbench.REPO


def open_idle(port, ctx):
    c = imapbench.Imap(port, ctx).login()
    status, _, _ = c.command("SELECT support")
    assert status.startswith("OK"), status
    c.sock.sendall(b"i1 IDLE\r\n")
    assert c.line().startswith(b"+")
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", "-n", type=int, default=10_000)
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "mailroom"))
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "imap_idle.md"))
    args = ap.parse_args()
    n = args.sessions
    want = n + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        sys.exit(f"need {want} open files, hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    server = imapbench.Server(args.binary, imap_limit=n + 10, nofile=want)
    ok = True
    sessions = []
    try:
        imapbench.fill(server.smtp_port, 1, sessions=1)
        rss_start = server.rss_kib()
        ctx = imapbench.tls_context()
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(open_idle, server.imaps_port, ctx) for _ in range(n)]
            for f in futures:
                try:
                    sessions.append(f.result())
                except Exception as e:  # noqa: BLE001 (reported below)
                    print(f"a session failed: {e!r}")
        setup_s = time.monotonic() - t0
        time.sleep(2)
        rss_idle = server.rss_kib()

        # One delivery: every idling session hears of it.
        sel = selectors.DefaultSelector()
        for i, c in enumerate(sessions):
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ, i)
        s = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30)
        s.ehlo("bench.example.org")
        s.sendmail("kim@customer.example", ["support@example.com"], b"Subject: wake up\r\n\r\nhello\r\n")
        t = time.monotonic()
        s.quit()
        woken, deadline = 0, time.monotonic() + 120
        while woken < len(sessions) and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                c = sessions[key.data]
                try:
                    c.buf += c.sock.recv(4096)
                except ssl.SSLWantReadError:
                    continue
                if b"* 2 EXISTS\r\n" in c.buf:
                    woken += 1
                    sel.unregister(c.sock)
        wake_s = time.monotonic() - t
        rss_woken = server.rss_kib()

        per = (rss_idle - rss_start) / max(len(sessions), 1)
        target_ok = rss_idle < 1024 * 1024 and len(sessions) == n
        ok &= target_ok and woken == len(sessions)
        rows = [
            ("sessions logged in, SELECT support, IDLE", f"{len(sessions):,} of {n:,} (set up in {setup_s:,.0f} s)", f"{n:,}", len(sessions) == n),
            ("server RSS with all of them idling", f"{rss_idle / 1024:,.1f} MiB ({per:,.1f} KiB a session; {rss_start / 1024:,.1f} MiB before)", "< 1 GiB", target_ok),
            ("one delivery → every session told * 2 EXISTS", f"{woken:,} in {wake_s:,.2f} s (RSS then {rss_woken / 1024:,.1f} MiB)", "all", woken == len(sessions)),
        ]
        table = "| measure | value | target | |\n|---|---|---|---|\n" + "".join(
            f"| {a} | {b} | {c} | {'PASS' if d else 'FAIL'} |\n" for a, b, c, d in rows)
        print()
        print(table)
        with open(args.out, "w") as f:
            f.write(f"# {n:,} IMAP sessions in IDLE ({dt.date.today()}, release build)\n\n`bench/imap_idle.py --sessions {n}`\n\n" + table)
        print(f"written to {os.path.relpath(args.out, REPO)}")
    finally:
        for c in sessions:
            try:
                c.sock.close()
            except OSError:
                pass
        server.stop(keep=not ok)
        if not ok:
            print(f"kept {server.work} for inspection")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
