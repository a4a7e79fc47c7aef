#!/usr/bin/env bash
# Build (once) and enter a Debian Bookworm arm64 root: Raspberry Pi OS's base, run under qemu-user-static.
#
#   scripts/arm64_root.sh build            make the root if the cache has none for this version stamp
#   scripts/arm64_root.sh run CMD...       run CMD inside it as root, emulating a Pi 4's CPU (cortex-a72)
#
# The root lives outside the clone (EDGEVISION_ARM64_ROOT, default ~/.cache/edgevision/bookworm-arm64-$STAMP),
# so a CI rerun reuses it and a new machine builds it. It holds apt's python3 (3.11.2), python3-numpy (1.24)
# and python3-opencv (4.6, the system cv2 a Pi OS user has): the packages a picamera2 user's venv sees.
# Never mount the host's /proc or /sys into it: ONNX Runtime and LiteRT read CPU facts there, get the
# x86 host's, and crash.
set -euo pipefail

STAMP=v1-bookworm-py3-numpy-opencv
ROOT=${EDGEVISION_ARM64_ROOT:-$HOME/.cache/edgevision/bookworm-arm64-$STAMP}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,python3-numpy,python3-opencv,ca-certificates
export QEMU_CPU=${QEMU_CPU:-cortex-a72}

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "arm64 root: needs root (debootstrap, chroot); run as root or under sudo" >&2
    exit 2
  fi
}

enable_binfmt() {
  # qemu-user-static registers arm64 binaries with the kernel; a container may not have binfmt_misc mounted yet.
  if ! command -v debootstrap >/dev/null || [ ! -e /usr/bin/qemu-aarch64-static ]; then
    echo "== installing debootstrap and qemu-user-static from apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap qemu-user-static binfmt-support >/dev/null
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    echo "arm64 root: the kernel has no qemu-aarch64 binfmt handler and none could be registered" >&2
    exit 2
  fi
}

build() {
  need_root
  enable_binfmt
  if [ -f "$ROOT/.edgevision-root-ok" ]; then
    echo "== arm64 root cached at $ROOT ($(cat "$ROOT/.edgevision-root-ok"))"
    return
  fi
  local partial="$ROOT.partial"
  rm -rf "$partial"
  mkdir -p "$(dirname "$ROOT")"
  echo "== debootstrap bookworm arm64 into $partial ($PACKAGES)"
  local start=$SECONDS
  debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" bookworm "$partial" "$MIRROR" \
    >"$partial.log" 2>&1 || { tail -30 "$partial.log"; exit 1; }
  # debootstrap mounts proc/sys while configuring and should unmount them; make sure nothing stays mounted.
  umount_all "$partial"
  echo "$STAMP built $(date -u +%FT%TZ) in $((SECONDS - start)) s" >"$partial/.edgevision-root-ok"
  mv "$partial" "$ROOT"
  mv "$partial.log" "$ROOT.log"
  echo "== arm64 root ready in $((SECONDS - start)) s: $(du -sh "$ROOT" | cut -f1)"
}

umount_all() {
  local root=$1 mnt
  for mnt in $(awk -v r="$root" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r); do
    umount -l "$mnt" || true
  done
}

run() {
  need_root
  enable_binfmt
  [ -f "$ROOT/.edgevision-root-ok" ] || build
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # Trust what the host trusts (a network whose proxy re-signs TLS has its CA only in the host's bundle).
  local host_ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
  cp "$host_ca" "$ROOT/etc/ssl/certs/host-ca-certificates.crt"
  # /dev only (pip and Python need /dev/null and /dev/urandom); /proc and /sys stay unmounted on purpose.
  mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
  trap 'umount_all "$ROOT"' EXIT
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin QEMU_CPU="$QEMU_CPU" \
    LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 "$@"
}

case "${1:-}" in
  build) build ;;
  run) shift; run "$@" ;;
  path) echo "$ROOT" ;;
  *) echo "usage: $0 build | run CMD... | path" >&2; exit 2 ;;
esac
