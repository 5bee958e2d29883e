#!/usr/bin/env bash
# Run the README's "Install as a service" block, as written, on a fresh Debian 12 booted with systemd as PID 1
# in a systemd-nspawn container, then check what an admin relies on: READY, status, reload, watchdog,
# restart after kill -9, clean stop, commands typed as root, recordings under the hardened unit.
#
#   sudo bash scripts/service-check.sh        # needs root, Debian's apt mirror and PyPI; ~5 min the first time
#
# The container shares the host's network: nothing may listen on 8019, 4573 or 5038 on the host meanwhile.
# The base system is cached in $PBX_SERVICE_CHECK_DIR (default /var/lib/machines/pbx-agent-check.base).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BASE=${PBX_SERVICE_CHECK_DIR:-/var/lib/machines/pbx-agent-check.base}
ROOT=${BASE%.base}.run
failures=0

say() { printf '%s\n' "$*"; }
check() {  # check "what" command...
    local what=$1; shift
    if "$@" >/tmp/service-check.out 2>&1; then say "PASS  $what"; else
        say "FAIL  $what"; sed 's/^/      /' /tmp/service-check.out | tail -15; failures=$((failures + 1)); fi
}

[ "$(id -u)" = 0 ] || { say "run as root"; exit 2; }
command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null ||
    apt-get install -y debootstrap systemd-container >/dev/null
if [ ! -x "$BASE/usr/bin/curl" ]; then
    say "debootstrap bookworm into $BASE"
    rm -rf "$BASE"
    debootstrap --include=systemd,systemd-sysv,dbus,ca-certificates,curl bookworm "$BASE" \
        http://deb.debian.org/debian >/tmp/service-check.debootstrap.log
    echo pbxhost >"$BASE/etc/hostname"
fi
rm -rf "$ROOT" && cp -a "$BASE" "$ROOT"
# a host behind a TLS-inspecting proxy: its local CAs, so apt and pip inside work as they do outside
cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
git clone -q --bare "$REPO" "$ROOT/srv/pbx-agent.git"
awk '/^## Install as a service/{f=1} f&&/^```sh/{c=1;next} c&&/^```/{exit} c' README.md |
    sed 's|<this repository>|/srv/pbx-agent.git|' >"$ROOT/root/install.sh"
grep -q "systemctl enable --now pbx-agent" "$ROOT/root/install.sh" || { say "no install block in README.md"; exit 1; }

systemd-nspawn -D "$ROOT" --register=no --keep-unit --console=pipe -b >/tmp/service-check.console.log 2>&1 &
NSPAWN=$!
trap 'kill $NSPAWN 2>/dev/null; wait $NSPAWN 2>/dev/null || true' EXIT
in_box() { nsenter -t "$INIT" -a -- /bin/bash -c "$1"; }
for _ in $(seq 100); do INIT=$(pgrep -P $NSPAWN -x systemd || true); [ -n "$INIT" ] && break; sleep 0.2; done
for _ in $(seq 100); do in_box "systemctl is-system-running" 2>/dev/null | grep -qE "running|degraded" && break
    sleep 0.3; done
say "container booted: systemd $(in_box 'systemctl --version | head -1 | cut -d" " -f2')"

# Asterisk's footprint on a PBX host: its user, a recording, its config with a secret
in_box 'update-ca-certificates >/dev/null 2>&1; groupadd -r asterisk && useradd -r -g asterisk asterisk
    install -d -o asterisk -g asterisk -m 0750 /var/spool/asterisk /var/spool/asterisk/monitor /etc/asterisk
    head -c 48044 /dev/urandom >/var/spool/asterisk/monitor/rec1.wav
    echo "secret = s3cret" >/etc/asterisk/manager.conf
    chown asterisk:asterisk /var/spool/asterisk/monitor/rec1.wav /etc/asterisk/manager.conf
    chmod 0640 /var/spool/asterisk/monitor/rec1.wav /etc/asterisk/manager.conf'

check "README install block runs as written" in_box 'cd /root && bash -e install.sh'
main_pid() { in_box 'systemctl show -p MainPID --value pbx-agent'; }
wait_ready() { for _ in $(seq 150); do
    [ "$(in_box 'curl -s -o /dev/null -w %{http_code} 127.0.0.1:8019/health' 2>/dev/null)" = 200 ] && return 0
    sleep 0.2; done; return 1; }
check "service active, /health answers" wait_ready
check "status line for systemctl status" in_box 'systemctl show -p StatusText --value pbx-agent | grep -E "PBX connected of 1, ([0-9]+ due|database)"'
only_main_notifies() { in_box 'journalctl -u pbx-agent' >/tmp/service-check.journal &&
    grep -q "Started pbx-agent" /tmp/service-check.journal && ! grep "reception only permitted" /tmp/service-check.journal; }
