"""A throwaway PostgreSQL cluster for bench/pg.py (the same commands as tests/common/pg.rs).

initdb into a directory of its own, pg_ctl on a free loopback port with the socket in that
directory, durability settings left ON (fsync, synchronous_commit: this is a durability
benchmark), stopped and removed at the end. As root every PostgreSQL program runs as the
`postgres` user, which PostgreSQL requires. Standard library only.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time

from bench import CLK_TCK, free_port, log

SUPERUSER = "postgres"


def pg_bin_dir():
    """The newest /usr/lib/postgresql/N/bin (Debian), else the directory of initdb on PATH."""
    base = "/usr/lib/postgresql"
    versions = []
    if os.path.isdir(base):
        for name in os.listdir(base):
            if name.isdigit() and os.access(os.path.join(base, name, "bin", "initdb"), os.X_OK):
                versions.append((int(name), os.path.join(base, name, "bin")))
    if versions:
        return max(versions)[1]
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def tree_cpu_seconds(root_pid):
    """CPU (user + system) of a process, of its live children and of its children that exited
    and were reaped (cutime + cstime): the postmaster reaps every backend, so the sum over a
    pass counts connections that came and went too."""
    total = 0.0
    try:
        with open(f"/proc/{root_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == root_pid:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


class PgCluster:
    def __init__(self, parent):
        self.bin = pg_bin_dir()
        if not self.bin:
            raise RuntimeError("PostgreSQL not found (apt-get install postgresql)")
        self.as_root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=parent)
        if self.as_root:
            pw = pwd.getpwnam(SUPERUSER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.port = None
        self.running = False

    def _run(self, program, args, check=True):
        argv = [os.path.join(self.bin, program)] + list(args)
        if self.as_root:
            argv = ["runuser", "-u", SUPERUSER, "--"] + argv
        out = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}\n"
                               + self.log_tail())
        return out

    def start(self):
        # --no-sync only skips flushing initdb's own files; the server runs with fsync on.
        self._run("initdb", ["-D", self.data, "-U", SUPERUSER, "-A", "trust", "--no-sync",
                             "--encoding=UTF8", "--locale=C"])
        for _ in range(5):
            self.port = free_port()
            options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                       "-c fsync=on -c synchronous_commit=on -c full_page_writes=on")
            out = self._run("pg_ctl", ["-D", self.data, "-l", self.log_path, "-o", options, "-w", "start"],
                            check=False)
            if out.returncode == 0:
                self.running = True
                return self
            if "could not bind" not in self.log_tail():
                raise RuntimeError(f"pg_ctl start failed: {out.stderr.strip()}\n{self.log_tail()}")
        raise RuntimeError("pg_ctl start found no free port in 5 tries")

    def url(self, db):
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def sql(self, db, statement):
        """Runs one statement with psql; its output unaligned, without headers."""
        out = self._run("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                                 "-p", str(self.port), "-U", SUPERUSER, "-d", db, "-c", statement])
        return out.stdout.strip()

    def create_database(self, name):
        self.sql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def settings(self):
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "full_page_writes",
                 "shared_buffers", "max_connections")
        rows = self.sql("postgres", "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ("
                        + ", ".join(f"'{n}'" for n in names) + ") ORDER BY name")
        return dict(r.split("|", 1) for r in rows.splitlines())

    def xact_commit(self, db, settle=1.2):
        """Committed transactions of database `db` so far. Backends publish their counters at
        most once a second when idle (PostgreSQL 15), so wait that long first."""
        if settle:
            time.sleep(settle)
        return int(self.sql("postgres", f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'") or 0)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline().strip())

    def cpu(self):
        """CPU seconds of the whole server so far (postmaster, backends, background processes)."""
        try:
            return tree_cpu_seconds(self.postmaster_pid())
        except (OSError, ValueError):
            return float("nan")

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, remove=True):
        if self.running:
            out = self._run("pg_ctl", ["-D", self.data, "-m", "fast", "-w", "stop"], check=False)
            if out.returncode != 0:
                log(f"pg_ctl stop failed: {out.stderr.strip()}")
                self._run("pg_ctl", ["-D", self.data, "-m", "immediate", "-w", "stop"], check=False)
            self.running = False
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
