#!/usr/bin/env bash
# Prove the Pi install on arm64 without a Pi (make arm64-check; docs/DEPLOY.md, "Check the Pi install on arm64").
#
# 1. An arm64 Debian root (debootstrap --arch=arm64, bookworm: Python 3.11 as on Raspberry Pi OS bookworm), run
#    under qemu-user-static through binfmt_misc, cached in .cache/arm64-<suite>/ (built once, about 8 minutes).
# 2. deploy/remote-install.sh itself, as make deploy runs it on the Pi: `prepare`, then `install` of an upload
#    holding exactly what deploy.sh uploads; the venv is made with --system-site-packages and
#    pip install -r requirements/device.txt -c deploy/constraints-pi.txt. Only what a chroot lacks is stubbed:
#    systemctl and journalctl (true), and python3-picamera2 (Raspberry Pi's archive, not Debian's) is not asked for:
#    stand-ins of its two classes, which import and open no camera, are put on the venv's path (PI_EXTRA_SITE), so
#    the install's --check-config of the shipped config (camera.source = "picamera2") imports them as on a Pi.
# 3. The daemon from that release on a sample video in the root (aarch64), the same command on this machine, and
#    tools/compare_events.py: same faces, same labels on >= 95 % of the frames with a face.
# Each failure is one line saying what to do. Needs root (debootstrap, chroot, mounts).
# Options (environment): ARM64_SUITE (bookworm), ARM64_CACHE (.cache/arm64-<suite>), ARM64_MIRROR (this machine's
# apt mirror, else deb.debian.org), VIDEO (samples/one-face.mp4), ARM64_HOST_PYTHON (.venv/bin/python),
# ARM64_NICE (19: the heavy steps yield the CPU), ARM64_FRESH=1 (a new venv even when requirements are unchanged).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${ARM64_SUITE:-bookworm}
CACHE=${ARM64_CACHE:-$REPO/.cache/arm64-$SUITE}
OUT=${ARM64_OUT:-$REPO/.cache/arm64-check-$SUITE}
VIDEO=${VIDEO:-samples/one-face.mp4}
HOST_PY=${ARM64_HOST_PYTHON:-$REPO/.venv/bin/python}
NICE=(nice -n "${ARM64_NICE:-19}")
INCLUDE=python3,python3-venv,ca-certificates,passwd
BINFMT=/proc/sys/fs/binfmt_misc

say() { printf 'arm64-check: %s\n' "$*"; }
die() {
    printf 'arm64-check: error: %s\n' "$*" >&2
    exit 1
}
need() { # need COMMAND APT_PACKAGE
    command -v "$1" >/dev/null || die "$1 not found: apt-get install $2"
}

