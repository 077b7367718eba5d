#!/usr/bin/env bash
# The one test command of mailroom (README, and .ci/run calls it). On a fresh Debian machine with
# rustup's cargo: installs the real peers the tests talk to (Postfix's smtp-source/smtp-sink,
# swaks, sqlite3, mbsync, curl, python3, chromium, PostgreSQL, Node and the npm packages of the
# browser tests), checks formatting and clippy, then runs every test on SQLite and again on PostgreSQL.
# Idempotent; run it as root (or with sudo). Extra arguments go to both `cargo test` runs (e.g. a filter).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ci_start=$SECONDS
section() {
    printf '\n=== [%4ds] %s ===\n' "$((SECONDS - ci_start))" "$*"
}

# Debian packages the tests need. postfix provides /usr/sbin/smtp-source and /usr/sbin/smtp-sink, and
# tests/postfix_relay.rs starts instances of its own (postfix -c TMPDIR) as its `postfix` user;
# libnet-ssleay-perl gives swaks its STARTTLS support; isync (mbsync) and curl are IMAP clients
# for tests/imap.rs, curl is also the HTTP client of tests/http_api.rs; python3 runs tests/py.
# tests/browser.rs drives Debian's chromium from Node (playwright-core, from npm below);
# fonts-liberation gives it Latin text (a recommend we do not install) and fonts-wqy-microhei
# Chinese text in screenshots (5 MB installed; fonts-noto-cjk would be 91 MB).
# postgresql gives initdb, pg_ctl, pg_basebackup and psql in /usr/lib/postgresql/N/bin: the tests
# start throwaway clusters of their own (tests/common/pg.rs); the packaged service is never
# started (the policy-rc.d below refuses it) and never used.
# systemd gives systemd-analyze (scripts/deb-test.sh verifies the packaged unit offline; no systemd
# runs), dpkg-dev gives dpkg-shlibdeps, with which cargo-deb computes the package's library dependencies.
# Node itself (>= 20, with npm) is not installed here: Debian 12's nodejs is 18, too old for
# playwright-core, and these machines carry Node 20 from NodeSource, which Debian's npm conflicts with.
PACKAGES=(postfix swaks libnet-ssleay-perl sqlite3 ca-certificates isync curl python3 python3-venv
    chromium fonts-liberation fonts-wqy-microhei postgresql systemd dpkg-dev)

section "environment"
if [[ $EUID -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    SUDO=()
fi
echo "user: $(id -un) (uid $EUID)"
[[ -r /etc/debian_version ]] && echo "debian: $(cat /etc/debian_version)"
echo "cpus: $(nproc)"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found (install rustup's toolchain first)" >&2; exit 1; }
cargo --version
rustc --version
python3 --version 2>/dev/null || echo "python3: not yet installed"
pg_version() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    if [[ -n $bin && -x $bin/postgres ]]; then "$bin/postgres" --version; else echo "postgresql: not yet installed"; fi
}
pg_version

section "apt-get install ${PACKAGES[*]}"
if [[ $EUID -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "not root and no sudo: cannot install ${missing[*]}" >&2
        exit 1
    fi
    echo "not root and no sudo, but all packages are already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    # Postfix is only needed for its test programs: no configuration, and no daemon start
    # (a temporary policy-rc.d makes invoke-rc.d refuse to start services during the install).
    echo "postfix postfix/main_mailer_type select No configuration" | "${SUDO[@]}" debconf-set-selections
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup_policy() {
        if ((created_policy)); then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi
    }
    trap cleanup_policy EXIT
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}"
    cleanup_policy
    created_policy=0
fi
for tool in /usr/sbin/smtp-source /usr/sbin/smtp-sink; do
    [[ -x $tool ]] || { echo "$tool missing after install" >&2; exit 1; }
done
echo "swaks: $(swaks --version 2>&1 | head -n1)"
echo "sqlite3: $(sqlite3 --version | cut -d' ' -f1)"
pg_version

# schemathesis (PyPI) for tests/openapi_fuzz.rs, in a venv of its own under target/.
section "schemathesis"
if [[ ! -x target/schemathesis-venv/bin/schemathesis ]]; then
    python3 -m venv target/schemathesis-venv
    target/schemathesis-venv/bin/pip install -q schemathesis==4.32.5
fi
target/schemathesis-venv/bin/schemathesis --version

# playwright-core and @axe-core/playwright for tests/browser.rs, exactly as package-lock.json
# pins them. They never download a browser (the tests use /usr/bin/chromium) and run no install
# scripts; `npm ci` replaces node_modules/, so a second run ends in the same state.
section "npm ci"
command -v npm >/dev/null 2>&1 || { echo "node and npm (Node >= 20) are needed for tests/browser.rs" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || { echo "Node $(node --version) is too old: playwright-core needs >= 20" >&2; exit 1; }
echo "node: $(node --version), npm: $(npm --version)"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund
/usr/bin/chromium --version

# One debug profile for clippy and the tests, lockfile respected.
section "cargo fmt --check"
cargo fmt --check
section "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings
section "cargo test --locked (SQLite)"
cargo test --locked "$@"
# The integration tests again with every test server on PostgreSQL (tests/common/engine.rs: a
# fresh database per server in one throwaway cluster per test binary). The unit tests, doctests
# and tests/fuzz_corpus.rs do not use the engine under test: they ran above, once. Arguments that
# choose targets themselves (e.g. `--test imap`) replace the `--test '*'`.
pg_targets=(--test '*')
for arg in "$@"; do
    [[ $arg == -- ]] && break
    case $arg in
        --test | --test=* | --lib | --doc | --bins | --bin | --bin=* | --tests | --examples | --example | --example=* | --all-targets) pg_targets=() ;;
    esac
done
section "MAILROOM_TEST_DATABASE=postgres cargo test --locked ${pg_targets[*]} $* (PostgreSQL)"
MAILROOM_TEST_DATABASE=postgres cargo test --locked "${pg_targets[@]}" "$@"

# The library's own PostgreSQL tests (the engines return the same rows; a listing page reads about
# a page of rows in EXPLAIN ANALYZE) are #[ignore]d without MAILROOM_TEST_PG_URL: a unit test cannot
# use tests/common/pg.rs, so they get a throwaway cluster here, made the same way (initdb into a
# temp dir as the postgres user, pg_ctl on a free loopback port with its socket in that dir).
section "cargo test --locked --lib -- --ignored engines_agree (PostgreSQL)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
as_pg=()
[[ $EUID -eq 0 ]] && as_pg=(runuser -u postgres --)
pg_dir=$(mktemp -d)
[[ $EUID -eq 0 ]] && chown postgres "$pg_dir"
pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync --encoding=UTF8 --locale=C >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
stop_pg() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null || true; rm -rf "$pg_dir"; }
trap stop_pg EXIT
MAILROOM_TEST_PG_URL="postgres://postgres@127.0.0.1:$pg_port/postgres" cargo test --locked --lib -- --ignored engines_agree
stop_pg
trap - EXIT

# The Debian package from the debug binary above: dpkg -i, config check, user and modes,
# systemd-analyze verify and security, dpkg --purge (README "Installing it").
section "scripts/deb-test.sh (Debian package)"
bash scripts/deb-test.sh

section "done in $((SECONDS - ci_start))s"
