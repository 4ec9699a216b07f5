#!/bin/sh
# Install (or upgrade) totem-agent as a systemd service on Linux.
#
#   sudo ./install.sh                      install the binary next to this script
#   sudo ./install.sh --binary dist/totem-agent
#   sudo ./install.sh --root /tmp/image    into a directory tree (image building, tests):
#                                          nothing is started, the host is not touched
#
# A totem-agent-tray binary beside the agent's is installed too, with the XDG
# autostart entry that starts it in each desktop session (the tray icon).
# Idempotent: running it again changes nothing, or upgrades what differs. The
# config (/etc/totem-agent/config.toml) and the buffer (/var/lib/totem-agent)
# are never overwritten. docs/install.md explains every step.
set -eu

NAME=totem-agent
USER_NAME=totem-agent
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    sed -n '2,13s/^# \{0,1\}//p' "$0"
    echo "options: --binary FILE  --root DIR (or DESTDIR=DIR)  --no-start  --help"
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

ARGS="$*"
ROOT=${DESTDIR:-}
BINARY=""
START=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || die "--binary needs a file"; BINARY=$2; shift 2 ;;
        --binary=*) BINARY=${1#--binary=}; shift ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#--root=}; shift ;;
        --no-start) START=no; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
ROOT=${ROOT%/}

if [ "$(id -u)" != 0 ]; then
    die "must run as root (it creates a system user and installs a service): sudo $0 $ARGS"
fi

