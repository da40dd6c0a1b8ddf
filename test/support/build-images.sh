#!/usr/bin/env bash
# Builds the newer servers of the compatibility matrix without a registry: one Debian trixie
# root (debootstrap --variant=minbase) holding Debian's redis-server and valkey-server, imported
# twice with `docker import`, each tag running its own server by default. Skips what exists.
# Prints the tags it provides, one a line. Needs root, debootstrap and Debian's package mirror.
set -euo pipefail

log() { echo "build-images: $*" >&2; }

redis_image=snapshot-persist-redis:trixie
valkey_image=snapshot-persist-valkey:trixie
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! docker image inspect "$redis_image" >/dev/null 2>&1 || ! docker image inspect "$valkey_image" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || {
    if [ ! -f /tmp/.snapshot-persist-apt-updated ]; then apt-get update -qq >&2 && touch /tmp/.snapshot-persist-apt-updated; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
  }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  log "debootstrap trixie into $root"
  debootstrap --variant=minbase trixie "$root" "$mirror" >&2
  # Packages must not try to start services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server valkey-server >&2
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root/usr/sbin/policy-rc.d"
  mkdir -p "$root/data"
  log "$(chroot "$root" redis-server --version | cut -d' ' -f1-3); $(chroot "$root" valkey-server --version | cut -d' ' -f1-3)"
  tar -C "$root" -c . | docker import -c 'WORKDIR /data' -c 'CMD ["redis-server"]' - "$redis_image" >/dev/null
  # The same root again (its layer is shared), with valkey-server as the default command.
  tar -C "$root" -c . | docker import -c 'WORKDIR /data' -c 'CMD ["valkey-server"]' - "$valkey_image" >/dev/null
fi
echo "$redis_image"
echo "$valkey_image"
