#!/usr/bin/env python3
"""IMAP on a huge queue (issue #13): SELECT, EXAMINE, UID FETCH 1:* (FLAGS), SEARCH UNSEEN and an
IDLE wake-up on one mailbox of --messages messages, each figure beside its target.

    bench/imap_big.py [--messages 1000000] [--binary target/release/mailroom]

Starts the release server (deploy/mailroom.toml, free loopback ports, user anna with
support-agent), fills queue `support` through SMTP with Postfix's smtp-source (every message a new
case), then over implicit TLS: SELECT and EXAMINE (< 1 s), UID FETCH 1:* (FLAGS) streamed and
counted (every message once) with the server's RSS peak while it runs, compared with its RSS
before the SELECT (< 64 MB per selected mailbox), SEARCH UNSEEN, and the time from a new
message's 250 to `* n EXISTS` in a second session that idles on the mailbox (a wake-up reads what
is new, not the mailbox). Writes bench/results/imap.md.

Then the unseen phase (the "seen through" watermark, store/mailbox_seen.rs): one STORE marks all
but the last 10 messages \\Seen, and SELECT (with its [UNSEEN n]), UID SEARCH UNSEEN (10 hits) and
STATUS (UNSEEN) are timed, each beside its target. Writes bench/results/imap-unseen.md
(--unseen-out); run with --out elsewhere to keep imap.md's 1,000,000-message figures.
"""
import argparse
import datetime as dt
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapbench  # noqa: E402

REPO = imapbench.REPO