# Where the pieces come from: a release folder has them next to this script,
# a source checkout in ../service_units and ../dist.
find_source() {
    for candidate in "$@"; do
        if [ -e "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
if [ -z "$BINARY" ]; then
    BINARY=$(find_source "$here/$NAME" "$here/../dist/$NAME") ||
        die "no $NAME binary next to this script or in ../dist: build it with installer/build-binary.sh, or pass --binary FILE"
fi
if [ ! -f "$BINARY" ] || [ ! -x "$BINARY" ]; then
    die "$BINARY is not an executable file"
fi
UNIT=$(find_source "$here/$NAME.service" "$here/../service_units/$NAME.service") ||
    die "cannot find $NAME.service"
RULES=$(find_source "$here/60-$NAME.rules" "$here/../service_units/60-$NAME.rules") ||
    die "cannot find 60-$NAME.rules"
EXAMPLE=$(find_source "$here/config.example.toml") || die "cannot find config.example.toml"
TRAY=$(find_source "$here/$NAME-tray.desktop" "$here/../service_units/$NAME-tray.desktop") || TRAY=""
# The tray icon is its own binary (the agent's carries no GUI toolkit), built
# beside it when the build had the tray extra; without it, no autostart entry.
TRAY_BINARY="$(dirname "$BINARY")/$NAME-tray"
if [ -z "$TRAY" ] || [ ! -f "$TRAY_BINARY" ] || [ ! -x "$TRAY_BINARY" ]; then
    TRAY_BINARY=""
fi
DOC=$(find_source "$here/install.md" "$here/../docs/install.md") || DOC=""

changed=""

# put SOURCE DEST MODE: copy when the content or mode differs (atomically: a
# running agent keeps its old binary until it restarts).
put() {
    src=$1 dest=$ROOT$2 mode=$3
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    tmp="$(dirname "$dest")/.$(basename "$dest").new"
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    chown 0:0 "$tmp"
    mv -f "$tmp" "$dest"
    echo "  installed $2"
    changed="$changed $2"
}

# ensure_dir PATH MODE UID GID
ensure_dir() {
    mkdir -p "$ROOT$1"
    chmod "$2" "$ROOT$1"
    chown "$3:$4" "$ROOT$1"
}

# The system user, in $ROOT's own user database (useradd --root).
account_id() {  # account_id passwd|group NAME FIELD
    awk -F: -v name="$2" -v field="$3" '$1 == name { print $field }' "$ROOT/etc/$1" 2>/dev/null
}

echo "== totem-agent: installing into ${ROOT:-/}"
if [ -z "$(account_id passwd "$USER_NAME" 1)" ]; then
    [ -f "$ROOT/etc/passwd" ] || die "$ROOT/etc/passwd does not exist: --root must be a system tree"
    groups=""
    for group in dialout lp; do
        if [ -n "$(account_id group "$group" 1)" ]; then
            groups="${groups:+$groups,}$group"
        fi
    done
    set -- --system --user-group --home-dir /var/lib/$NAME --no-create-home \
        --shell /usr/sbin/nologin --comment "totem-agent monitoring agent"
    [ -n "$groups" ] && set -- "$@" --groups "$groups"
    if [ -n "$ROOT" ]; then
        set -- --root "$ROOT" "$@"
    fi
    useradd "$@" "$USER_NAME"
    echo "  created system user $USER_NAME${groups:+ (groups $groups)}"
fi
uid=$(account_id passwd "$USER_NAME" 3)
gid=$(account_id passwd "$USER_NAME" 4)

put "$BINARY" /usr/bin/$NAME 755
put "$UNIT" /etc/systemd/system/$NAME.service 644
put "$RULES" /etc/udev/rules.d/60-$NAME.rules 644
if [ -n "$TRAY_BINARY" ]; then
    put "$TRAY_BINARY" /usr/bin/$NAME-tray 755
    put "$TRAY" /etc/xdg/autostart/$NAME-tray.desktop 644
else
    echo "  no $NAME-tray next to $BINARY: no tray icon (docs/install.md, \"The tray\")"
fi
put "$EXAMPLE" /usr/share/doc/$NAME/config.example.toml 644
[ -n "$DOC" ] && put "$DOC" /usr/share/doc/$NAME/install.md 644

# Config and state: created once, never overwritten (an upgrade keeps both).
ensure_dir /etc/$NAME 750 0 "$gid"
if [ ! -e "$ROOT/etc/$NAME/config.toml" ]; then
    cp "$EXAMPLE" "$ROOT/etc/$NAME/config.toml"
    chmod 640 "$ROOT/etc/$NAME/config.toml"
    chown "0:$gid" "$ROOT/etc/$NAME/config.toml"
    echo "  wrote /etc/$NAME/config.toml from the commented example"
fi
ensure_dir /var/lib/$NAME 750 "$uid" "$gid"

if [ -n "$ROOT" ]; then
    echo "== installed into $ROOT; nothing was started (the host is not touched)"
    exit 0
fi
if [ ! -d /run/systemd/system ]; then
    echo "== installed. systemd is not running here (not PID 1), so nothing was started."
    echo "   Start the agent with your init system as user $USER_NAME:"
    echo "     /usr/bin/$NAME run --config /etc/$NAME/config.toml"
    echo "   (with TOTEM_AGENT_STATE_DIR=/var/lib/$NAME), or on a systemd machine:"
    echo "     systemctl daemon-reload && systemctl enable --now $NAME"
    exit 0
fi
if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload || echo "  note: udevadm control --reload failed; replug the devices"
fi
systemctl daemon-reload
if [ "$START" = no ]; then
    echo "== installed; not started (--no-start). Start with: systemctl enable --now $NAME"
    exit 0
fi
systemctl enable --quiet $NAME
if systemctl is-active --quiet $NAME; then
    # Whole words: /usr/bin/totem-agent-tray changing alone needs no service restart.
    case "$changed " in
        *" /usr/bin/$NAME "*|*"/$NAME.service "*)
            systemctl restart $NAME
            echo "== upgraded and restarted $NAME (config and buffer kept)" ;;
        *) echo "== $NAME is up to date and running" ;;
    esac
else
    systemctl start $NAME
    echo "== $NAME started"
fi
echo "   check it: systemctl status $NAME; $NAME status; curl -s http://127.0.0.1:10084/metrics | head"
