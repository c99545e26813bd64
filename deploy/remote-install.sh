#!/bin/sh
# moodcast on the Pi: prepare | install | rollback | undeploy | check. Run as root; deploy/deploy.sh pipes it over ssh.
#
# Layout:  /opt/moodcast/releases/<id>/{device,models,systemd,requirements,deploy,RELEASE,venv -> ../../venvs/<hash>}
#          /opt/moodcast/venvs/<hash>/     one venv per (requirements, constraints, python) — shared, rollback-safe
#          /opt/moodcast/current, previous  symlinks, switched atomically (rename)
#          /etc/moodcast/moodcast.toml (0644), moodcast.env (0600): installed only when absent
#          /etc/systemd/system/moodcast.service
# Overrides (tests, unusual systems): PI_ROOT (prefix for every path above), PI_SYSTEMCTL, PI_APT_GET,
# PI_DPKG_QUERY, PI_USERADD, PI_USERMOD, PI_USERDEL, PI_JOURNALCTL, PI_PYTHON, PI_PIP_ARGS, PI_APT_PACKAGES,
# PI_KEEP (releases kept), PI_TIMEOUT_S, PI_EXTRA_SITE (site dirs, separated by ':', added to the venv by a .pth,
# standing in for apt's packages), PURGE=1 (undeploy also removes config, state and the user).
set -eu

ROOT=${PI_ROOT:-}
APP=$ROOT/opt/moodcast
ETC=$ROOT/etc/moodcast
UNIT_DIR=$ROOT/etc/systemd/system
STATE=$ROOT/var/lib/moodcast
UNIT=moodcast.service
SERVICE_USER=moodcast
SYSTEMCTL=${PI_SYSTEMCTL:-systemctl}
APT_GET=${PI_APT_GET:-apt-get}
DPKG_QUERY=${PI_DPKG_QUERY:-dpkg-query}
USERADD=${PI_USERADD:-useradd}
USERMOD=${PI_USERMOD:-usermod}
USERDEL=${PI_USERDEL:-userdel}
JOURNALCTL=${PI_JOURNALCTL:-journalctl}
PYTHON=${PI_PYTHON:-python3}
PIP_ARGS=${PI_PIP_ARGS:-}
APT_PACKAGES=${PI_APT_PACKAGES:-python3-venv python3-picamera2 rsync}
KEEP=${PI_KEEP:-3}
TIMEOUT_S=${PI_TIMEOUT_S:-120}
EXTRA_SITE=${PI_EXTRA_SITE:-}

say() { printf 'pi: %s\n' "$*"; }
die() {
    printf 'pi: error: %s\n' "$*" >&2
    exit 1
}
# step "what it does" command...: print, run, and stop with one line if it fails.
step() {
    what=$1
    shift
    say "$what"
    "$@" || die "$what failed (exit $?)"
}

need_root() {
    if [ "$(id -u)" != 0 ] && [ -z "$ROOT" ]; then
        die "must run as root (deploy.sh uses sudo -n: give the ssh user passwordless sudo)"
    fi
}

as_root_owned() { # chown only when we are root (a PI_ROOT test run may not be)
    if [ "$(id -u)" = 0 ]; then chown "$@"; fi
}