check "no notifications from other processes" only_main_notifies
check "hardening applied (no caps, seccomp, no new privileges)" in_box "grep -q 'CapEff:.0000000000000000' /proc/$(main_pid)/status && grep -q 'Seccomp:.2' /proc/$(main_pid)/status && grep -q 'NoNewPrivs:.1' /proc/$(main_pid)/status"
in_unit() { in_box "nsenter -t \$(systemctl show -p MainPID --value pbx-agent) -m -- $1"; }
hidden() { in_unit 'cat /var/spool/asterisk/monitor/rec1.wav' >/dev/null && ! in_unit 'cat /etc/asterisk/manager.conf'; }
check "Asterisk's config hidden from the agent, its recordings not" hidden

url=$(in_box 'cd /tmp && runuser -u pbx-agent -- /opt/pbx-agent/.venv/bin/python -c "
from pathlib import Path
from agent.web.recordings import RecordLinks
from agent.store.secretbox import load_or_create_secret
links = RecordLinks(\"http://127.0.0.1:8019\", load_or_create_secret(Path(\"/var/lib/pbx-agent\")), Path(\"/var/spool/asterisk/monitor\"))
print(links.record_url(\"/var/spool/asterisk/monitor/rec1.wav\"))"') || url=none
check "a recording through the hardened unit (200, Range 206)" in_box "
    [ \$(curl -s -o /dev/null -w %{http_code}:%{size_download} '$url') = 200:48044 ] &&
    [ \$(curl -s -o /dev/null -w %{http_code}:%{size_download} -H 'Range: bytes=0-99' '$url') = 206:100 ]"

check "commands typed as root: admin-link, migrate" in_box '/opt/pbx-agent/.venv/bin/pbx-agent admin-link -c /etc/pbx-agent/agent.toml | grep -q /admin/login &&
    /opt/pbx-agent/.venv/bin/pbx-agent migrate -c /etc/pbx-agent/agent.toml && test -z "$(find /var/lib/pbx-agent ! -user pbx-agent)"'
check "run as root on the service state is refused" in_box '/opt/pbx-agent/.venv/bin/pbx-agent run -c /etc/pbx-agent/agent.toml; [ $? = 2 ]'

check "reload: a change is applied" in_box 'sed -i "s/^port = 5038/port = 5039/" /etc/pbx-agent/agent.toml && systemctl reload pbx-agent && sleep 1 &&
    journalctl -u pbx-agent | grep -q "reloaded /etc/pbx-agent/agent.toml: changed local"'
check "reload: a broken file is refused, the agent runs on" in_box 'echo "[agi]x" >>/etc/pbx-agent/agent.toml && systemctl reload pbx-agent && sleep 1 &&
    journalctl -u pbx-agent | grep -q "reload refused: agent.toml: not valid TOML" && systemctl is-active -q pbx-agent &&
    sed -i "\$d" /etc/pbx-agent/agent.toml'
check "journal priorities: the refusal is an error, ready is not" in_box 'journalctl -u pbx-agent -p err | grep -q "reload refused" &&
    ! journalctl -u pbx-agent -p warning | grep -q "pbx-agent ready"'

before=$(main_pid)
in_box "kill -9 $before"
restarted() { sleep 3; wait_ready && [ "$(main_pid)" != "$before" ]; }
check "kill -9: restarted (Restart=on-failure)" restarted
check "after a root command and a restart, still healthy" in_box 'systemctl restart pbx-agent'
check "  ... /health" wait_ready

before=$(main_pid)
in_box "kill -STOP $before"
say "      (a blocked agent: waiting for WatchdogSec=30s)"
watchdog_restarted() { for _ in $(seq 60); do sleep 1; in_box 'journalctl -u pbx-agent' | grep -q "Failed with result 'watchdog'" &&
    [ "$(main_pid)" != "$before" ] && [ "$(main_pid)" != 0 ] && return 0; done; return 1; }
check "watchdog: a stopped event loop gets the agent restarted" watchdog_restarted
check "  ... /health" wait_ready

stop_quickly() { local t0=$SECONDS; in_box 'systemctl stop pbx-agent' && [ $((SECONDS - t0)) -lt 20 ] &&
    ! in_box 'pgrep -u pbx-agent postgres'; }
check "systemctl stop: quick, embedded PostgreSQL stopped too" stop_quickly
check "upgrade steps" in_box 'git -C /opt/pbx-agent pull -q && /opt/pbx-agent/.venv/bin/pip install -q /opt/pbx-agent && systemctl restart pbx-agent'
check "  ... /health" wait_ready

in_box 'systemctl poweroff' || true
wait $NSPAWN 2>/dev/null || true
trap - EXIT
if [ $failures = 0 ]; then say "service check: all passed"; else say "service check: $failures failed"; exit 1; fi