mirror() { # this machine's Debian mirror (deb822 or one-line sources), else deb.debian.org
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# --- host: tools and binfmt_misc ------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mounts need it): sudo make arm64-check"
[ "$(uname -m)" = x86_64 ] || say "note: this machine is $(uname -m), not x86_64: the comparison is then not x86 vs arm64"
need debootstrap debootstrap
need qemu-aarch64-static qemu-user-static
need unshare util-linux
need chroot coreutils
need timeout coreutils
need flock util-linux
[ -x "$HOST_PY" ] || die "$HOST_PY not found: make setup-device (the x86 run of the daemon uses it)"
[ -f "$REPO/$VIDEO" ] || die "$VIDEO: not found (VIDEO is relative to the repository)"

if [ ! -e "$BINFMT/status" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null ||
        die "no binfmt_misc support: mounting $BINFMT failed (needs a kernel with binfmt_misc and CAP_SYS_ADMIN)"
fi
if [ ! -e "$BINFMT/qemu-aarch64" ] && command -v update-binfmts >/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then # no binfmt-support (or a container): register it by hand, F = fix binary
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        >"$BINFMT/register" 2>/dev/null ||
        die "no binfmt support for arm64: registering qemu-aarch64 in $BINFMT failed (apt-get install binfmt-support qemu-user-static)"
fi
[ -e "$BINFMT/qemu-aarch64" ] ||
    die "no binfmt support for arm64: qemu-aarch64 is not registered in $BINFMT (apt-get install binfmt-support qemu-user-static)"
grep -qx enabled "$BINFMT/qemu-aarch64" ||
    die "binfmt_misc: qemu-aarch64 is registered but disabled: update-binfmts --enable qemu-aarch64"

# in_root SECONDS COMMAND...: run in the arm64 root, with /proc and /dev in a private mount namespace (the mounts
# vanish with it), a clean environment and the CPU yielded to other work.
in_root() {
    local limit=$1
    shift
    timeout "$limit" "${NICE[@]}" unshare --mount --propagation private -- sh -c '
root=$1; shift
mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" &&
exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "$@"' sh "$CACHE" "$@"
}

# --- the root ----------------------------------------------------------------------------------------------
# One check per root at a time (make arm64-check and make test-slow may overlap): they share the root and its venv.
mkdir -p "$(dirname "$CACHE")"
exec 9>"$CACHE.lock"
if ! flock -n 9; then
    say "waiting for another arm64-check on $CACHE (up to 1 hour)"
    flock -w 3600 9 || die "another arm64-check held $CACHE for an hour; is one stuck? (lock: $CACHE.lock)"
fi
KEY="$SUITE arm64 minbase $INCLUDE"
if [ -f "$CACHE/.moodcast-root" ] && [ "$(cat "$CACHE/.moodcast-root")" = "$KEY" ]; then
    say "root: reusing $CACHE ($SUITE, arm64)"
else
    MIRROR=${ARM64_MIRROR:-$(mirror)}
    say "root: building $SUITE arm64 in $CACHE from $MIRROR (debootstrap under qemu: about 8 minutes, once)"
    for mounted in proc sys dev/pts; do # a killed debootstrap may leave its mounts behind
        umount "$CACHE.partial/$mounted" 2>/dev/null || true
    done
    rm -rf "$CACHE" "$CACHE.partial"
    mkdir -p "$(dirname "$CACHE")" "$(dirname "$OUT")"
    start=$SECONDS
    limit=${ARM64_DEBOOTSTRAP_TIMEOUT_S:-1800}
    rc=0
    timeout "$limit" "${NICE[@]}" debootstrap --arch=arm64 --variant=minbase \
        --include="$INCLUDE" "$SUITE" "$CACHE.partial" "$MIRROR" >"$OUT.debootstrap.log" 2>&1 || rc=$?
    if [ "$rc" = 124 ]; then
        die "debootstrap of $SUITE arm64 took over $limit s (a busy machine? ARM64_DEBOOTSTRAP_TIMEOUT_S raises it)"
    elif [ "$rc" != 0 ]; then
        tail -n 5 "$OUT.debootstrap.log" >&2 || true
        die "debootstrap of $SUITE arm64 failed (log: $OUT.debootstrap.log; is $MIRROR reachable?)"
    fi
    echo "$KEY" >"$CACHE.partial/.moodcast-root"
    mv "$CACHE.partial" "$CACHE"
    say "root: built in $((SECONDS - start)) s"
fi
cp /usr/bin/qemu-aarch64-static "$CACHE/usr/bin/" # for a registration without the F flag
cp -L /etc/resolv.conf "$CACHE/etc/resolv.conf" 2>/dev/null || true
arch=$(in_root 120 uname -m) || die "cannot run a program in the arm64 root (binfmt_misc or qemu-user-static broken)"
[ "$arch" = aarch64 ] || die "the root runs as $arch, not aarch64"
say "root: $(in_root 120 sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(in_root 120 python3 -V), $arch (qemu)"

# --- the install, by deploy/remote-install.sh --------------------------------------------------------------
mkdir -p "$OUT"
staging=$CACHE/root/.cache/moodcast/upload
rm -rf "$staging" "$CACHE/root/moodcast-check"
mkdir -p "$staging" "$CACHE/root/moodcast-check"
# what deploy.sh's rsync uploads, and nothing else
tar -C "$REPO" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.keras' --exclude='*.h5' -cf - \
    device models systemd requirements/device.txt deploy/constraints-pi.txt pyproject.toml | tar -C "$staging" -xf -
cp "$REPO/deploy/remote-install.sh" "$CACHE/root/moodcast-check/"
video=/root/moodcast-check/${VIDEO##*/}
cp "$REPO/$VIDEO" "$CACHE$video"
[ "${ARM64_FRESH:-0}" = 1 ] && rm -rf "$CACHE/opt/moodcast/venvs"
stand_ins=/root/moodcast-check/apt-stand-ins
for module in picamera2:Picamera2 libcamera:Transform; do
    mkdir -p "$CACHE$stand_ins/${module%%:*}"
    printf 'class %s:  # a stand-in of deploy/arm64-check.sh\n    pass\n' "${module#*:}" \
        >"$CACHE$stand_ins/${module%%:*}/__init__.py"
done
stubs=(PI_SYSTEMCTL=true PI_JOURNALCTL=true PI_APT_PACKAGES=python3-venv PI_EXTRA_SITE=$stand_ins)
# pip in the root trusts what this machine trusts (a proxy that intercepts TLS has its CA here) and uses its proxy
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp -L /etc/ssl/certs/ca-certificates.crt "$CACHE/etc/ssl/certs/host-ca-certificates.crt"
    stubs+=(PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt)
fi
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_DEFAULT_TIMEOUT PIP_INDEX_URL; do
    [ -n "${!name:-}" ] && [[ ${!name} != file:* ]] && stubs+=("$name=${!name}")
done
in_root 600 env "${stubs[@]}" sh /root/moodcast-check/remote-install.sh prepare ||
    die "remote-install.sh prepare failed in the arm64 root (the line above says which step)"
start=$SECONDS
in_root "${ARM64_INSTALL_TIMEOUT_S:-1200}" env "${stubs[@]}" sh /root/moodcast-check/remote-install.sh install \
    "arm64-check-$(date -u +%Y%m%dT%H%M%SZ)" /root/.cache/moodcast/upload arm64-check ||
    die "remote-install.sh install failed in the arm64 root (the line above says which step)"
say "install: remote-install.sh install took $((SECONDS - start)) s (pip runs only when requirements changed)"
in_root 300 /opt/moodcast/current/venv/bin/python -c '
import platform, sys
import cv2, numpy
try:
    import tflite_runtime as rt
except ImportError:
    import ai_edge_litert as rt
print("install: venv on %s, Python %s: numpy %s, opencv %s, %s %s" % (platform.machine(),
      platform.python_version(), numpy.__version__, cv2.__version__, rt.__name__, getattr(rt, "__version__", "?")))
' || die "the arm64 venv cannot import numpy, cv2 and a TFLite runtime (see above)"

# --- the daemon, on arm64 and here --------------------------------------------------------------------------
args=(--no-realtime --display-backend none --log-level warning)
start=$SECONDS
rm -f "$CACHE/root/moodcast-check/events.jsonl"
in_root "${ARM64_DAEMON_TIMEOUT_S:-900}" sh -c 'cd /opt/moodcast/current && exec ./venv/bin/python -m device "$@"' \
    sh --input "$video" "${args[@]}" --events-path /root/moodcast-check/events.jsonl ||
    die "the daemon failed on arm64 (above); run it by hand: chroot $CACHE /opt/moodcast/current/venv/bin/python -m device"
say "daemon: arm64 run of $VIDEO took $((SECONDS - start)) s under qemu"
cp "$CACHE/root/moodcast-check/events.jsonl" "$OUT/arm64.jsonl"
# the same release (code and model) as the arm64 run, even if the working tree changed meanwhile
start=$SECONDS
rm -f "$OUT/host.jsonl"
(cd "$CACHE/opt/moodcast/current" && timeout 600 "${NICE[@]}" "$HOST_PY" -m device --input "$CACHE$video" \
    "${args[@]}" --events-path "$OUT/host.jsonl") || die "the daemon failed on this machine (above)"
say "daemon: $(uname -m) run took $((SECONDS - start)) s"
result=$("$HOST_PY" "$REPO/tools/compare_events.py" "$OUT/host.jsonl" "$OUT/arm64.jsonl") ||
    die "$(uname -m) vs arm64 on $VIDEO: ${result:-events unreadable} (events in $OUT)"
say "$(uname -m) vs arm64 on $VIDEO: $result"