def timed(f):
    t = time.monotonic()
    r = f()
    return time.monotonic() - t, r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", "-m", type=int, default=1_000_000)
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "mailroom"))
    ap.add_argument("--data-root", default=os.path.join(REPO, "target"), help="where the temporary data dir goes")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "imap.md"))
    ap.add_argument("--unseen-out", default=os.path.join(REPO, "bench", "results", "imap-unseen.md"))
    args = ap.parse_args()
    n = args.messages
    server = imapbench.Server(args.binary, data_root=args.data_root)
    ok = True
    try:
        t0 = time.monotonic()
        imapbench.fill(server.smtp_port, n)
        fill_s = time.monotonic() - t0
        print(f"filled {n:,} messages in {fill_s:.0f} s ({n / fill_s:,.0f} msg/s)", flush=True)

        c = imapbench.Imap(server.imaps_port).login()
        rss_before = server.rss_kib()
        select_s, (status, _, lines) = timed(lambda: c.command("SELECT support"))
        exists = any(line == f"* {n} EXISTS" for line in lines)
        ok &= status.startswith("OK") and exists
        with imapbench.RssPeak(server.proc.pid) as peak:
            fetch_s, (status, fetched, _) = timed(lambda: c.command("UID FETCH 1:* (FLAGS)", keep=0))
        ok &= status.startswith("OK") and fetched == n
        rss_delta_mb = (peak.peak - rss_before) / 1024
        search_s, (status, _, found) = timed(lambda: c.command("SEARCH UNSEEN", keep=1))
        unseen = len(found[0].split()) - 2 if found else 0
        ok &= status.startswith("OK") and unseen == n
        examine_s, (status, _, _) = timed(lambda: c.command("EXAMINE support"))
        ok &= status.startswith("OK")

        # IDLE: a second session on the mailbox; one new message.
        w = imapbench.Imap(server.imaps_port).login()
        w.command("SELECT support")
        w.sock.sendall(b"i1 IDLE\r\n")
        assert w.line().startswith(b"+")
        s = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30)
        s.ehlo("bench.example.org")
        s.sendmail("kim@customer.example", ["support@example.com"], b"Subject: one more\r\n\r\nhello\r\n")
        t = time.monotonic()
        s.quit()
        while True:
            line = w.line()
            if line == f"* {n + 1} EXISTS".encode():
                break
        idle_s = time.monotonic() - t
        w.sock.sendall(b"DONE\r\n")
        rss_after = server.rss_kib()

        # Unseen phase: everything but the last 10 read in one STORE; the unseen answers then
        # start at the watermark, so they cost the 10, not the mailbox.
        total = n + 1
        c.command("SELECT support")  # read-write again after the EXAMINE, and sees the new message
        store_s, (status, _, _) = timed(lambda: c.command(f"STORE 1:{total - 10} +FLAGS.SILENT (\\Seen)"))
        store_ok = status.startswith("OK")
        sel_s, (status, _, lines) = timed(lambda: c.command("SELECT support", keep=20))
        first = next((ln for ln in lines if ln.startswith("* OK [UNSEEN ")), "")
        sel_ok = status.startswith("OK") and first.startswith(f"* OK [UNSEEN {total - 9}]")
        search10_s, (status, _, found) = timed(lambda: c.command("UID SEARCH UNSEEN", keep=1))
        hits = len(found[0].split()) - 2 if found else 0
        search_ok = status.startswith("OK") and hits == 10
        status_s, (status, _, found) = timed(lambda: c.command("STATUS support (UNSEEN)", keep=1))
        status_ok = status.startswith("OK") and bool(found) and found[0].endswith("(UNSEEN 10)")
        unseen_rows = [
            (f"STORE 1:{total - 10:,} +FLAGS.SILENT (\\Seen)", f"{store_s:,.2f} s", "(once)", store_ok),
            ("SELECT support, [UNSEEN n] after the watermark", f"{sel_s * 1000:,.0f} ms ({first.split('[')[1].split(']')[0] if first else 'no UNSEEN'})", "< 1 s", sel_ok and sel_s < 1),
            ("UID SEARCH UNSEEN (10 hits)", f"{search10_s * 1000:,.1f} ms ({hits} found)", "< 50 ms", search_ok and search10_s < 0.05),
            ("STATUS support (UNSEEN)", f"{status_s * 1000:,.1f} ms ({found[0] if found else '-'})", "< 50 ms", status_ok and status_s < 0.05),
        ]
        ok &= all(r[3] for r in unseen_rows)

        rows = [
            ("SELECT support", f"{select_s * 1000:,.0f} ms", "< 1 s", select_s < 1),
            ("EXAMINE support", f"{examine_s * 1000:,.0f} ms", "< 1 s", examine_s < 1),
            ("UID FETCH 1:* (FLAGS), streamed", f"{fetch_s:,.2f} s ({fetched:,} messages, {fetched / fetch_s:,.0f}/s)", "all, streamed", fetched == n),
            ("server RSS peak − before SELECT", f"{rss_delta_mb:,.1f} MB", "< 64 MB", rss_delta_mb < 64),
            ("SEARCH UNSEEN", f"{search_s * 1000:,.0f} ms ({unseen:,} found)", "proportional to the result", True),
            ("IDLE: 250 of a new message → * EXISTS", f"{idle_s * 1000:,.0f} ms", "O(new messages)", True),
        ]
        ok &= all(r[3] for r in rows)
        head = (f"# IMAP on one mailbox of {n:,} messages ({dt.date.today()}, release build)\n\n"
                f"Fill: {n:,} messages by SMTP in {fill_s:,.0f} s. Server RSS {rss_before / 1024:,.0f} MB before SELECT, "
                f"{rss_after / 1024:,.0f} MB at the end.\n\n`bench/imap_big.py --messages {n}`\n\n")
        table = "| measure | value | target | |\n|---|---|---|---|\n" + "".join(
            f"| {name} | {value} | {target} | {'PASS' if good else 'FAIL'} |\n" for name, value, target, good in rows)
        print()
        print(table)
        with open(args.out, "w") as f:
            f.write(head + table)
        print(f"written to {os.path.relpath(args.out, REPO)}")
        unseen_table = "| measure | value | target | |\n|---|---|---|---|\n" + "".join(
            f"| {name} | {value} | {target} | {'PASS' if good else 'FAIL'} |\n" for name, value, target, good in unseen_rows)
        print()
        print(unseen_table)
        with open(args.unseen_out, "w") as f:
            f.write(f"# IMAP UNSEEN on one mailbox of {total:,} messages, all but 10 seen ({dt.date.today()}, release build)\n\n"
                    f"`bench/imap_big.py --messages {n}` (unseen phase; the STORE is one command)\n\n" + unseen_table)
        print(f"written to {os.path.relpath(args.unseen_out, REPO)}")
    finally:
        server.stop(keep=not ok)
        if not ok:
            print(f"kept {server.work} for inspection")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
