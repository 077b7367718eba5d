#!/usr/bin/env python3
"""mailroom ingest benchmark driver (called by bench/run.sh after `cargo build --release`).

Measures, in one run and with the same load generator (examples/loadgen with realistic mail by
default, or Postfix smtp-source with its X payload):
  1. Postfix smtp-sink: accepts and discards; the ceiling for the SMTP protocol alone.
  2. mailroom with its defaults (SQLite WAL + synchronous=FULL, group commit, per-message
     envelope encryption): accepted msg/s, p50/p99 end-of-data -> 250 latency from the
     server's per-transaction log line (latency_us=...).
  3. mailroom again at about half of the peak rate (fewer sessions, calibrated),
     for the p99 latency target.
Then stops mailroom and checks that what it stored equals what it accepted.

Standard library only. See bench/README.md.
"""

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

SENDER = "bench-sender@example.org"  # a "customer" address: must not appear in clear on disk/logs
RECIPIENT = "support@example.com"
HELO = "client.example.org"
PAYLOAD_MARK = b"X" * 60  # in every message (loadgen: an X-Bench header; smtp-source: the body); never in clear on disk

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LAT_US = re.compile(r"\blatency_us=\"?([0-9]+(?:\.[0-9]+)?)")
LAT_MS = re.compile(r"\b(?:latency_ms|ms)=\"?([0-9]+(?:\.[0-9]+)?)")
RESULT = re.compile(r"\bresult=\"?([A-Za-z0-9_.:-]+)")
SIZE = re.compile(r"\bsize=\"?([0-9]+)")
BATCH = re.compile(r"\bmessages=([0-9]+)\b.*?\bms=([0-9.]+)")
HOSTPORT = re.compile(r'"((?:\d{1,3}\.){3}\d{1,3}|\[[0-9A-Fa-f:.]+\]|localhost):(\d+)"')

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    log("ERROR: " + msg)
    sys.exit(code)


def which(tool):
    for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}"):
        if os.access(p, os.X_OK):
            return p
    found = shutil.which(tool)
    if not found:
        die(f"{tool} not found (Debian package postfix)")
    return found


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fs_type(path):
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def wait_banner(port, proc, timeout, what):
    """Wait until 127.0.0.1:port answers with a 220 banner (proc must stay alive)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"{what} exited with status {proc.returncode} before listening"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                data = s.recv(512)
                if data.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                    except OSError:
                        pass
                    return None
                last = f"unexpected banner {data[:80]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    return f"{what} did not answer on 127.0.0.1:{port} within {timeout}s ({last})"


WRITER_THREAD = "mailroom-writer"  # the group-commit writer's thread name (THREAD_NAME in src/store/writer/mod.rs)


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime is field 14, stime field 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def thread_cpu_seconds(pid, comm):
    """CPU seconds of the process's threads named `comm` (e.g. mailroom's group-commit writer)."""
    total = 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return float("nan")
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != comm:
                    continue
        except OSError:
            continue
        total += proc_cpu_seconds(f"{pid}/task/{tid}")
    return total


def proc_written_bytes(pid):
    """Bytes the process passed to write system calls on files (`wchar`: the WAL, the checkpoint
    into the database, logs; sockets are written with send(2), which it does not count)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def cpu_snapshot():
    """Aggregate jiffies from /proc/stat: user nice system idle iowait irq softirq steal."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:9]
        return [int(x) for x in parts] + [0] * (8 - len(parts))
    except (OSError, ValueError):
        return None


def cpu_shares(a, b):
    """Share of all CPUs' time between two snapshots: busy, iowait, steal, idle (percent)."""
    if not a or not b:
        return None
    d = [y - x for x, y in zip(a, b)]
    total = sum(d) or 1
    user, nice, system, idle, iowait, irq, softirq, steal = d
    return {"busy": 100.0 * (user + nice + system + irq + softirq) / total, "iowait": 100.0 * iowait / total,
            "steal": 100.0 * steal / total, "idle": 100.0 * idle / total}


