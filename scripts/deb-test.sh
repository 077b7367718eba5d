#!/usr/bin/env bash
# The Debian package, end to end (README "Installing it"; scripts/test.sh runs it after the cargo
# tests): builds the .deb with cargo-deb from the DEBUG binary the tests already built (CI builds
# no release binary), installs it with dpkg, checks what it installed (binary, config check as the
# service user, user, modes, conffile), runs the installed service as the unit would (setpriv: user
# mailroom, only CAP_NET_BIND_SERVICE, a port below 1024) and sends it a message, verifies the
# systemd unit offline and prints its exposure score, then removes and purges it (configuration
# gone, data dir with data kept).
#
# Run as root. Safe on a developer's machine: it refuses to start when a mailroom package,
# /usr/bin/mailroom, /etc/mailroom or /var/lib/mailroom is already there, and on any exit it purges
# the package and removes the data dir and the `mailroom` user if it created them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_DEB_VERSION=3.8.0
# systemd-analyze security's exposure (0–10) the unit must stay at or below (README: 1.5).
MAX_EXPOSURE=2.0

fail() {
    echo "deb-test: FAIL: $*" >&2
    exit 1
}
step() { printf -- '--- deb-test: %s\n' "$*"; }

[[ $EUID -eq 0 ]] || fail "run as root: it installs the package with dpkg -i"
for tool in dpkg dpkg-deb systemd-analyze adduser runuser; do
    command -v "$tool" >/dev/null || fail "$tool not found (scripts/test.sh installs what this needs)"
done
if dpkg-query -W -f='${db:Status-Status}' mailroom 2>/dev/null | grep -qv '^not-installed$'; then
    fail "dpkg already knows a mailroom package: not touching this machine's installation"
fi
for path in /usr/bin/mailroom /etc/mailroom /var/lib/mailroom /usr/lib/systemd/system/mailroom.service /lib/systemd/system/mailroom.service; do
    [[ ! -e $path ]] || fail "$path exists: not touching this machine's installation"
done
user_existed=0
getent passwd mailroom >/dev/null && user_existed=1

serve_pid=
cleanup() {
    local rc=$?
    if [[ -n $serve_pid ]]; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -f "/tmp/mailroom-deb-test-$$.toml" "/tmp/mailroom-deb-test-$$.log"
    if dpkg-query -W -f='${db:Status-Status}' mailroom 2>/dev/null | grep -qv '^not-installed$'; then
        dpkg --purge mailroom >/dev/null 2>&1 || echo "deb-test: cleanup: dpkg --purge mailroom failed" >&2
    fi
    rm -rf /var/lib/mailroom /etc/mailroom
    if ((!user_existed)) && getent passwd mailroom >/dev/null; then
        userdel mailroom || echo "deb-test: cleanup: userdel mailroom failed" >&2
    fi
    if ((!user_existed)) && getent group mailroom >/dev/null; then
        groupdel mailroom || echo "deb-test: cleanup: groupdel mailroom failed" >&2
    fi
    ((rc == 0)) || echo "deb-test: FAILED (exit $rc)" >&2
}
trap cleanup EXIT

step "cargo-deb $CARGO_DEB_VERSION"
if [[ "$(cargo deb --version 2>/dev/null || true)" != *"$CARGO_DEB_VERSION"* ]]; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
cargo deb --version

step "the debug binary (built by cargo test already; a no-op then)"
cargo build --locked --bin mailroom

step "cargo deb --no-build --profile dev --strip --fast"
rm -rf target/debian
# Debug profile: the binary the tests ran, stripped into a copy (target/debug stays as it is), and
# gzip (--fast): xz would take CI minutes. The README's command for real use, `cargo deb`, builds release.
cargo deb --no-build --profile dev --strip --fast --output target/debian/
deb=$(ls target/debian/mailroom_*.deb)
[[ $(wc -l <<<"$deb") -eq 1 ]] || fail "expected one .deb in target/debian: $deb"
echo "$deb: $(du -h "$deb" | cut -f1)"
contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/mailroom ./etc/mailroom/mailroom.toml ./usr/lib/systemd/system/mailroom.service \
    ./usr/share/doc/mailroom/README.md ./usr/share/doc/mailroom/examples/mailroom.toml \
    ./usr/share/doc/mailroom/examples/postfix/main.cf ./usr/share/doc/mailroom/examples/postfix/master.cf \
    ./usr/share/doc/mailroom/examples/postfix/mailroom_transport; do
    grep -q " $path\$" <<<"$contents" || fail "$path missing from the package:"$'\n'"$contents"
