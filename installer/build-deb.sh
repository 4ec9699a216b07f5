#!/bin/sh
# Build a Debian package of the single-file binary with dpkg-deb (no debhelper).
#
#   installer/build-deb.sh dist/totem-agent              -> dist/totem-agent_VERSION_ARCH.deb
#   installer/build-deb.sh --out DIR dist/totem-agent
#   installer/build-deb.sh --fast ...        gzip -1 instead of xz (seconds, not 20 s; tests)
#
# The package installs what install.sh installs, in the places a package uses
# (/usr/lib/systemd/system, /usr/lib/udev/rules.d); /etc/totem-agent/config.toml
# is a conffile (kept, and asked about, on upgrade). postinst creates the user
# and starts the service when systemd runs; `apt purge` removes the user and
# /var/lib/totem-agent, `apt remove` keeps them.
set -eu
cd "$(dirname "$0")/.."
OUT=dist
COMPRESS="-Zxz"
while [ $# -gt 1 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --fast) COMPRESS="-Zgzip -z1"; shift ;;
        *) echo "build-deb.sh: unknown option: $1" >&2; exit 64 ;;
    esac
done
[ $# -eq 1 ] || { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 64; }
BINARY=$1
[ -x "$BINARY" ] || { echo "build-deb.sh: $BINARY is not an executable file" >&2; exit 1; }

VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' agent/__init__.py)
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"  # the package's "./": mktemp made it 0700
install -D -m 755 "$BINARY" "$STAGE/usr/bin/totem-agent"
install -D -m 644 service_units/totem-agent.service "$STAGE/usr/lib/systemd/system/totem-agent.service"
install -D -m 644 service_units/60-totem-agent.rules "$STAGE/usr/lib/udev/rules.d/60-totem-agent.rules"
install -D -m 640 installer/config.example.toml "$STAGE/etc/totem-agent/config.toml"
install -D -m 644 installer/config.example.toml "$STAGE/usr/share/doc/totem-agent/config.example.toml"
install -D -m 644 docs/install.md "$STAGE/usr/share/doc/totem-agent/install.md"
# The tray icon's own binary, when it was built beside the agent's (install.sh's rule).
TRAY_BINARY="$(dirname "$BINARY")/totem-agent-tray"
if [ -x "$TRAY_BINARY" ] && [ -f service_units/totem-agent-tray.desktop ]; then
    install -D -m 755 "$TRAY_BINARY" "$STAGE/usr/bin/totem-agent-tray"
    install -D -m 644 service_units/totem-agent-tray.desktop \
        "$STAGE/etc/xdg/autostart/totem-agent-tray.desktop"
fi

mkdir -p "$STAGE/DEBIAN"
cat > "$STAGE/DEBIAN/control" <<EOF
Package: totem-agent
Version: $VERSION
Architecture: $ARCH
Maintainer: totem-agent maintainers <totem-agent@localhost>
Section: admin
Priority: optional
Depends: adduser
Installed-Size: $(du -sk "$STAGE/usr" | cut -f1)
Description: monitoring agent for self-service kiosks
 Watches the kiosk (system metrics with node_exporter's names, receipt
 printer, PIN pad, business events), keeps every sample in a local buffer
 while offline and ships it to Prometheus. Serves /metrics and /health.
EOF
find "$STAGE/etc" -type f | sed "s|^$STAGE||" > "$STAGE/DEBIAN/conffiles"

cat > "$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd totem-agent >/dev/null; then
        adduser --system --group --home /var/lib/totem-agent --no-create-home \
            --gecos "totem-agent monitoring agent" totem-agent
    fi
    for group in dialout lp; do
        if getent group "$group" >/dev/null; then adduser totem-agent "$group" >/dev/null; fi
    done
    chgrp totem-agent /etc/totem-agent /etc/totem-agent/config.toml
    chmod 750 /etc/totem-agent
    install -d -m 750 -o totem-agent -g totem-agent /var/lib/totem-agent
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        udevadm control --reload || true  # replugging the device does the same
        systemctl enable totem-agent >/dev/null
        systemctl restart totem-agent
    fi
fi
EOF
cat > "$STAGE/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl disable --now totem-agent >/dev/null || true  # already stopped is fine
fi
EOF
cat > "$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ]; then
    rm -rf /var/lib/totem-agent /etc/totem-agent
    if getent passwd totem-agent >/dev/null; then deluser --quiet --system totem-agent || true; fi
fi
EOF
chmod 755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"
mkdir -p "$OUT"
DEB="$OUT/totem-agent_${VERSION}_${ARCH}.deb"
# shellcheck disable=SC2086  # COMPRESS is one or two options
dpkg-deb --root-owner-group $COMPRESS --build "$STAGE" "$DEB" >/dev/null
echo "built $DEB ($(wc -c < "$DEB") bytes)"