def other_cpu_users(exclude_pids, seconds=1.0):
    """Processes (not ours) that used noticeable CPU over a short interval: they skew the figures."""
    def sample():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) in exclude_pids:
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
                fields = rest.split()
                out[pid] = (head.split("(", 1)[1], int(fields[11]) + int(fields[12]))
            except (OSError, ValueError, IndexError):
                pass
        return out
    a = sample()
    time.sleep(seconds)
    b = sample()
    busy = []
    for pid, (name, t) in b.items():
        if pid in a:
            pct = 100.0 * (t - a[pid][1]) / CLK_TCK / seconds
            if pct >= 10:
                busy.append(f"{name}[{pid}] {pct:.0f}%")
    return busy


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def fmt(x, digits=0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


class Server:
    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=cwd)

    @property
    def pid(self):
        return self.proc.pid

    def log_offset(self):
        self.logf.flush()
        return os.path.getsize(self.log_path)

    def cpu(self):
        return proc_cpu_seconds(self.proc.pid)

    def stop(self, timeout=45):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not exit {timeout}s after SIGTERM; sending SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(ANSI.sub("", l) for l in lines[-n:])
        except OSError:
            return ""


class Client:
    """The load generator, the same for every server of the run: mailroom's own examples/loadgen
    (realistic mail, pipelining; default) or Postfix's smtp-source (its X payload only)."""

    def __init__(self, kind, path, mail, size, seed):
        self.kind, self.path, self.mail, self.size, self.seed = kind, path, mail, size, seed

    def argv(self, port, sessions, messages):
        if self.kind == "smtp-source":
            return [self.path, "-s", str(sessions), "-l", str(self.size), "-m", str(messages),
                    "-M", HELO, "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]
        return [self.path, "-s", str(sessions), "-m", str(messages), "--mix", self.mail, "-l", str(self.size),
                "--seed", str(self.seed), "-M", HELO, "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"]

    def describe(self, sessions, messages):
        if self.kind == "smtp-source":
            return (f"Postfix `smtp-source -s {sessions} -l {self.size} -m {messages}` (one message per connection, "
                    "1 recipient, no pipelining)")
        return (f"`examples/loadgen -s {sessions} -m {messages} --mix {self.mail} --seed {self.seed}` (one message "
                "per connection, 1 recipient, MAIL/RCPT/DATA pipelined, SIZE declared)")


def mail_description(args, m0):
    """The message sizes of the run, as the load generator reported them."""
    if args.mail == "x":
        return f"{args.size:,} bytes of X payload + ~250 bytes of headers"
    kinds = (m0 or {}).get("client", {}).get("kinds") or []
    n = sum(k["messages"] for k in kinds) or 1
    total = sum(k["bytes"] for k in kinds)
    parts = ", ".join(f"{k['kind']} {100 * k['messages'] / n:.1f}%" for k in kinds if k["messages"])
    return f"mean {total / n / 1024:,.1f} KB ({parts}); distinct Message-IDs, random attachment bytes"


def run_source(client, port, sessions, messages, server, workdir, label):
    """Run the load generator once; returns a dict with wall time, rate and CPU figures."""
    argv = client.argv(port, sessions, messages)
    errpath = os.path.join(workdir, "client.err")
    outpath = os.path.join(workdir, "client.out")
    srv_cpu0 = server.cpu()
    writer0 = thread_cpu_seconds(server.pid, WRITER_THREAD)
    wchar0 = proc_written_bytes(server.pid)
    off0 = server.log_offset()
    mach0 = cpu_snapshot()
    with open(errpath, "wb") as err, open(outpath, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    srv_cpu1 = server.cpu()
    writer1 = thread_cpu_seconds(server.pid, WRITER_THREAD)
    wchar1 = proc_written_bytes(server.pid)
    mach = cpu_shares(mach0, cpu_snapshot())
    with open(errpath, "rb") as f:
        errtext = f.read().decode("utf-8", "replace").strip()
    report = {}
    if client.kind == "loadgen":
        try:
            with open(outpath, "rb") as f:
                report = json.loads(f.read().decode() or "{}")
        except ValueError:
            report = {}
    rc = p.returncode
    r = {
        "label": label, "sessions": sessions, "messages": messages,
        "wall": wall, "rate": messages / wall if wall > 0 else float("nan"), "rc": rc,
        "source_cpu": ru.ru_utime + ru.ru_stime, "server_cpu": srv_cpu1 - srv_cpu0,
        "writer_cpu": writer1 - writer0,
        "written": wchar1 - wchar0 if wchar0 is not None and wchar1 is not None else None,
        "log_from": off0, "machine": mach, "argv": " ".join(argv[:-1]) + " 127.0.0.1:PORT", "stderr": errtext,
        "client": report,
    }
    status = "ok" if rc == 0 else f"FAILED (exit {rc})"
    cpu_note = (f" [CPUs busy {mach['busy']:.0f}%, steal {mach['steal']:.0f}%, iowait {mach['iowait']:.0f}%]"
                if mach else "")
    log(f"{label}: {sessions} sessions, {messages} msgs in {wall:.2f}s = {r['rate']:,.0f} msg/s {status}{cpu_note}")
    if errtext:
        log(f"  {client.kind} said: {errtext[:500]}")
    return r


def parse_transactions(log_path, start, end=None, settle=True):
    """Parse per-transaction log lines between byte offsets: latencies (ms), results, sizes."""
    if settle:  # the server may log its line just after writing the 250
        prev = -1
        for _ in range(20):
            size = os.path.getsize(log_path)
            if size == prev:
                break
            prev = size
            time.sleep(0.15)
    with open(log_path, "rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(end - start)
    lat, results, sizes, unit, batches = [], {}, [], None, []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = ANSI.sub("", raw)
        if "batch" in line and "latency_us" not in line:
            b = BATCH.search(line)  # the writer's debug line per group commit, when logged
            if b:
                batches.append((int(b.group(1)), float(b.group(2))))
                continue
        m = LAT_US.search(line)
        if m:
            lat.append(float(m.group(1)) / 1000.0)
            unit = unit or "latency_us"
        else:
            if "result=" not in line:
                continue
            m = LAT_MS.search(line)
            if not m:
                continue
            lat.append(float(m.group(1)))
            unit = unit or "ms"
        r = RESULT.search(line)
        key = r.group(1) if r else "?"
        results[key] = results.get(key, 0) + 1
        s = SIZE.search(line)
        if s:
            sizes.append(int(s.group(1)))
    lat.sort()
    return {"lat": lat, "results": results, "sizes": sizes, "field": unit, "batches": batches}


def attach_latency(r, server, end=None):
    t = parse_transactions(server.log_path, r["log_from"], end)
    r["tx"] = t
    r["logged"] = len(t["lat"])
    r["p50"] = percentile(t["lat"], 50)
    r["p90"] = percentile(t["lat"], 90)
    r["p99"] = percentile(t["lat"], 99)
    r["max"] = t["lat"][-1] if t["lat"] else float("nan")
    b = t["batches"]
    if b:
        ms = sorted(x[1] for x in b)
        r["commits"] = {"n": len(b), "msgs": sum(x[0] for x in b), "single": sum(1 for x in b if x[0] == 1),
                        "max": max(x[0] for x in b), "p50": percentile(ms, 50), "p99": percentile(ms, 99),
                        "busy": sum(ms) / 1000.0 / r["wall"] if r["wall"] else float("nan")}
    if r["logged"] != r["messages"]:
        log(f"  note: {r['logged']} transaction log lines with a latency for {r['messages']} messages "
            f"(results: {t['results']})")
    return r


# Every load-generator session comes from 127.0.0.1: lift the per-address cap (default 20) for
# the benchmark only, so it measures throughput, not the limit.
BENCH_PER_SOURCE = "max_connections_per_source = 100000  # bench: all sessions come from 127.0.0.1\n"


def make_config(template_path, out_path):
    """Copy the example config, moving every listener to a free loopback port and lifting the
    SMTP per-source connection cap."""
    ports = {}
    section = None
    out = []
    with open(template_path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            m = re.match(r"^\[\[?([A-Za-z0-9_.-]+)\]\]?", stripped)
            if m:
                section = m.group(1)
                if stripped == "[limits]":
                    out.append(line)
                    out.append(BENCH_PER_SOURCE)
                    continue
            if section == "limits" and re.match(r"^max_connections_per_source\s*=", stripped):
                continue
            if not stripped.startswith("#") and HOSTPORT.search(line):
                def repl(mm):
                    p = free_port()
                    ports.setdefault(section, []).append(p)
                    return f'"127.0.0.1:{p}"'
                code, sep, comment = line.partition(" #")
                line = HOSTPORT.sub(repl, code) + sep + comment
            out.append(line)
    with open(out_path, "w", encoding="utf-8") as f:
        f.writelines(out)
    return ports


def config_value(path, section, key):
    try:
        import tomllib  # Python 3.11+
        with open(path, "rb") as f:
            return tomllib.load(f).get(section, {}).get(key)
    except Exception:
        return None


def scan_for_cleartext(data_dir, needles, skip):
    """Return {file: [needle,...]} for files under data_dir that contain a needle in clear."""
    hits = {}
    for root, _, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            if os.path.abspath(path) in skip:
                continue
            try:
                with open(path, "rb") as f:
                    content = f.read()
            except OSError:
                continue
            found = [n.decode() if len(n) < 40 else f"{n[:12].decode()}...({len(n)} bytes)"
                     for n in needles if n in content]
            if found:
                hits[os.path.relpath(path, data_dir)] = found
    return hits


def main():
    ap = argparse.ArgumentParser(description="mailroom vs smtp-sink ingest benchmark (see bench/README.md)")
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--messages", "-m", type=int, default=20000, help="messages per measured pass (default 20000)")
    ap.add_argument("--sessions", "-s", type=int, default=32, help="parallel sessions at peak (default 32)")
    ap.add_argument("--mail", choices=["10k", "full", "x"], default="10k",
                    help="the load: 10k = the realistic ~10 KB mix (default), full = the mix with 100 KB and 1 MB "
                         "attachments, x = smtp-source's payload (lines of X, --size bytes)")
    ap.add_argument("--client", choices=["loadgen", "smtp-source"], default="loadgen",
                    help="load generator (default examples/loadgen; smtp-source only sends --mail x)")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    ap.add_argument("--size", "-l", type=int, default=10240, help="payload bytes per message of --mail x (default 10240)")
    ap.add_argument("--warmup", type=int, default=1000, help="unmeasured messages sent to each server first (default 1000)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate sink/mailroom passes this many times (default 1)")
    ap.add_argument("--half-sessions", type=int, default=0,
                    help="sessions for the half-load pass (default: calibrated to ~50%% of mailroom's peak)")
    ap.add_argument("--half-messages", type=int, default=0, help="messages in the half-load pass (default messages/2)")
    ap.add_argument("--no-half", action="store_true", help="skip the half-load pass")
    ap.add_argument("--binary", help="mailroom binary (default target/release/mailroom)")
    ap.add_argument("--config-template", help="config to copy (default deploy/mailroom.toml)")
    ap.add_argument("--data-root", help="where the temp data dir goes (default target/bench-data; must be a real disk)")
    ap.add_argument("--out", help="markdown results file (default bench/results/latest.md)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir, config and server log")
    args = ap.parse_args()
    if args.rounds < 1 or args.messages < 1 or args.sessions < 1:
        die("--rounds, --messages and --sessions must be positive")

    repo = os.path.abspath(args.repo)
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    binary = args.binary or os.path.join(target_dir, "release", "mailroom")
    template = args.config_template or os.path.join(repo, "deploy", "mailroom.toml")
    data_root = args.data_root or os.path.join(target_dir, "bench-data")
    out_md = args.out or os.path.join(repo, "bench", "results", "latest.md")
    if not os.access(binary, os.X_OK):
        die(f"{binary} not found; run `cargo build --release` (bench/run.sh does)")
    if not os.path.exists(template):
        die(f"config template {template} not found")
    smtp_sink = which("smtp-sink")
    if args.client == "smtp-source":
        if args.mail != "x":
            die("smtp-source can only send its own payload: use --mail x with --client smtp-source")
        client = Client("smtp-source", which("smtp-source"), "x", args.size, args.seed)
    else:
        loadgen = os.path.join(target_dir, "release", "examples", "loadgen")
        if not os.access(loadgen, os.X_OK):
            die(f"{loadgen} not found; run `cargo build --release --example loadgen` (bench/run.sh does)")
        client = Client("loadgen", loadgen, args.mail, args.size, args.seed)
    target_ratio = 0.8 if args.mail == "10k" else 0.7

    os.makedirs(data_root, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix=dt.datetime.now().strftime("run-%Y%m%d-%H%M%S-"), dir=data_root)
    data_dir = os.path.join(run_dir, "data")
    os.makedirs(data_dir, mode=0o700)  # mailroom refuses a data dir others can read
    fstype = fs_type(data_dir)
    if fstype in ("tmpfs", "ramfs"):
        log(f"WARNING: {data_dir} is on {fstype}: fsync is free there, durability figures are meaningless;"
            " pass --data-root on a real disk")
    config = os.path.join(run_dir, "mailroom.toml")
    ports = make_config(template, config)
    smtp_ports = ports.get("smtp") or []
    if not smtp_ports:
        die(f"no [smtp] listen address found in {template}")
    mr_port = smtp_ports[0]
    sink_port = free_port()
    max_batch = config_value(config, "storage", "max_batch")
    log(f"run dir {run_dir} ({fstype}); mailroom SMTP on 127.0.0.1:{mr_port}, smtp-sink on 127.0.0.1:{sink_port}")

    ok = True
    problems = []
    sink = mr = None
    rounds = []
    half = None
    calib = []
    try:
        # --- servers -------------------------------------------------------------------------
        sink_argv = [smtp_sink]
        if os.geteuid() == 0:
            sink_argv += ["-u", "nobody"]
        sink_argv += [f"127.0.0.1:{sink_port}", "1024"]
        sink = Server("smtp-sink", sink_argv, os.path.join(run_dir, "smtp-sink.log"), cwd=run_dir)
        err = wait_banner(sink_port, sink.proc, 15, "smtp-sink")
        if err:
            die(err + "\n" + sink.tail())

        env = dict(os.environ)
        # info: one line per transaction (latency_us=...); the store's debug line per group commit
        # ("batch messages=N ms=T") adds batch sizes and commit times to the report when present.
        env["RUST_LOG"] = os.environ.get("BENCH_RUST_LOG", "info,mailroom::store=debug")
        env["NO_COLOR"] = "1"
        env.pop("RUST_BACKTRACE", None)
        mr_argv = [binary, "serve", "--data-dir", data_dir, "--config", config]
        mr = Server("mailroom", mr_argv, os.path.join(run_dir, "mailroom.log"), env=env, cwd=run_dir)
        err = wait_banner(mr_port, mr.proc, 60, "mailroom")
        if err:
            die(err + "\n--- mailroom log tail ---\n" + mr.tail())
        lj = os.path.join(data_dir, "listeners.json")
        if os.path.exists(lj):
            try:
                with open(lj) as f:
                    listed = json.load(f).get("smtp", [])
                if f"127.0.0.1:{mr_port}" not in listed:
                    problems.append(f"listeners.json lists smtp {listed}, expected 127.0.0.1:{mr_port}")
            except (OSError, ValueError) as e:
                problems.append(f"listeners.json unreadable: {e}")
        else:
            problems.append("DATA_DIR/listeners.json was not written (docs/smtp-replies.md CLI contract)")

        busy_others = other_cpu_users({os.getpid(), sink.pid, mr.pid})
        if busy_others:
            problems.append("other processes were using CPU when the bench started (figures are skewed): "
                            + ", ".join(busy_others))
            log("WARNING: other processes are using CPU: " + ", ".join(busy_others))

        total_sent = 0
        # --- warm-up (not measured) ---------------------------------------------------------------
        if args.warmup > 0:
            w = run_source(client, sink_port, args.sessions, args.warmup, sink, run_dir, "warm-up smtp-sink")
            w = run_source(client, mr_port, args.sessions, args.warmup, mr, run_dir, "warm-up mailroom")
            total_sent += args.warmup if w["rc"] == 0 else 0
            if w["rc"] != 0:
                ok = False
                problems.append(f"warm-up against mailroom failed: {w['stderr'][:300]}")

        # --- peak passes ----------------------------------------------------------------------------
        for i in range(args.rounds):
            tag = f" (round {i + 1}/{args.rounds})" if args.rounds > 1 else ""
            s = run_source(client, sink_port, args.sessions, args.messages, sink, run_dir, "smtp-sink" + tag)
            m = run_source(client, mr_port, args.sessions, args.messages, mr, run_dir, "mailroom full load" + tag)
            attach_latency(m, mr)
            total_sent += args.messages if m["rc"] == 0 else 0
            if s["rc"] != 0:
                ok = False
                problems.append(f"{client.kind} against smtp-sink failed: {s['stderr'][:300]}")
            if m["rc"] != 0:
                ok = False
                problems.append(f"{client.kind} against mailroom failed (exit {m['rc']}): {m['stderr'][:300]}")
            rounds.append((s, m))
            if mr.proc.poll() is not None:
                die(f"mailroom exited (status {mr.proc.returncode}) during the run\n" + mr.tail())

        peak = sorted(m["rate"] for _, m in rounds)[len(rounds) // 2]

        # --- half load -----------------------------------------------------------------------------
        if not args.no_half and all(m["rc"] == 0 for _, m in rounds):
            target = peak / 2
            hs = args.half_sessions
            if hs <= 0:
                trial_n = max(500, min(3000, args.messages // 10))
                best = None
                s_try = 1
                while s_try < args.sessions:
                    t = run_source(client, mr_port, s_try, trial_n, mr, run_dir,
                                   f"calibrate half load ({s_try} sessions)")
                    total_sent += trial_n if t["rc"] == 0 else 0
                    calib.append(t)
                    if t["rc"] != 0:
                        break
                    dist = abs(math.log(t["rate"] / target))
                    if best is None or dist < best[0]:
                        best = (dist, s_try)
                    if t["rate"] >= target:
                        break
                    s_try *= 2
                hs = best[1] if best else max(1, args.sessions // 4)
            hn = args.half_messages or max(1000, args.messages // 2)
            half = run_source(client, mr_port, hs, hn, mr, run_dir, "mailroom half load")
            attach_latency(half, mr)
            total_sent += hn if half["rc"] == 0 else 0
            if half["rc"] != 0:
                ok = False
                problems.append(f"half-load pass failed: {half['stderr'][:300]}")

        # --- stop and verify -----------------------------------------------------------------------
        rss_peak = proc_status(mr.pid, "VmHWM")
        threads = proc_status(mr.pid, "Threads")
        sink.stop(5)
        sink = None
        t0 = time.monotonic()
        rc = mr.stop()
        stop_s = time.monotonic() - t0
        if rc not in (0, None):
            problems.append(f"mailroom exited with status {rc} after SIGTERM (took {stop_s:.1f}s)")
        if os.path.exists(os.path.join(data_dir, "listeners.json")):
            problems.append("listeners.json still present after shutdown")

        all_tx = parse_transactions(mr.log_path, 0, settle=False)
        lst = subprocess.run([binary, "message", "list", "--data-dir", data_dir, "--config", config, "--json"],
                             capture_output=True, timeout=600, env=env)
        stored, dups, bad_json, first_number = 0, 0, 0, None
        if lst.returncode != 0:
            ok = False
            problems.append(f"`mailroom message list --json` exited {lst.returncode}: "
                            f"{lst.stderr.decode('utf-8', 'replace')[-400:]}")
        for line in lst.stdout.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            stored += 1
            try:
                obj = json.loads(line)
                dups += int(obj.get("duplicate_count") or 0)
                first_number = first_number or obj.get("number")
            except (ValueError, AttributeError, TypeError):
                bad_json += 1
        readback = "not tried"
        if first_number:
            show = subprocess.run([binary, "message", "show", str(first_number), "--data-dir", data_dir,
                                   "--config", config], capture_output=True, timeout=60, env=env)
            if show.returncode == 0 and PAYLOAD_MARK in show.stdout:
                readback = f"{first_number} decrypts and contains the payload"
            else:
                ok = False
                readback = f"FAILED for {first_number} (exit {show.returncode})"
                problems.append(f"`mailroom message show {first_number}` exited {show.returncode} or lacks the "
                                f"payload: {show.stderr.decode('utf-8', 'replace')[-300:]}")
        if bad_json:
            problems.append(f"{bad_json} lines of `message list --json` are not JSON objects")
        any_failed = any(r["rc"] != 0 for pair in rounds for r in pair) or (half and half["rc"] != 0) \
            or any(c["rc"] != 0 for c in calib)
        if any_failed:
            accepted = sum(v for k, v in parse_transactions(mr.log_path, 0, settle=False)["results"].items()
                           if re.match(r"(?i)(ok|registered|accepted|stored|duplicate|250)", k))
            problems.append(f"a pass failed, so the number sent with 250 is taken from the server log "
                            f"({accepted} accepted results) instead of the load generator's counts ({total_sent})")
            total_sent = accepted
        verify = {"sent": total_sent, "stored": stored, "dups": dups, "logged": len(all_tx["lat"]),
                  "results": all_tx["results"]}
        if stored + dups != total_sent:
            ok = False
            problems.append(f"stored {stored} registrations (+{dups} duplicate retries) but the load generator "
                            f"delivered {total_sent} messages with 250")
        if dups:
            problems.append(f"{dups} messages were answered as duplicates of an earlier one (unexpected: "
                            "every message has its own Message-ID)")

        # durability / encryption checks on the files
        db_name = config_value(config, "storage", "database") or "mailroom.db"
        db_path = db_name if os.path.isabs(db_name) else os.path.join(data_dir, db_name)
        journal = "?"
        db_bytes = 0
        if os.path.exists(db_path):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db_path + suffix):
                    db_bytes += os.path.getsize(db_path + suffix)
            try:
                con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
                journal = con.execute("PRAGMA journal_mode").fetchone()[0]
                con.close()
            except sqlite3.Error as e:
                journal = f"unreadable ({e})"
        else:
            problems.append(f"database {db_path} not found")
        if journal != "wal":
            problems.append(f"journal_mode of {db_name} is {journal!r}, expected 'wal'")
        key_file = config_value(config, "storage", "master_key_file") or "master.key"
        key_path = key_file if os.path.isabs(key_file) else os.path.join(data_dir, key_file)
        clear = scan_for_cleartext(data_dir, [PAYLOAD_MARK, SENDER.encode()],
                                   skip={os.path.abspath(key_path)})
        if clear:
            ok = False
            problems.append(f"clear text found in the data dir: {clear}")
        with open(mr.log_path, "rb") as f:
            if SENDER.encode() in f.read():
                problems.append(f"the sender address {SENDER} appears in the server log at level info")
        sync_lines = []
        with open(mr.log_path, "rb") as f:
            for raw in f:
                l = ANSI.sub("", raw.decode("utf-8", "replace")).strip()
                if re.search(r"synchronous|journal|group.?commit|fsync", l, re.I) and "latency_us" not in l:
                    sync_lines.append(l[:200])
    finally:
        if sink is not None:
            sink.stop(5)
        if mr is not None and mr.proc.poll() is None:
            mr.stop()

    # --- report --------------------------------------------------------------------------------
    # the round with the median mailroom/sink ratio is the headline (both of its figures are shown)
    ratios = [m["rate"] / s["rate"] for s, m in rounds]
    mid = sorted(range(len(ratios)), key=lambda i: ratios[i])[len(ratios) // 2]
    s0, m0 = rounds[mid]
    sink_rate, ratio = s0["rate"], ratios[mid]
    half_p99 = half["p99"] if half else float("nan")

    def per_msg_us(cpu, n):
        return cpu / n * 1e6 if n else float("nan")

    rows = []
    for i, (s, m) in enumerate(rounds):
        tag = f" #{i + 1}" if len(rounds) > 1 else ""
        rows.append(("smtp-sink (discard)" + tag, s, None))
        rows.append(("mailroom, full load" + tag, m, m))
    if half:
        rows.append(("mailroom, half load", half, half))

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "uncommitted"
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "src", "Cargo.toml"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            commit += " (+ local changes)"
    except OSError:
        commit = "?"
    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    md = []
    md.append("# mailroom ingest benchmark")
    md.append("")
    md.append(f"{now}; mailroom {commit}; {os.cpu_count()} CPUs ({cpu_model}), Linux {platform.release()}; "
              f"data dir on {fstype}. The load generator and the server under test share the same CPUs.")
    md.append("")
    md.append("| setting | value |")
    md.append("|---|---|")
    md.append(f"| load generator | {client.describe(args.sessions, args.messages)} |")
    md.append(f"| message size | {mail_description(args, m0)}"
              + (f" (server saw {min(m0['tx']['sizes']):,}–{max(m0['tx']['sizes']):,} bytes)" if m0 and m0.get("tx", {}).get("sizes") else "")
              + " |")
    md.append(f"| sessions (peak) | {args.sessions} |")
    md.append(f"| messages per pass | {args.messages:,} (after {args.warmup:,} unmeasured warm-up) |")
    md.append(f"| sync policy | SQLite WAL (journal_mode on disk: {journal}), synchronous=FULL (server default), "
              f"group commit ≤ {max_batch if max_batch else '?'} messages per transaction |")
    md.append("| encryption | on (server default: per-message data key, AEAD, wrapped by the master key) |")
    md.append("| TLS | off (smtp-source has no STARTTLS; loadgen does not use it, for the same load on both servers) |")
    md.append("")
    md.append("| pass | sessions | messages | msg/s | p50 ms | p99 ms | max ms | server CPU µs/msg "
              "| of which writer | written KB/msg | client CPU µs/msg | client p99 ms | machine busy / steal / iowait % |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r, lat in rows:
        md.append(f"| {name} | {r['sessions']} | {r['messages']:,} | {fmt(r['rate'])} | "
                  f"{fmt(lat['p50'], 2) if lat else '–'} | {fmt(lat['p99'], 2) if lat else '–'} | "
                  f"{fmt(lat['max'], 1) if lat else '–'} | {fmt(per_msg_us(r['server_cpu'], r['messages']))} | "
                  f"{fmt(per_msg_us(r['writer_cpu'], r['messages'])) if lat else '–'} | "
                  f"{fmt(r['written'] / r['messages'] / 1024, 1) if lat and r.get('written') is not None else '–'} | "
                  f"{fmt(per_msg_us(r['source_cpu'], r['messages']))} | "
                  f"{fmt(r['client'].get('latency_ms', {}).get('p99'), 2) if r.get('client') else '–'} | "
                  + (f"{r['machine']['busy']:.0f} / {r['machine']['steal']:.0f} / {r['machine']['iowait']:.0f} |"
                     if r.get("machine") else "n/a |"))
    md.append("")
    verdict = lambda good: "PASS" if good else "FAIL"
    md.append("| target | measured | |")
    md.append("|---|---|---|")
    md.append(f"| mailroom / smtp-sink ≥ {target_ratio:.2f} ({args.mail} mail) | **{ratio:.2f}** ({fmt(m0['rate'])} / {fmt(sink_rate)} msg/s"
              + (f"; rounds: {', '.join(f'{x:.2f}' for x in ratios)}" if len(ratios) > 1 else "")
              + f") | {verdict(ratio >= target_ratio)} |")
    if half:
        md.append(f"| p99 end-of-data→250 at half load ≤ 20 ms | **{fmt(half_p99, 2)} ms** at {fmt(half['rate'])} msg/s "
                  f"= {half['rate'] / peak * 100:.0f}% of peak ({half['sessions']} sessions) | "
                  f"{verdict(half_p99 <= 20)} |")
    md.append(f"| stored = accepted | {verify['stored']:,} stored + {verify['dups']:,} duplicates vs "
              f"{verify['sent']:,} sent with 250; read-back: {readback} | "
              f"{verdict(verify['stored'] + verify['dups'] == verify['sent'])} |")
    md.append("")
    md.append(f"mailroom peak RSS {rss_peak}, {threads} threads; database + WAL {db_bytes / 1e6:,.1f} MB "
              f"for {verify['stored']:,} messages; shutdown after SIGTERM took {stop_s:.1f}s. "
              f"Per-transaction log results: {verify['results']}.")
    commit_rows = [(name, r["commits"]) for name, r, lat in rows if lat and r.get("commits")]
    if commit_rows:
        md.append("")
        md.append("Group commit (from the server's debug line per batch): "
                  + "; ".join(f"{name}: {c['n']:,} commits, {c['msgs'] / c['n']:.1f} msgs/commit on average "
                              f"(max {c['max']}, {c['single']:,} commits of 1), commit time p50 {c['p50']:.1f} ms / "
                              f"p99 {c['p99']:.1f} ms, writer busy {c['busy'] * 100:.0f}% of the pass"
                              for name, c in commit_rows) + ".")
    if calib:
        md.append("")
        md.append("Half-load calibration (closed loop, fewer sessions): "
                  + ", ".join(f"{c['sessions']} sessions → {fmt(c['rate'])} msg/s" for c in calib) + ".")
    if m0 and m0["tx"]["field"] is None:
        problems.append("no per-transaction latency found in the server log (expected a `latency_us=` field)")
    if sync_lines:
        md.append("")
        md.append("Server log about storage: " + " / ".join(f"`{l}`" for l in sync_lines[:3]))
    if problems:
        md.append("")
        md.append("Problems seen:")
        for p in problems:
            md.append(f"- {p}")
    text = "\n".join(md) + "\n"
    sys.stderr.flush()
    return finish(text, out_md, repo, run_dir, args.keep, ok, "config, server log, data dir")


def finish(text, out_md, repo, run_dir, keep, ok, kept_what):
    """Prints the results, writes them to out_md, keeps run_dir when asked or when something
    failed (else removes it); the exit status."""
    print()
    print(text, flush=True)
    os.makedirs(os.path.dirname(out_md), exist_ok=True)
    with open(out_md, "w", encoding="utf-8") as f:
        f.write(text)
    log(f"results written to {os.path.relpath(out_md, repo)}")
    if keep or not ok:
        log(f"kept {run_dir} ({kept_what})")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
