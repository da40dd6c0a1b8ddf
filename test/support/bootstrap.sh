#!/usr/bin/env bash
# Makes sure the integration tests have a Docker engine and a Redis image, then prints the image.
#  - A machine with a working Docker engine is used as it is (REDIS_IMAGE picks the image).
#  - On a Debian machine without one (root, no registry but Debian's), installs docker.io, starts
#    dockerd without a bridge (containers use the host network) and builds the image locally with
#    `docker import` from Debian's own redis-server: nothing is pulled.
set -euo pipefail

log() { echo "bootstrap: $*" >&2; }

apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || { log "need $* (not root on Debian: install it yourself)"; exit 1; }
  if [ ! -f /tmp/.snapshot-persist-apt-updated ]; then apt-get update -qq >&2 && touch /tmp/.snapshot-persist-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { log "installing docker.io"; apt_install docker.io; }
  log "starting dockerd (--bridge=none --iptables=false)"
  nohup dockerd --bridge=none --iptables=false >/tmp/snapshot-persist-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /tmp/snapshot-persist-dockerd.log"; exit 1; }
fi

image=${REDIS_IMAGE:-}
if [ -z "$image" ]; then
  if command -v apt-get >/dev/null; then
    image=snapshot-persist-redis:bookworm
    if ! docker image inspect "$image" >/dev/null 2>&1; then
      command -v redis-server >/dev/null || { log "installing redis-server"; apt_install redis-server; }
      log "building $image from $(redis-server --version | cut -d' ' -f1-3)"
      root=$(mktemp -d)
      bin=$(readlink -f "$(command -v redis-server)")
      install -D "$bin" "$root/usr/bin/redis-server"
      for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do install -D "$(readlink -f "$lib")" "$root$lib"; done
      mkdir -p "$root/tmp" "$root/data"
      tar -C "$root" -c . | docker import -c 'WORKDIR /data' -c 'CMD ["/usr/bin/redis-server"]' - "$image" >/dev/null
      rm -rf "$root"
    fi
  else
    image=redis:7.0
  fi
fi
echo "$image"