done
dpkg-deb --info "$deb" control | grep -q '^Depends:.*adduser' || fail "control does not depend on adduser"
[[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" == "/etc/mailroom/mailroom.toml" ]] ||
    fail "conffiles is not exactly /etc/mailroom/mailroom.toml"

# cargo-deb puts the unit's deb-systemd-helper snippet where the scripts say #DEBHELPER#, once.
[[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | grep -c 'deb-systemd-helper update-state')" == 1 ]] ||
    fail "postinst does not have the systemd snippet exactly once"

step "dpkg -i"
dpkg -i "$deb"
[[ "$(dpkg-query -W -f='${db:Status-Status}' mailroom)" == "installed" ]] || fail "mailroom is not installed after dpkg -i"

step "the installed binary"
help=$(/usr/bin/mailroom --help)
grep -q 'serve' <<<"$help" || fail "mailroom --help does not list serve:"$'\n'"$help"
# The service user must be able to read its config (0640 root:mailroom).
check=$(runuser -u mailroom -- /usr/bin/mailroom config check --config /etc/mailroom/mailroom.toml)
echo "$check"
[[ $check == "/etc/mailroom/mailroom.toml: OK ("* ]] || fail "config check as mailroom: $check"
# A broken copy is refused naming file, line and key.
broken=$(mktemp)
sed 's/^domains = .*/domains = 42/' /etc/mailroom/mailroom.toml >"$broken"
if out=$(/usr/bin/mailroom config check --config "$broken" 2>&1); then
    rm -f "$broken"
    fail "config check accepted domains = 42: $out"
fi
rm -f "$broken"
grep -q "mail.domains" <<<"$out" || fail "config check's error does not name mail.domains: $out"

step "user, group, modes"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd mailroom) || fail "no user mailroom"
((uid < 1000)) || fail "mailroom is not a system user (uid $uid)"
[[ $home == /var/lib/mailroom ]] || fail "mailroom's home is $home"
[[ $shell == */nologin || $shell == /bin/false ]] || fail "mailroom has a login shell: $shell"
[[ "$(getent group mailroom | cut -d: -f3)" == "$gid" ]] || fail "mailroom's primary group is not mailroom"
expect_stat() {
    local got
    got=$(stat -c '%U:%G %a' "$1")
    [[ $got == "$2" ]] || fail "$1 is $got, expected $2"
    echo "$1: $got"
}
expect_stat /var/lib/mailroom "mailroom:mailroom 700"
expect_stat /etc/mailroom "root:mailroom 750"
expect_stat /etc/mailroom/mailroom.toml "root:mailroom 640"
expect_stat /usr/bin/mailroom "root:root 755"

step "the installed service, run as its unit runs it"
# No systemd runs here, so setpriv gives the process what the unit does: user and group mailroom,
# no new privileges, CAP_NET_BIND_SERVICE as the only (ambient) capability, umask 0077. It binds a
# free port below 1024 on loopback (as 25 in production) and takes a message into the packaged
# data dir. The installed config with loopback listeners and no DNS checks.
low_port=$(python3 -c '
import socket
for port in range(600, 1000):
    try:
        socket.socket().bind(("127.0.0.1", port))
        print(port)
        break
    except OSError:
        pass')
[[ -n $low_port ]] || fail "no free port below 1024 on loopback"
smoke_config=/tmp/mailroom-deb-test-$$.toml
sed -e "s|^listen = \[\"0.0.0.0:25\"\]|listen = [\"127.0.0.1:$low_port\"]|" \
    -e 's|^listen = \["127.0.0.1:2424"\]|listen = ["127.0.0.1:0"]|' \
    -e 's|^listen_starttls = \["0.0.0.0:143"\]|listen_starttls = ["127.0.0.1:0"]|' \
    -e 's|^listen_tls = \["0.0.0.0:993"\]|listen_tls = ["127.0.0.1:0"]|' \
    -e 's|^listen = \["127.0.0.1:8080"\]|listen = ["127.0.0.1:0"]|' \
    -e 's|^listen = "127.0.0.1:9325"|listen = "127.0.0.1:0"|' \
    -e 's|^verify = "dns"|verify = "off"|' /etc/mailroom/mailroom.toml >"$smoke_config"
chmod 644 "$smoke_config"
[[ $(grep -c ':0"\|:'"$low_port"'"\|verify = "off"' "$smoke_config") -eq 7 ]] ||
    fail "the installed config's listeners are not the ones this script rewrites:"$'\n'"$(grep -n 'listen\|verify' "$smoke_config")"
serve=(/usr/bin/mailroom serve --data-dir /var/lib/mailroom --config "$smoke_config")
# Without the capability the same user cannot bind the port: the capability is what makes it work.
if [[ $(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) -gt $low_port ]]; then
    if out=$(cd / && timeout 30 runuser -u mailroom -- "${serve[@]}" 2>&1); then
        fail "mailroom bound port $low_port without CAP_NET_BIND_SERVICE"
    fi
    grep -qi 'permission denied' <<<"$out" || fail "unprivileged start failed, but not for the port: $out"
    echo "without the capability: refused ($(grep -io 'permission denied' <<<"$out" | head -n1))"
fi
(cd / && umask 0077 && exec setpriv --reuid=mailroom --regid=mailroom --init-groups --no-new-privs \
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
    --bounding-set=-all,+net_bind_service -- "${serve[@]}") >/tmp/mailroom-deb-test-$$.log 2>&1 &
serve_pid=$!
stop_serve() {
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
}
for _ in $(seq 300); do
    [[ -s /var/lib/mailroom/listeners.json ]] && break
    kill -0 "$serve_pid" 2>/dev/null || { stop_serve; fail "mailroom serve exited: $(cat /tmp/mailroom-deb-test-$$.log)"; }
    sleep 0.1
done
[[ -s /var/lib/mailroom/listeners.json ]] || { stop_serve; fail "mailroom serve did not come up: $(cat /tmp/mailroom-deb-test-$$.log)"; }
reply=$(python3 -c '
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.ehlo("client.example.org")
s.mail("kunde@client.example.org"); s.rcpt("support@example.com")
code, resp = s.data(b"Subject: deb-test\r\n\r\nhello\r\n")
print(code, resp.decode())' "$low_port") || { stop_serve; fail "SMTP to the installed service failed"; }
echo "SMTP on 127.0.0.1:$low_port: $reply"
number=$(sed -n 's/^250 2.0.0 Registered \(MR-[0-9-]*\)$/\1/p' <<<"$reply")
[[ -n $number ]] || { stop_serve; fail "no registration number in: $reply"; }
listed=$(runuser -u mailroom -- /usr/bin/mailroom message list --data-dir /var/lib/mailroom --config "$smoke_config")
stop_serve
grep -q "$number" <<<"$listed" || fail "$number not in message list: $listed"
expect_stat /var/lib/mailroom/master.key "mailroom:mailroom 600"
expect_stat /var/lib/mailroom/mailroom.db "mailroom:mailroom 600"
rm -f "$smoke_config" /tmp/mailroom-deb-test-$$.log

step "systemd-analyze verify"
unit=/usr/lib/systemd/system/mailroom.service
# Offline (no systemd runs in CI containers): it loads the unit and checks every directive and
# that ExecStart exists. Any output is a finding.
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify failed:"$'\n'"$verify"
[[ -z $verify ]] || fail "systemd-analyze verify reports:"$'\n'"$verify"
echo "verify: clean"

step "systemd-analyze security --offline=true"
security=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1 || true)
score=$(sed -n 's/.*Overall exposure level for mailroom.service: \([0-9.]*\).*/\1/p' <<<"$security")
[[ -n $score ]] || fail "no exposure score:"$'\n'"$security"
grep '✗' <<<"$security" || true
echo "exposure score: $score (at most $MAX_EXPOSURE)"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || fail "exposure $score above $MAX_EXPOSURE"

step "dpkg -r: the program goes, the configuration stays"
dpkg -r mailroom
[[ ! -e /usr/bin/mailroom && ! -e $unit ]] || fail "binary or unit left after dpkg -r"
[[ -f /etc/mailroom/mailroom.toml ]] || fail "dpkg -r removed the conffile"

step "dpkg --purge: the configuration goes, the data stays"
dpkg --purge mailroom
[[ "$(dpkg-query -W -f='${db:Status-Status}' mailroom 2>/dev/null || echo not-installed)" == "not-installed" ]] ||
    fail "dpkg still knows mailroom after --purge"
[[ ! -e /etc/mailroom ]] || fail "/etc/mailroom left after purge"
for kept in /var/lib/mailroom/mailroom.db /var/lib/mailroom/master.key; do
    [[ -s $kept ]] || fail "purge deleted $kept"
done

echo "deb-test: OK (package $(basename "$deb"), exposure $score)"
