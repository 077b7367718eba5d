#!/usr/bin/env python3
"""mailroom queue-counts benchmark: how long `GET /api/queues` and the staff web page "My queues"
(`/`: open, unassigned, overdue and due-soon counts per queue) take with a big backlog.

    bench/counts.sh [--messages 1000000] [--reference 1000] [--samples 200] [--size 1024]

Fills one store through SMTP (Postfix's smtp-source, every message a new, unassigned case in
`support`: all of them active), times both over a keep-alive connection at `--reference`
messages, fills up to `--messages` and times them again on the same server. Then runs
`mailroom store counts` (the full count the counters are checked against) and reports whether
they agree and how long the full count took. The target is a p99 under 50 ms at 1,000,000 open
cases. Writes bench/results/counts.md.
"""
import argparse
import datetime as dt
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import listing  # noqa: E402  (login, pages, SMTP fill)

TARGET_MS = 50


def timed(samples, request):
    request()  # warm
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        request()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50": bench.percentile(times, 50), "p99": bench.percentile(times, 99)}


def measure(port, token, cookie, samples):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    api = timed(samples, lambda: listing.call(conn, "GET", "/api/queues", token=token))
    page = timed(samples, lambda: listing.get_page(conn, "/", cookie))
    support = next(q for q in listing.call(conn, "GET", "/api/queues", token=token)["queues"] if q["name"] == "support")
    conn.close()
    return {"api": api, "page": page, "support": support}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--reference", type=int, default=1_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    binary = os.path.join(args.repo, "target", "release", "mailroom")
    smtp_source = bench.which("smtp-source") or bench.die("smtp-source not found (Debian package postfix)")
    workdir = tempfile.mkdtemp(prefix="mailroom-counts-")
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir, mode=0o700)
    config = os.path.join(workdir, "mailroom.toml")
    ports = bench.make_config(os.path.join(args.repo, "deploy", "mailroom.toml"), config)
    smtp_port, http_port = ports["smtp"][0], ports["http"][0]
    location = ["--data-dir", data_dir, "--config", config]
    # An agent of `support` (reading is all the counts need; the example config's supervisors must
    # log in with a TOTP code, which this script does not do).
    subprocess.run([binary, "user", "add", listing.USER, "--role", "support-agent", "--password-stdin", *location],
                   input=(listing.PASSWORD + "\n").encode(), check=True, capture_output=True)
    server = bench.Server("mailroom", [binary, "serve", *location], os.path.join(workdir, "server.log"))
    results = {}
    try:
        bench.wait_banner(smtp_port, server.proc, 60, "mailroom")
        listing.wait_http(http_port, 60)
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
        token = listing.call(conn, "POST", "/api/login", {"user": listing.USER, "password": listing.PASSWORD, "mode": "bearer"})["token"]
        conn.close()
        listing.fill(smtp_source, smtp_port, 0, args.reference, args.sessions, args.size, server, workdir)
        results["reference"] = measure(http_port, token, listing.page_login(http_port), args.samples)
        bench.log(f"reference ({args.reference:,} messages) measured; filling up to {args.messages:,}")
        t0 = time.monotonic()
        listing.fill(smtp_source, smtp_port, args.reference, args.messages, args.sessions, args.size, server, workdir)
        fill_s = time.monotonic() - t0
        bench.log(f"filled in {fill_s:,.0f} s")
        results["big"] = measure(http_port, token, listing.page_login(http_port), args.samples)
        t0 = time.monotonic()
        check = subprocess.run([binary, "store", "counts", *location], capture_output=True, text=True)
        check_s = time.monotonic() - t0
    finally:
        server.stop()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)

    ref, big = results["reference"], results["big"]
    worst = max(big["api"]["p99"], big["page"]["p99"])
    agreed = check.returncode == 0
    lines = [
        f"# Queue counts benchmark — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"`bench/counts.sh --messages {args.messages} --reference {args.reference} --samples {args.samples}`: one store "
        f"filled through SMTP ({args.size}-byte messages, every one a new unassigned case in `support`, so all active), "
        f"{args.samples} samples each over a keep-alive connection, release build, SQLite. Fill from {args.reference:,} "
        f"to {args.messages:,}: {fill_s:,.0f} s ({(args.messages - args.reference) / fill_s:,.0f} msg/s, counters kept in every batch).",
        "",
        f"| request | p50 ms at {args.reference:,} | p99 ms at {args.reference:,} | p50 ms at {args.messages:,} | p99 ms at {args.messages:,} | target |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in [("api", "GET /api/queues (bearer)"), ("page", "page: My queues (/), cookie session")]:
        lines.append(f"| {label} | {ref[key]['p50']:.1f} | {ref[key]['p99']:.1f} | {big[key]['p50']:.1f} | {big[key]['p99']:.1f} | p99 < {TARGET_MS} ms |")
    s = big["support"]
    lines += [
        "",
        f"Worst p99 at {args.messages:,} messages: **{worst:.1f} ms** (target < {TARGET_MS} ms). `support` then showed "
        f"active {s['active']:,}, overdue {s['overdue']:,}, by status {s['by_status']}.",
        "",
        f"`mailroom store counts` (a full count of the cases, compared row by row with the counters) after the fill: "
        f"{'**equal**' if agreed else '**DIFFERENT**'} in {check_s:.1f} s — {(check.stdout.strip() or check.stderr.strip()).splitlines()[-1]}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or os.path.join(args.repo, "bench", "results", "counts.md")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0 if worst < TARGET_MS and agreed else 1


if __name__ == "__main__":
    sys.exit(main())
