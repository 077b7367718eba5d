#!/usr/bin/env python3
"""mailroom on SQLite vs PostgreSQL (one node, two nodes): one run, the same SMTP load.

Called by bench/pg.sh. In ONE run, on one machine:
  0. Postfix smtp-sink (discards): the ceiling for the SMTP protocol with this client;
  1. one mailroom node on SQLite (the default store in its data dir);
  2. one node on PostgreSQL (a throwaway cluster this script starts: fsync and
     synchronous_commit on, a fresh database per mode);
  3. two nodes (two `serve` processes, different ports and `[server] node`) on one database, the
     load split between them (two client processes, half the sessions each).
The load generator is bench/mailgen.py (realistic mail, smtp-source's options) or, with --mail x,
Postfix's smtp-source itself.
Each mailroom mode gets a warm-up, a full-load pass and a half-load pass (sessions calibrated to
about half of that mode's peak, as bench.py does). Then the nodes stop and the script checks
stored = accepted, gap-free registration numbers and a read-back, per mode.

Reuses bench.py's pieces (config rewriting, log parsing, CPU counters). See bench/README.md.
"""

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import (HELO, PAYLOAD_MARK, RECIPIENT, SENDER, Server, cpu_shares, cpu_snapshot, die, fmt,  # noqa: E402
                   fs_type, log, make_config, other_cpu_users, parse_transactions, percentile, proc_status,
                   scan_for_cleartext, wait_banner, which)
from pgcluster import PgCluster  # noqa: E402

LOCK_MS = re.compile(r"sequencer lock held.*?\block_ms=([0-9.]+)")
SEQ = re.compile(r"-(\d+)-[^-]*$")  # registration number "MR-2026-000123-7": the sequence part
MODES = {"sqlite": ("SQLite, 1 node", 1), "pg1": ("PostgreSQL, 1 node", 1), "pg2": ("PostgreSQL, 2 nodes", 2)}


