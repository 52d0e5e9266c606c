#!/bin/sh
# Installs the gateway as a systemd service (docs/deployment.md#install):
#   PREFIX/bin/backplane                      the binary
#   /etc/systemd/system/backplane.service     the unit (paths rewritten for PREFIX)
#   /etc/backplane/backplane.toml             an example configuration, never overwritten
# then, on a live system (no DESTDIR), creates the `backplane` system user, checks the
# configuration and enables and starts the service.
#
#   sudo packaging/install.sh [--bin PATH] [--prefix /usr/local] [--destdir DIR] [--no-start]
#
# --bin defaults to target/release/backplane (`cargo build --release -p backplane`, or the
# ARM64 one from scripts/build-arm64). DESTDIR (option or environment) stages the tree
# under DIR instead, as packagers do: no user is created and nothing is started, but the
# unit is enabled inside DIR (`systemctl --root`) when systemctl is there.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin="$here/../target/release/backplane"
prefix=/usr/local
destdir="${DESTDIR:-}"
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    *) echo "usage: install.sh [--bin PATH] [--prefix DIR] [--destdir DIR] [--no-start]" >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be absolute: $prefix" >&2; exit 2 ;; esac
[ -x "$bin" ] || { echo "install.sh: no binary at $bin (build it, or pass --bin PATH)" >&2; exit 1; }
if [ -z "$destdir" ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: installing into the system needs root (or pass --destdir DIR)" >&2
  exit 1
fi

bindir="$prefix/bin"
unitdir=/etc/systemd/system
confdir=/etc/backplane
d="$destdir"

install -d -m 0755 "$d$bindir" "$d$unitdir"
install -m 0755 "$bin" "$d$bindir/backplane"
sed "s|/usr/local/bin/backplane|$bindir/backplane|g" "$here/backplane.service" > "$d$unitdir/backplane.service"
chmod 0644 "$d$unitdir/backplane.service"
echo "installed $d$bindir/backplane and $d$unitdir/backplane.service"

# The configuration may hold secrets: readable by root and the service's group only.
install -d -m 0750 "$d$confdir"
if [ -e "$d$confdir/backplane.toml" ]; then
  echo "kept the existing $d$confdir/backplane.toml"
else
  install -m 0640 "$here/backplane.toml" "$d$confdir/backplane.toml"
  echo "installed the example configuration $d$confdir/backplane.toml"
fi

if [ -n "$d" ]; then
  if command -v systemctl >/dev/null 2>&1; then
    systemctl --root="$d" enable backplane.service
  fi
  echo "staged under $d: on the target, create the user (useradd --system backplane) and run systemctl enable --now backplane"
  exit 0
fi

if ! getent passwd backplane >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/backplane --no-create-home \
    --shell /usr/sbin/nologin backplane
  echo "created the system user backplane"
fi
chgrp -R backplane "$confdir"

"$bindir/backplane" check "$confdir/backplane.toml"
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$start" = 1 ]; then
    systemctl enable --now backplane.service
    echo "started: systemctl status backplane; journalctl -u backplane"
  else
    systemctl enable backplane.service
  fi
else
  echo "systemd is not running here: the unit is installed but not enabled"
fi