# --- prepare: Debian packages and the service user -----------------------------------------------------------
prepare() {
    need_root
    missing=""
    for pkg in $APT_PACKAGES; do
        status=$($DPKG_QUERY -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        step "apt: updating package lists" env DEBIAN_FRONTEND=noninteractive $APT_GET update -qq
        # shellcheck disable=SC2086
        step "apt: installing$missing" env DEBIAN_FRONTEND=noninteractive \
            $APT_GET install -y -qq --no-install-recommends $missing
    else
        say "apt: $APT_PACKAGES already installed"
    fi

    groups=""
    for group in video render; do
        if getent group "$group" >/dev/null 2>&1; then groups="${groups:+$groups,}$group"; fi
    done
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        say "user: $SERVICE_USER exists"
        if [ -n "$groups" ]; then
            step "user: adding $SERVICE_USER to groups $groups" $USERMOD -a -G "$groups" "$SERVICE_USER"
        fi
    else
        step "user: creating system user $SERVICE_USER (groups: ${groups:-none})" \
            $USERADD --system --user-group --no-create-home --home-dir /var/lib/moodcast \
            --shell /usr/sbin/nologin --comment "moodcast daemon" ${groups:+--groups "$groups"} "$SERVICE_USER"
    fi
}

# --- install: release, venv, config, unit, switch, restart ----------------------------------------------------
hash_of() { # the venv's identity: requirements, constraints, interpreter, extra site
    {
        cat "$1/requirements/device.txt"
        cat "$1/deploy/constraints-pi.txt" 2>/dev/null || true
        $PYTHON -c 'import platform, sys; print(sys.version, platform.machine())'
        echo "$EXTRA_SITE"
    } | sha256sum | cut -c1-12
}

make_venv() { # make_venv DIR RELEASE
    venv=$1
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    step "venv: creating $venv (--system-site-packages: Picamera2 and libcamera come from apt)" \
        $PYTHON -m venv --system-site-packages "$venv"
    if [ -n "$EXTRA_SITE" ]; then
        site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        say "venv: adding $EXTRA_SITE to its path (PI_EXTRA_SITE)"
        echo "$EXTRA_SITE" | tr ':' '\n' >"$site/zz-moodcast-extra-site.pth"
    fi
    constraints=""
    [ -f "$2/deploy/constraints-pi.txt" ] && constraints="-c $2/deploy/constraints-pi.txt"
    # shellcheck disable=SC2086
    step "pip: installing requirements/device.txt (first deploy, or requirements changed: takes a few minutes)" \
        "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -r "$2/requirements/device.txt" $constraints $PIP_ARGS
    touch "$venv/.complete"
}

install_release() {
    need_root
    base=$1
    staging=$2
    describe=${3:-unknown}
    [ -d "$staging/device" ] || die "$staging/device: not found (the upload did not arrive; run make deploy again)"
    [ -f "$staging/requirements/device.txt" ] || die "$staging/requirements/device.txt: not found"
    $PYTHON -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die "$PYTHON: Python 3.11 or later is needed (use Raspberry Pi OS bookworm or later)"

    mkdir -p "$APP/releases" "$APP/venvs"
    id=$base
    n=2
    while [ -e "$APP/releases/$id" ]; do
        id=$base-$n
        n=$((n + 1))
    done
    release=$APP/releases/$id
    partial=$APP/releases/.$id.partial
    rm -rf "$partial"
    step "release: copying the upload to $release" cp -R "$staging" "$partial"
    printf 'release=%s\nsource=%s\ndeployed=%s\n' "$id" "$describe" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        >"$partial/RELEASE"

    hash=$(hash_of "$partial")
    venv=$APP/venvs/$hash
    if [ -f "$venv/.complete" ]; then
        say "venv: reusing venvs/$hash (requirements unchanged)"
    else
        make_venv "$venv" "$partial"
    fi
    ln -s "../../venvs/$hash" "$partial/venv"
    step "python: compiling device/ to bytecode" "$venv/bin/python" -m compileall -q "$partial/device"
    as_root_owned -R root:root "$partial"
    chmod -R go-w,a+rX "$partial"
    mv "$partial" "$release"

    say "python: checking the release imports (device, cv2, paho, a TFLite runtime)"
    (cd "$release" && ./venv/bin/python -c '
import importlib.util, sys
import cv2, numpy, paho.mqtt.client, device.config
runtimes = ("ai_edge_litert", "tflite_runtime", "tensorflow")
if not any(importlib.util.find_spec(name) for name in runtimes):
    sys.exit("no TFLite runtime: install ai-edge-litert or tflite-runtime")
') || die "the new release's venv cannot import its dependencies (see above); the running release is unchanged"

    install_config "$release"
    if [ -f "$release/device/__main__.py" ]; then
        say "config: checking $ETC/moodcast.toml with the new release (--check-config)"
        check_config "$release" ||
            die "config check failed (above): fix $ETC/moodcast.toml or moodcast.env, then deploy again; the running release is unchanged"
    fi

    old=$(readlink "$APP/current" 2>/dev/null || true)
    install_unit "$release"
    switch_to "releases/$id" "$old"
    if ! restart_and_wait; then
        if [ -n "$old" ] && [ -d "$APP/$old" ]; then
            say "rollback: the new release did not start; switching back to $old"
            switch_to "$old" "releases/$id"
            install_unit "$APP/$old"
            restart_and_wait || true
            die "release $id failed to start (journal above); rolled back to $old"
        fi
        die "release $id failed to start (journal above); see: journalctl -u moodcast -b"
    fi
    prune
    say "deployed $id ($describe); moodcast is active"
}

install_config() { # install_config RELEASE
    mkdir -p "$ETC"
    chmod 0755 "$ETC"
    if [ -e "$ETC/moodcast.toml" ]; then
        say "config: keeping your $ETC/moodcast.toml"
        if ! cmp -s "$ETC/moodcast.toml" "$1/systemd/moodcast.toml"; then
            say "config: (the release's default differs: /opt/moodcast/current/systemd/moodcast.toml)"
        fi
    else
        step "config: installing $ETC/moodcast.toml (0644)" install -m 0644 "$1/systemd/moodcast.toml" "$ETC/moodcast.toml"
    fi
    if [ -e "$ETC/moodcast.env" ]; then
        say "config: keeping your $ETC/moodcast.env"
        if [ "$(stat -c %a "$ETC/moodcast.env")" != 600 ]; then
            step "config: $ETC/moodcast.env was readable by others; setting mode 0600" chmod 0600 "$ETC/moodcast.env"
        fi
    else
        (umask 077 && cp "$1/systemd/moodcast.env" "$ETC/moodcast.env") ||
            die "config: cannot write $ETC/moodcast.env"
        chmod 0600 "$ETC/moodcast.env"
        as_root_owned root:root "$ETC/moodcast.env"
        say "config: installed $ETC/moodcast.env (0600, for MOODCAST_MQTT__PASSWORD)"
    fi
}

check_config() { # the daemon's own --check-config, with the environment file systemd would pass
    (cd "$1" && ./venv/bin/python -c '
import os, runpy, sys
env_file, config = sys.argv[1], sys.argv[2]
if os.path.exists(env_file):
    for line in open(env_file, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith(("#", ";")) and "=" in line:
            key, value = line.split("=", 1)
            os.environ[key.strip()] = value.strip().strip("\"'"'"'")
sys.argv = ["moodcast", "--check-config", "--config", config]
runpy.run_module("device", run_name="__main__", alter_sys=True)
' "$ETC/moodcast.env" "$ETC/moodcast.toml")
}

install_unit() { # install_unit RELEASE
    mkdir -p "$UNIT_DIR"
    step "systemd: installing $UNIT_DIR/$UNIT" install -m 0644 "$1/systemd/$UNIT" "$UNIT_DIR/$UNIT"
    step "systemd: daemon-reload" $SYSTEMCTL daemon-reload
    step "systemd: enabling $UNIT" $SYSTEMCTL enable --quiet "$UNIT"
}

switch_to() { # switch_to NEW_TARGET OLD_TARGET: current -> NEW, previous -> OLD, each by an atomic rename
    ln -sfn "$1" "$APP/.current.new"
    mv -T "$APP/.current.new" "$APP/current"
    if [ -n "$2" ] && [ "$2" != "$1" ]; then
        ln -sfn "$2" "$APP/.previous.new"
        mv -T "$APP/.previous.new" "$APP/previous"
    fi
    say "release: current -> $1${2:+ (previous -> $2)}"
}

restart_and_wait() { # Type=notify: active means the daemon sent READY=1
    say "systemd: restarting $UNIT and waiting for READY=1 (up to ${TIMEOUT_S}s)"
    if ! timeout "$TIMEOUT_S" $SYSTEMCTL restart "$UNIT"; then
        $JOURNALCTL -u "$UNIT" -n 20 --no-pager -o cat 2>/dev/null || true
        return 1
    fi
    waited=0
    until $SYSTEMCTL is-active --quiet "$UNIT"; do
        if [ "$waited" -ge "$TIMEOUT_S" ] || $SYSTEMCTL is-failed --quiet "$UNIT"; then
            $JOURNALCTL -u "$UNIT" -n 20 --no-pager -o cat 2>/dev/null || true
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "systemd: $UNIT is active"
}

prune() { # keep the newest $KEEP releases plus current and previous; drop venvs no release uses
    current=$(readlink "$APP/current" 2>/dev/null || true)
    previous=$(readlink "$APP/previous" 2>/dev/null || true)
    count=0
    for dir in $(ls -1 "$APP/releases" | sort -r); do
        count=$((count + 1))
        if [ "$count" -gt "$KEEP" ] && [ "releases/$dir" != "$current" ] && [ "releases/$dir" != "$previous" ]; then
            step "release: removing old release $dir" rm -rf "$APP/releases/$dir"
        fi
    done
    for venv in "$APP"/venvs/*; do
        [ -d "$venv" ] || continue
        used=no
        for link in "$APP"/releases/*/venv; do
            [ "$(readlink "$link" 2>/dev/null)" = "../../venvs/$(basename "$venv")" ] && used=yes
        done
        [ "$used" = yes ] || step "venv: removing unused $(basename "$venv")" rm -rf "$venv"
    done
}

rollback() {
    need_root
    current=$(readlink "$APP/current" 2>/dev/null || true)
    previous=$(readlink "$APP/previous" 2>/dev/null || true)
    [ -n "$previous" ] && [ -d "$APP/$previous" ] ||
        die "no previous release to roll back to (in $APP; deploy twice first)"
    install_unit "$APP/$previous"
    switch_to "$previous" "$current"
    restart_and_wait || die "$previous failed to start (journal above); make rollback again returns to $current"
    say "rolled back to $previous"
}

undeploy() {
    need_root
    say "systemd: stopping and disabling $UNIT"
    $SYSTEMCTL disable --now --quiet "$UNIT" 2>/dev/null || true
    step "systemd: removing $UNIT_DIR/$UNIT" rm -f "$UNIT_DIR/$UNIT"
    step "systemd: daemon-reload" $SYSTEMCTL daemon-reload
    step "release: removing $APP" rm -rf "$APP"
    if [ "${PURGE:-0}" = 1 ]; then
        step "config: removing $ETC and $STATE" rm -rf "$ETC" "$STATE"
        if id -u "$SERVICE_USER" >/dev/null 2>&1; then
            step "user: removing $SERVICE_USER" $USERDEL "$SERVICE_USER"
        fi
    else
        say "kept $ETC, $STATE and user $SERVICE_USER (make undeploy PURGE=1 removes them too)"
    fi
}

check() { # read-only readiness report; exit 1 on a blocker
    ok=0
    say "system: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(uname -m), $(uname -r)"
    if version=$($PYTHON -c 'import sys; print("%d.%d" % sys.version_info[:2]); sys.exit(sys.version_info < (3, 11))' 2>/dev/null); then
        say "python: $PYTHON $version"
    else
        say "BLOCKER: $PYTHON ${version:-missing}: Python 3.11 or later is needed (Raspberry Pi OS bookworm or later)"
        ok=1
    fi
    # A 32-bit userland (armhf Pi OS, even on a 64-bit kernel, where uname says aarch64) has no TFLite wheel.
    if [ "$($PYTHON -c 'import struct; print(struct.calcsize("P") * 8)' 2>/dev/null)" = 32 ]; then
        say "BLOCKER: 32-bit system: the TFLite runtime needs a 64-bit OS (Raspberry Pi OS 64-bit, arm64)"
        ok=1
    fi
    if [ "$(id -u)" != 0 ] && [ -z "$ROOT" ]; then
        say "BLOCKER: not root"
        ok=1
    fi
    if [ -d /run/systemd/system ] || [ -n "${PI_SYSTEMCTL:-}" ]; then say "systemd: running"; else
        say "BLOCKER: systemd is not running here"
        ok=1
    fi
    for pkg in $APT_PACKAGES; do
        status=$($DPKG_QUERY -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || say "apt: $pkg missing (make deploy installs it)"
    done
    cams=$(ls /dev/video* /dev/media* 2>/dev/null | tr '\n' ' ')
    say "camera devices: ${cams:-none (connect the camera and check: rpicam-hello --list-cameras)}"
    say "disk: $(df -h "$ROOT/" | awk 'NR==2 {print $4 " free on " $6}')"
    say "release: $(readlink "$APP/current" 2>/dev/null || echo 'none yet')"
    say "service: $($SYSTEMCTL is-active "$UNIT" 2>/dev/null || true)"
    return $ok
}

main() {
    command=${1:-}
    [ $# -gt 0 ] && shift
    case $command in
    prepare) prepare ;;
    install) install_release "$@" ;;
    rollback) rollback ;;
    undeploy) undeploy ;;
    check) check ;;
    *) die "usage: remote-install.sh prepare | install ID STAGING [DESCRIBE] | rollback | undeploy | check" ;;
    esac
}

# The script may arrive on stdin (ssh ... sh -s): give its commands /dev/null, not the rest of the script.
main "$@" </dev/null
