#!/usr/bin/env bash
# Deploy moodcast to a Raspberry Pi over ssh + rsync: deploy.sh deploy | check | logs | rollback | undeploy.
#
# PI=user@host (required). PI_PORT, PI_KEY, PI_SSH_OPTS: ssh port, identity file, extra ssh options.
# Forwarded to the Pi's side (deploy/remote-install.sh; see there): PI_ROOT, PI_SYSTEMCTL, PI_APT_GET, PI_DPKG_QUERY,
# PI_USERADD, PI_USERMOD, PI_USERDEL, PI_JOURNALCTL, PI_PYTHON, PI_PIP_ARGS, PI_APT_PACKAGES, PI_KEEP,
# PI_TIMEOUT_S, PI_EXTRA_SITE, PURGE. PI_STAGING: the upload folder on the Pi (default ~/.cache/moodcast/upload).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REMOTE_SCRIPT=$REPO/deploy/remote-install.sh
FORWARD=(PI_ROOT PI_SYSTEMCTL PI_APT_GET PI_DPKG_QUERY PI_USERADD PI_USERMOD PI_USERDEL PI_JOURNALCTL PI_PYTHON
    PI_PIP_ARGS PI_APT_PACKAGES PI_KEEP PI_TIMEOUT_S PI_EXTRA_SITE PURGE)

say() { printf 'deploy: %s\n' "$*"; }
die() {
    printf 'deploy: error: %s\n' "$*" >&2
    exit 1
}

COMMAND=${1:-}
case $COMMAND in
    check) TARGET=deploy-check ;;  # the make target a user typed, for the messages
    *) TARGET=$COMMAND ;;
esac
[[ -n "${PI:-}" ]] || die "no Pi given: make $TARGET PI=user@host (e.g. PI=pi@raspberrypi.local)"
STAGING=${PI_STAGING:-.cache/moodcast/upload}

# One ssh connection for every step (one password prompt at most), closed on exit.
CONTROL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moodcast-ssh.XXXXXX")
cleanup() {
    ssh "${SSH[@]:1}" -O exit "$PI" >/dev/null 2>&1 || true
    rm -rf "$CONTROL_DIR"
}
trap cleanup EXIT
SSH=(ssh -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ControlMaster=auto
    -o "ControlPath=$CONTROL_DIR/%C" -o ControlPersist=120)
[[ -n "${PI_PORT:-}" ]] && SSH+=(-p "$PI_PORT")
[[ -n "${PI_KEY:-}" ]] && SSH+=(-i "$PI_KEY")
# shellcheck disable=SC2206  # PI_SSH_OPTS is a list of options, split on spaces on purpose
[[ -n "${PI_SSH_OPTS:-}" ]] && SSH+=(${PI_SSH_OPTS})

# remote ARGS...: run remote-install.sh on the Pi as root (sudo -n unless we log in as root), with the overrides.
remote() {
    local assign=() name
    for name in "${FORWARD[@]}"; do
        [[ -n "${!name:-}" ]] && assign+=("$name=${!name}")
    done
    local args
    args=$(printf ' %q' "${assign[@]}" sh -s -- "$@")
    "${SSH[@]}" "$PI" "if [ \"\$(id -u)\" = 0 ]; then exec env$args; else exec sudo -n env$args; fi" \
        <"$REMOTE_SCRIPT"
}

connect() {
    say "ssh: connecting to $PI"
    "${SSH[@]}" "$PI" true ||
        die "cannot log in to $PI over ssh: check the host, that SSH is enabled on the Pi, and your key (ssh-copy-id $PI)"
    "${SSH[@]}" "$PI" '[ "$(id -u)" = 0 ] || sudo -n true' ||
        die "$PI: the ssh user needs passwordless sudo (the Pi OS default user has it) or use PI=root@host"
}

release_id() {
    local sha dirty=""
    sha=$(git -C "$REPO" rev-parse --short=8 HEAD 2>/dev/null || echo nogit)
    if [[ -n "$(git -C "$REPO" status --porcelain -- device models systemd requirements deploy pyproject.toml 2>/dev/null)" ]]; then
        dirty=-dirty
    fi
    echo "$(date -u +%Y%m%dT%H%M%SZ)-$sha$dirty"
}

upload() {
    local rsh
    rsh=$(printf '%q ' "${SSH[@]}")
    say "rsync: uploading device/ models/ systemd/ requirements/device.txt pyproject.toml to $PI:$STAGING"
    # Only what the device needs: never train/, convert/, tests/, data, .venv or caches.
    rsync -a --delete --delete-excluded --chmod=D0755,F0644 -e "$rsh" \
        --rsync-path="mkdir -p '$STAGING' && rsync" \
        --exclude='__pycache__/' --exclude='*.pyc' --exclude='*.keras' --exclude='*.h5' \
        --include='/device/***' --include='/models/***' --include='/systemd/***' \
        --include='/requirements/' --include='/requirements/device.txt' \
        --include='/deploy/' --include='/deploy/constraints-pi.txt' --include='/pyproject.toml' \
        --exclude='*' "$REPO/" "$PI:$STAGING/" ||
        die "rsync to $PI:$STAGING failed (is rsync installed on the Pi? make deploy installs it when ssh works)"
}

case $COMMAND in
deploy)
    command -v rsync >/dev/null || die "rsync is not installed here: apt-get install rsync (or brew install rsync)"
    connect
    id=$(release_id)
    say "release: $id"
    remote prepare || die "preparing $PI failed (the line above says which step)"
    upload
    remote install "$id" "$STAGING" "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)" ||
        die "installing on $PI failed (the line above says which step)"
    say "done: moodcast runs on $PI. Logs: make logs PI=$PI; back to the previous release: make rollback PI=$PI"
    ;;
check)
    connect
    remote check || die "$PI is not ready (BLOCKER lines above)"
    say "$PI is ready for make deploy"
    ;;
logs)
    "${SSH[@]}" -t "$PI" 'if [ "$(id -u)" = 0 ]; then S=; else S="sudo -n"; fi; exec $S journalctl -u moodcast.service -n 100 -f -o short-iso'
    ;;
rollback)
    connect
    remote rollback || die "rollback on $PI failed (the line above says why)"
    ;;
undeploy)
    connect
    remote undeploy || die "undeploy on $PI failed (the line above says which step)"
    ;;
*)
    die "usage: deploy.sh deploy|check|logs|rollback|undeploy (with PI=user@host)"
    ;;
esac
