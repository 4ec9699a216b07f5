#!/bin/sh
# Remove totem-agent. Keeps the config (/etc/totem-agent), the buffer and the
# business counters (/var/lib/totem-agent) and the totem-agent user, so a later
# install carries on where this one stopped; --purge removes those too.
#
#   sudo ./uninstall.sh                  stop the service, remove the program
#   sudo ./uninstall.sh --purge          ... and the config, the buffer, the user
#   sudo ./uninstall.sh --root DIR       from a directory tree (or DESTDIR=DIR)
#
# Idempotent: running it again on a removed install changes nothing.
set -eu

NAME=totem-agent
USER_NAME=totem-agent

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0"
}

die() {
    echo "uninstall.sh: $*" >&2
    exit 1
}

ARGS="$*"
ROOT=${DESTDIR:-}
PURGE=no
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) PURGE=yes; shift ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#--root=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
ROOT=${ROOT%/}

if [ "$(id -u)" != 0 ]; then
    die "must run as root (it stops a service and removes system files): sudo $0 $ARGS"
fi

echo "== totem-agent: uninstalling from ${ROOT:-/}"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    if systemctl cat $NAME >/dev/null 2>&1; then
        systemctl disable --now --quiet $NAME || echo "  note: could not stop $NAME cleanly"
    fi
fi

remove() {
    if [ -e "$ROOT$1" ] || [ -L "$ROOT$1" ]; then
        rm -rf "$ROOT$1"
        echo "  removed $1"
    fi
}

remove /usr/bin/$NAME
remove /usr/bin/$NAME-tray
remove /etc/systemd/system/$NAME.service
remove /etc/udev/rules.d/60-$NAME.rules
remove /etc/xdg/autostart/$NAME-tray.desktop
remove /usr/share/doc/$NAME

if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl reset-failed $NAME 2>/dev/null || true  # nothing to reset is fine
fi

if [ "$PURGE" = no ]; then
    echo "== removed the program; kept /etc/$NAME (config), /var/lib/$NAME (buffer)"
    echo "   and the user $USER_NAME. Remove those too with: $0 --purge"
    exit 0
fi

remove /etc/$NAME
remove /var/lib/$NAME
set --
[ -n "$ROOT" ] && set -- --root "$ROOT"
if grep -q "^$USER_NAME:" "$ROOT/etc/passwd" 2>/dev/null; then
    userdel "$@" $USER_NAME
    echo "  removed user $USER_NAME"
fi
if grep -q "^$USER_NAME:" "$ROOT/etc/group" 2>/dev/null; then
    groupdel "$@" $USER_NAME
    echo "  removed group $USER_NAME"
fi
echo "== purged: nothing of $NAME is left"