def set_keys(path, changes):
    """Sets `key = value` (TOML literals) in the given sections of a config file, replacing the
    key where the section has it and adding it right after the section header otherwise."""
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    out, section, pending = [], None, {s: dict(kv) for s, kv in changes.items()}
    for line in lines:
        stripped = line.strip()
        header = re.match(r"^\[([A-Za-z0-9_.-]+)\]$", stripped)
        if header:
            section = header.group(1)
            out.append(line)
            for key, value in pending.get(section, {}).items():
                out.append(f"{key} = {value}\n")
            continue
        key = re.match(r"^([A-Za-z0-9_]+)\s*=", stripped)
        if key and section in changes and key.group(1) in changes[section]:
            continue  # written after the header
        out.append(line)
    missing = [s for s in changes if not any(re.match(rf"^\[{re.escape(s)}\]\s*$", l) for l in lines)]
    for s in missing:
        out.append(f"\n[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in changes[s].items()))
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(out)


class Node:
    """One `mailroom serve` with its own data dir, config and SMTP port."""

    def __init__(self, binary, template, run_dir, name, storage, env):
        self.name = name
        self.data_dir = os.path.join(run_dir, name)
        os.makedirs(self.data_dir, mode=0o700)  # mailroom refuses a data dir others can read
        self.config = os.path.join(run_dir, f"{name}.toml")
        ports = make_config(template, self.config)
        set_keys(self.config, {"server": {"node": json.dumps(name)}, "storage": storage})
        if not ports.get("smtp"):
            die(f"no [smtp] listen address found in {template}")
        self.port = ports["smtp"][0]
        self.binary, self.env = binary, env
        self.server = Server(name, [binary, "serve", "--data-dir", self.data_dir, "--config", self.config],
                             os.path.join(run_dir, f"{name}.log"), env=env, cwd=run_dir)
        err = wait_banner(self.port, self.server.proc, 90, name)
        if err:
            tail = self.server.tail()
            self.server.stop(5)
            raise RuntimeError(err + "\n--- log tail ---\n" + tail)

    def cli(self, *args, timeout=600):
        return subprocess.run([self.binary, *args, "--data-dir", self.data_dir, "--config", self.config],
                              capture_output=True, timeout=timeout, env=self.env)


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(client, targets, sessions, messages, size, run_dir, label, cluster=None, db=None, tx_log=True):
    """One pass: load-generator processes (one per target, sessions and messages split evenly) at
    once; wall time until the last one exits. targets: [(Server, port)]."""
    shares = [(t, s, m) for t, s, m in zip(targets, split(sessions, len(targets)), split(messages, len(targets)))
              if s > 0 and m > 0]
    xact0 = cluster.xact_commit(db) if cluster else None
    offsets = [srv.log_offset() for (srv, _), _, _ in shares]
    srv_cpu0 = sum(srv.cpu() for (srv, _), _, _ in shares)
    db_cpu0 = cluster.cpu() if cluster else float("nan")
    mach0 = cpu_snapshot()
    procs = []
    t0 = time.monotonic()
    for i, ((srv, port), s, m) in enumerate(shares):
        argv = client + ["-s", str(s), "-l", str(size), "-m", str(m), "-M", HELO, "-f", SENDER,
                "-t", RECIPIENT, f"127.0.0.1:{port}"]
        err = open(os.path.join(run_dir, f"client-{i}.err"), "wb")
        procs.append((subprocess.Popen(argv, stdout=err, stderr=err, stdin=subprocess.DEVNULL), err))
    rcs, client_cpu = [], 0.0
    for p, err in procs:
        _, status, ru = os.wait4(p.pid, 0)
        rcs.append(os.waitstatus_to_exitcode(status))
        client_cpu += ru.ru_utime + ru.ru_stime
        err.close()
    wall = time.monotonic() - t0
    srv_cpu = sum(srv.cpu() for (srv, _), _, _ in shares) - srv_cpu0
    db_cpu = (cluster.cpu() - db_cpu0) if cluster else float("nan")
    mach = cpu_shares(mach0, cpu_snapshot())
    stderr = " / ".join(open(os.path.join(run_dir, f"client-{i}.err"), errors="replace").read().strip()
                        for i in range(len(procs))).strip(" /")
    r = {"label": label, "sessions": sessions, "messages": messages, "wall": wall, "rate": messages / wall,
         "rc": max(rcs, key=abs) if rcs else 0, "client_cpu": client_cpu, "server_cpu": srv_cpu, "db_cpu": db_cpu,
         "machine": mach, "stderr": stderr, "nodes": len(shares)}
    # latency, batches and sequencer lock times from every node's log over this pass
    lat, batches, locks, results = [], [], [], {}
    for ((srv, _), _, _), off in zip(shares, offsets):
        t = parse_transactions(srv.log_path, off)
        lat += t["lat"]
        batches += t["batches"]
        for k, v in t["results"].items():
            results[k] = results.get(k, 0) + v
        with open(srv.log_path, "rb") as f:
            f.seek(off)
            locks += [float(x) for x in LOCK_MS.findall(bench.ANSI.sub("", f.read().decode("utf-8", "replace")))]
    lat.sort()
    r.update({"logged": len(lat), "results": results, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
              "max": lat[-1] if lat else float("nan")})
    if batches:
        ms = sorted(b[1] for b in batches)
        r["commits"] = {"n": len(batches), "msgs": sum(b[0] for b in batches), "max": max(b[0] for b in batches),
                        "single": sum(1 for b in batches if b[0] == 1), "p50": percentile(ms, 50),
                        "p99": percentile(ms, 99), "busy": sum(ms) / 1000.0 / wall / len(shares)}
    if locks:
        r["lock_busy"] = sum(locks) / 1000.0 / wall  # share of the pass some node held the sequencer
        r["lock_ceiling"] = messages / (sum(locks) / 1000.0) if sum(locks) else float("nan")
    if cluster:
        r["xacts"] = cluster.xact_commit(db) - xact0
    status = "ok" if r["rc"] == 0 else f"FAILED (exit {r['rc']})"
    note = f" [CPUs busy {mach['busy']:.0f}%, steal {mach['steal']:.0f}%, iowait {mach['iowait']:.0f}%]" if mach else ""
    log(f"{label}: {sessions} sessions, {messages} msgs in {wall:.2f}s = {r['rate']:,.0f} msg/s {status}{note}")
    if stderr:
        log(f"  the load generator said: {stderr[:500]}")
    if tx_log and r["logged"] != messages and r["rc"] == 0:
        log(f"  note: {r['logged']} transaction log lines with a latency for {messages} messages ({results})")
    return r


def accepted_from_logs(nodes):
    total = 0
    for n in nodes:
        for k, v in parse_transactions(n.server.log_path, 0, settle=False)["results"].items():
            if re.match(r"(?i)(ok|registered|accepted|stored|duplicate|250)", k):
                total += v
    return total


def verify_store(mode, nodes, sent, any_failed, problems):
    """Stored = accepted, gap-free numbers, first message decrypts. Nodes are stopped."""
    first = nodes[0]
    if any_failed:
        logged = accepted_from_logs(nodes)
        problems.append(f"{mode}: a pass failed, so the count sent with 250 is taken from the server logs "
                        f"({logged}) instead of the load generator's ({sent})")
        sent = logged
    lst = first.cli("message", "list", "--json")
    seqs, dups, numbers = [], 0, []
    if lst.returncode != 0:
        problems.append(f"{mode}: `message list --json` exited {lst.returncode}: "
                        f"{lst.stderr.decode('utf-8', 'replace')[-300:]}")
    for line in lst.stdout.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        numbers.append(obj["number"])
        dups += int(obj.get("duplicate_count") or 0)
        m = SEQ.search(obj["number"])
        if m:
            seqs.append(int(m.group(1)))
    seqs.sort()
    stored = len(numbers)
    gap_free = len(seqs) == stored and seqs == list(range(1, stored + 1)) and len(set(numbers)) == stored
    readback = "not tried"
    if numbers:
        show = first.cli("message", "show", numbers[0], timeout=60)
        readback = "ok" if show.returncode == 0 and PAYLOAD_MARK in show.stdout else f"FAILED (exit {show.returncode})"
    ok = stored + dups == sent and gap_free and readback == "ok"
    if stored + dups != sent:
        problems.append(f"{mode}: stored {stored} (+{dups} duplicates) but {sent} were answered 250")
    if not gap_free:
        problems.append(f"{mode}: registration numbers are not unique and gap-free "
                        f"(first {seqs[:3]}, last {seqs[-3:]}, {stored} stored)")
    if readback != "ok":
        problems.append(f"{mode}: `message show {numbers[0] if numbers else '?'}` {readback}")
    return {"sent": sent, "stored": stored, "dups": dups, "gap_free": gap_free,
            "range": f"{seqs[0]}–{seqs[-1]}" if seqs else "none", "readback": readback, "ok": ok}


def run_mode(mode, args, ctx):
    """Warm-up, full load, half-load calibration and pass for one mode; then stop and verify."""
    title, n_nodes = MODES[mode]
    cluster, db = (ctx["cluster"], f"bench_{mode}") if mode != "sqlite" else (None, None)
    problems = ctx["problems"]
    storage = {"compression": json.dumps(args.compression)} if args.compression else {}
    if cluster:
        storage["database"] = json.dumps(cluster.create_database(db))
        # every node of one database needs the same master key: one file, created by the first node
        storage["master_key_file"] = json.dumps(os.path.join(ctx["run_dir"], f"{mode}-master.key"))
    nodes, res = [], {"mode": mode, "title": title, "passes": [], "calib": []}
    sent, any_failed = 0, False
    try:
        for i in range(n_nodes):
            nodes.append(Node(ctx["binary"], ctx["template"], ctx["run_dir"], f"{mode}-node-{'ab'[i]}", storage,
                              ctx["env"]))  # one after the other: the first creates the key file and schema
        targets = [(n.server, n.port) for n in nodes]

        def load(sessions, messages, label):
            nonlocal sent, any_failed
            r = run_load(ctx["client"], targets, sessions, messages, args.size, ctx["run_dir"],
                         f"{title}: {label}", cluster, db)
            if r["rc"] == 0:
                sent += messages
            else:
                any_failed = True
                problems.append(f"{title}, {label}: the load generator failed (exit {r['rc']}): {r['stderr'][:300]}")
            for n in nodes:
                if n.server.proc.poll() is not None:
                    raise RuntimeError(f"{n.name} exited ({n.server.proc.returncode})\n" + n.server.tail())
            return r

        if args.warmup > 0:
            load(args.sessions, args.warmup, "warm-up")
        full = load(args.sessions, args.messages, "full load")
        res["passes"].append(("full load", full))
        if not args.no_half and full["rc"] == 0:
            target = full["rate"] / 2
            hs = args.half_sessions
            if hs <= 0:
                trial_n = max(min(500, args.messages), min(3000, args.messages // 10))
                best, s_try = None, n_nodes
                while s_try < args.sessions:
                    t = load(s_try, trial_n, f"calibrate half load ({s_try} sessions)")
                    res["calib"].append(t)
                    if t["rc"] != 0:
                        break
                    dist = abs(math.log(t["rate"] / target))
                    if best is None or dist < best[0]:
                        best = (dist, s_try)
                    if t["rate"] >= target:
                        break
                    s_try *= 2
                hs = best[1] if best else max(n_nodes, args.sessions // 4)
            hs = max(hs, n_nodes)
            half = load(hs, args.half_messages or max(min(1000, args.messages), args.messages // 2), "half load")
            half["share"] = half["rate"] / full["rate"]
            res["passes"].append(("half load", half))
        res["rss"] = ", ".join(proc_status(n.server.pid, "VmHWM") for n in nodes)
    finally:
        for n in nodes:
            rc = n.server.stop()
            if rc not in (0, None):
                problems.append(f"{n.name} exited with status {rc} after SIGTERM")
    if cluster:
        res["xacts_total"] = cluster.xact_commit(db, settle=0.5)
    res["verify"] = verify_store(title, nodes, sent, any_failed, problems)
    res["verify"]["ok"] = res["verify"]["ok"] and not any_failed
    # nothing in clear on disk (data dirs; the PostgreSQL cluster is scanned once at the end) or in the logs
    for n in nodes:
        key = os.path.abspath(os.path.join(ctx["run_dir"], f"{mode}-master.key"))
        clear = scan_for_cleartext(n.data_dir, [PAYLOAD_MARK, SENDER.encode()],
                                   skip={key, os.path.abspath(os.path.join(n.data_dir, "master.key"))})
        if clear:
            res["verify"]["ok"] = False
            problems.append(f"{n.name}: clear text in the data dir: {clear}")
        with open(n.server.log_path, "rb") as f:
            if SENDER.encode() in f.read():
                problems.append(f"{n.name}: the sender address appears in the server log at level info")
    ctx["logs"] += [n.server.log_path for n in nodes]
    return res


def per_msg_us(cpu, n):
    return cpu / n * 1e6 if n and not math.isnan(cpu) else float("nan")


def limit_note(r):
    """What most likely limits a pass's rate, from the figures measured (a heuristic, see README)."""
    m = r.get("machine") or {}
    cores = os.cpu_count() or 1
    wall = r["wall"] * cores
    parts = [f"mailroom {r['server_cpu'] / wall * 100:.0f}%"]
    if not math.isnan(r["db_cpu"]):
        parts.append(f"PostgreSQL {r['db_cpu'] / wall * 100:.0f}%")
    parts.append(f"load generator {r['client_cpu'] / wall * 100:.0f}%")
    split_ = f"CPU of all {cores} cores: " + ", ".join(parts)
    lock = r.get("lock_busy")
    writer = r.get("commits", {}).get("busy")
    ours = (r["server_cpu"] + (0 if math.isnan(r["db_cpu"]) else r["db_cpu"]) + r["client_cpu"]) / wall * 100
    if m and m.get("busy", 0) >= 90:
        others = m["busy"] - ours
        why = "CPU bound (the machine was busy ≥ 90%" + (
            f"; {others:.0f}% of it outside this bench: figures skewed)" if others >= 10 else ")")
    elif lock is not None and lock >= 0.8:
        why = f"the sequencer row lock (held {lock * 100:.0f}% of the pass: commits are serial)"
    elif writer is not None and writer >= 0.8:
        why = f"the group-commit writer ({writer * 100:.0f}% busy: commit latency incl. fsync)"
    elif m and m.get("iowait", 0) >= 20:
        why = f"the disk (iowait {m['iowait']:.0f}%)"
    else:
        why = "waiting, not computing: round trips between client, server and database"
    lock_s = (f", sequencer held {lock * 100:.0f}% (were it held all the time, at these batch sizes: "
              f"≈ {fmt(r['lock_ceiling'])} msg/s; batches grow with load, so more)" if lock is not None else "")
    writer_s = f", writer busy {writer * 100:.0f}% per node" if writer is not None else ""
    return f"{why}. {split_}{writer_s}{lock_s}"


def report(args, ctx, sink, results, pg_settings):
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    repo = ctx["repo"]
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    md = ["# mailroom on SQLite and PostgreSQL: ingest benchmark", "",
          f"{now}; mailroom {commit} ({os.path.relpath(ctx['binary'], repo) if ctx['binary'].startswith(repo + os.sep) else ctx['binary']}); "
          f"{os.cpu_count()} CPUs ({cpu_model}), Linux {platform.release()}; data on {ctx['fstype']}. The load generator, "
          "mailroom and PostgreSQL share the same CPUs and disk.", "",
          "| setting | value |", "|---|---|",
          f"| load | `{ctx['client_name']} -s {args.sessions} -l {args.size} -m {args.messages}` per pass (two nodes: "
          "two processes, half the sessions and messages each); one message per connection, 1 recipient, no pipelining |",
          "| mail | " + ("realistic (bench/mailgen.py): multipart/alternative text + HTML and a base64 attachment of "
                        "random bytes, distinct Message-IDs" if args.mail == "realistic" else
                        "smtp-source's payload, lines of X (compresses ~50x: flatters compression)")
          + f"; compression = {args.compression or 'template default (lz4)'} |",
          f"| warm-up | {args.warmup:,} unmeasured messages per mode |",
          "| SQLite | server default: WAL, synchronous=FULL, group commit |",
          "| PostgreSQL | " + (", ".join(f"{k}={v}" for k, v in sorted(pg_settings.items())) or "not run")
          + "; no standby (a synchronous standby adds one network round trip per commit) |", "",
          "| mode | pass | sessions | msg/s | p50 ms | p99 ms | max ms | msgs/commit | DB xacts/msg "
          "| server CPU µs/msg | PostgreSQL CPU µs/msg | client CPU µs/msg | busy / steal / iowait % |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def row(mode, name, r):
        c = r.get("commits")
        mach = r.get("machine")
        xacts = r.get("xacts")
        md.append(f"| {mode} | {name} | {r['sessions']} | {fmt(r['rate'])} | {fmt(r.get('p50'), 2)} | "
                  f"{fmt(r.get('p99'), 2)} | {fmt(r.get('max'), 1)} | "
                  f"{fmt(c['msgs'] / c['n'], 1) if c else '–'} | "
                  f"{fmt(xacts / r['messages'], 2) if xacts is not None else '–'} | "
                  f"{fmt(per_msg_us(r['server_cpu'], r['messages']))} | {fmt(per_msg_us(r['db_cpu'], r['messages']))} | "
                  f"{fmt(per_msg_us(r['client_cpu'], r['messages']))} | "
                  + (f"{mach['busy']:.0f} / {mach['steal']:.0f} / {mach['iowait']:.0f} |" if mach else "n/a |"))

    if sink:
        row("smtp-sink (discards)", "full load", dict(sink, p50=None, p99=None, max=None))
    for res in results:
        for name, r in res["passes"]:
            row(res["title"], name + (f" ({r['share'] * 100:.0f}% of peak)" if "share" in r else ""), r)
    md.append("")

    def peak(mode):
        res = next((x for x in results if x["mode"] == mode), None)
        return res["passes"][0][1]["rate"] if res and res["passes"] else None

    def half(mode):
        res = next((x for x in results if x["mode"] == mode), None)
        return next((r for n, r in res["passes"] if n == "half load"), None) if res else None

    verdict = lambda good: "PASS" if good else "FAIL"  # noqa: E731
    md += ["| target | measured | |", "|---|---|---|"]
    sq, p1, p2 = peak("sqlite"), peak("pg1"), peak("pg2")
    if sq and p1:
        md.append(f"| PostgreSQL 1 node ≥ 0.5 × SQLite | **{p1 / sq:.2f}** ({fmt(p1)} / {fmt(sq)} msg/s) | "
                  f"{verdict(p1 / sq >= 0.5)} |")
    if sq and p2:
        md.append(f"| PostgreSQL 2 nodes / SQLite | **{p2 / sq:.2f}** ({fmt(p2)} / {fmt(sq)} msg/s) | information |")
    if sink and sq:
        md.append(f"| SQLite / smtp-sink (≥ 0.70, PRODUCT.md) | {sq / sink['rate']:.2f} | {verdict(sq / sink['rate'] >= 0.7)} |")
    for mode, limit in (("sqlite", 20), ("pg1", 50), ("pg2", 50)):
        h = half(mode)
        if h:
            md.append(f"| {MODES[mode][0]}: p99 at half load ≤ {limit} ms | **{fmt(h['p99'], 2)} ms** at "
                      f"{fmt(h['rate'])} msg/s ({h['share'] * 100:.0f}% of peak, {h['sessions']} sessions) | "
                      f"{verdict(h['p99'] <= limit)} |")
    for res in results:
        v = res["verify"]
        md.append(f"| {res['title']}: stored = accepted, gap-free, read-back | {v['stored']:,} stored + {v['dups']} "
                  f"duplicates vs {v['sent']:,} answered 250; numbers {v['range']} "
                  f"{'gap-free' if v['gap_free'] else 'NOT gap-free'}; read-back {v['readback']} | {verdict(v['ok'])} |")
    md += ["", "## What limits the rate", ""]
    for res in results:
        for name, r in res["passes"]:
            c = r.get("commits")
            commits = (f" Group commit: {c['n']:,} commits, {c['msgs'] / c['n']:.1f} msgs each (max {c['max']}, "
                       f"{c['single']:,} of 1), commit p50 {c['p50']:.1f} / p99 {c['p99']:.1f} ms." if c else "")
            md.append(f"- **{res['title']}, {name}**: {limit_note(r)}.{commits}")
        if res.get("xacts_total") is not None:
            v = res["verify"]
            md.append(f"  All transactions of the mode's database (workers, reads included): "
                      f"{res['xacts_total']:,} for {v['stored']:,} messages.")
        if res["calib"]:
            md.append("  Half-load calibration: " + ", ".join(f"{c['sessions']} sessions → {fmt(c['rate'])} msg/s"
                                                             for c in res["calib"]) + ".")
        md.append(f"  Peak RSS per node: {res.get('rss', '?')}.")
    full1 = next((r for n, r in next((x["passes"] for x in results if x["mode"] == "pg1"), []) if n == "full load"), None)
    if full1 and not math.isnan(full1["db_cpu"]):
        us = per_msg_us(full1["db_cpu"], full1["messages"])
        if us > 0:
            md += ["", f"Projection: PostgreSQL spent {us:,.0f} µs of CPU per message at full load with one node, so "
                   f"one core of a database server carries about {1e6 / us:,.0f} msg/s of this load before it is "
                   "CPU bound; the sequencer row lock (one commit at a time, across all nodes) bounds the total "
                   "at about (messages per commit) / (commit time) whatever the core count."]
    if ctx["problems"]:
        md += ["", "Problems seen:"] + [f"- {p}" for p in ctx["problems"]]
    return "\n".join(md) + "\n"


def main():
    ap = argparse.ArgumentParser(description="mailroom on SQLite vs PostgreSQL (1 and 2 nodes); see bench/README.md")
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--messages", "-m", type=int, default=20000, help="messages per full-load pass (default 20000)")
    ap.add_argument("--sessions", "-s", type=int, default=32, help="client sessions at full load (default 32)")
    ap.add_argument("--size", "-l", type=int, default=10240, help="payload bytes per message (default 10240)")
    ap.add_argument("--warmup", type=int, default=1000, help="unmeasured messages per mode first (default 1000)")
    ap.add_argument("--half-sessions", type=int, default=0, help="sessions of the half-load pass (default: calibrated)")
    ap.add_argument("--half-messages", type=int, default=0, help="messages of the half-load pass (default messages/2)")
    ap.add_argument("--no-half", action="store_true", help="skip the half-load passes")
    ap.add_argument("--modes", default="sink,sqlite,pg1,pg2", help="subset of sink,sqlite,pg1,pg2 (default all)")
    ap.add_argument("--mail", choices=("realistic", "x"), default="realistic",
                    help="realistic: bench/mailgen.py (multipart, HTML, base64 attachment of random bytes, "
                         "distinct Message-IDs; the default); x: smtp-source's payload of X lines (compresses ~50x)")
    ap.add_argument("--compression", choices=("none", "lz4"),
                    help="storage.compression for every mode (default: the template's, lz4)")
    ap.add_argument("--binary", help="mailroom binary (default target/release/mailroom)")
    ap.add_argument("--config-template", help="config to copy (default deploy/mailroom.toml)")
    ap.add_argument("--data-root", help="where the run dir goes (default target/bench-data; must be a real disk)")
    ap.add_argument("--out", help="markdown results file (default bench/results/pg-latest.md)")
    ap.add_argument("--keep", action="store_true", help="keep the run dir (configs, logs, data dirs, cluster)")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in ("sink", *MODES) for m in modes) or args.messages < 1 or args.sessions < 2:
        die("--modes takes sink,sqlite,pg1,pg2; --messages ≥ 1; --sessions ≥ 2 (two nodes)")

    repo = os.path.abspath(args.repo)
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    binary = os.path.abspath(args.binary or os.path.join(target_dir, "release", "mailroom"))
    template = args.config_template or os.path.join(repo, "deploy", "mailroom.toml")
    data_root = args.data_root or os.path.join(target_dir, "bench-data")
    out_md = args.out or os.path.join(repo, "bench", "results", "pg-latest.md")
    if not os.access(binary, os.X_OK):
        die(f"{binary} not found; run `cargo build --release` (bench/pg.sh does)")
    smtp_sink = which("smtp-sink")
    mailgen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mailgen.py")
    client = [which("smtp-source")] if args.mail == "x" else [sys.executable, mailgen]
    os.makedirs(data_root, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix=dt.datetime.now().strftime("pg-%Y%m%d-%H%M%S-"), dir=data_root)
    os.chmod(run_dir, 0o711)  # the postgres user must reach its cluster dir inside; nobody may list it
    fstype = fs_type(run_dir)
    if fstype in ("tmpfs", "ramfs"):
        log(f"WARNING: {run_dir} is on {fstype}: fsync is free there; pass --data-root on a real disk")
    env = dict(os.environ)
    env["RUST_LOG"] = os.environ.get("BENCH_RUST_LOG", "info,mailroom::store=debug")
    env["NO_COLOR"] = "1"
    env.pop("RUST_BACKTRACE", None)
    ctx = {"repo": repo, "binary": binary, "template": template, "run_dir": run_dir, "env": env, "fstype": fstype,
           "client": client, "client_name": os.path.basename(client[-1]), "problems": [], "logs": [], "cluster": None}
    log(f"run dir {run_dir} ({fstype}); modes {', '.join(modes)}")
    busy = other_cpu_users({os.getpid()})
    if busy:
        ctx["problems"].append("other processes were using CPU when the bench started (figures are skewed): "
                               + ", ".join(busy))
        log("WARNING: other processes are using CPU: " + ", ".join(busy))

    sink, results, pg_settings, ok = None, [], {}, True
    try:
        if "sink" in modes:
            port = bench.free_port()
            argv = [smtp_sink] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [f"127.0.0.1:{port}", "1024"]
            srv = Server("smtp-sink", argv, os.path.join(run_dir, "smtp-sink.log"), cwd=run_dir)
            try:
                err = wait_banner(port, srv.proc, 15, "smtp-sink")
                if err:
                    die(err)
                if args.warmup:
                    run_load(client, [(srv, port)], args.sessions, args.warmup, args.size, run_dir,
                             "smtp-sink: warm-up", tx_log=False)
                sink = run_load(client, [(srv, port)], args.sessions, args.messages, args.size, run_dir,
                                "smtp-sink: full load", tx_log=False)
                ok = ok and sink["rc"] == 0
            finally:
                srv.stop(5)
        if any(m.startswith("pg") for m in modes):
            ctx["cluster"] = PgCluster(run_dir).start()
            pg_settings = ctx["cluster"].settings()
            log(f"PostgreSQL on 127.0.0.1:{ctx['cluster'].port}: {pg_settings}")
        for mode in (m for m in MODES if m in modes):
            res = run_mode(mode, args, ctx)
            results.append(res)
            ok = ok and res["verify"]["ok"]
        if ctx["cluster"]:
            c = ctx["cluster"]
            c.sql("postgres", "CHECKPOINT")  # table files too, not only the WAL, are scanned
            clear = scan_for_cleartext(c.dir, [PAYLOAD_MARK, SENDER.encode()], skip=set())
            if clear:
                ok = False
                ctx["problems"].append(f"clear text in the PostgreSQL cluster's files: {clear}")
    except RuntimeError as e:
        ok = False
        ctx["problems"].append(str(e)[:2000])
        log("ERROR: " + str(e))
    finally:
        if ctx["cluster"]:
            ctx["cluster"].stop(remove=not (args.keep or not ok))

    text = report(args, ctx, sink, results, pg_settings)
    return bench.finish(text, out_md, repo, run_dir, args.keep, ok, "configs, server logs, data dirs, PostgreSQL cluster")


if __name__ == "__main__":
    sys.exit(main())
