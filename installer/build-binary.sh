#!/bin/sh
# Build the single-file binary dist/totem-agent with PyInstaller (about 25 s; 50 s with the tray).
#
#   installer/build-binary.sh                     -> dist/totem-agent
#   installer/build-binary.sh --dist DIR --work DIR
#
# With the tray extra in the venv, dist/totem-agent-tray too (the tray icon).
# DIST becomes a release folder: the binary, install.sh, uninstall.sh, the unit,
# the udev rules and the example config side by side (copy it to a USB stick;
# `sudo ./install.sh` there, or `sudo ./totem-agent service install`).
#
# Needs PyInstaller in the venv: pip install -e '.[build]' (or scripts/bootstrap-venv
# test, whose extra includes it). Builds for the machine it runs on: build the
# Windows .exe on Windows (docs/install.md).
set -eu
cd "$(dirname "$0")/.."
DIST=dist
WORK=build/pyinstaller
while [ $# -gt 0 ]; do
    case "$1" in
        --dist) DIST=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        -h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "build-binary.sh: unknown option: $1" >&2; exit 64 ;;
    esac
done
if [ -x .venv/bin/pyinstaller ]; then
    PYINSTALLER=.venv/bin/pyinstaller
elif command -v pyinstaller >/dev/null 2>&1; then
    PYINSTALLER=pyinstaller
else
    echo "build-binary.sh: PyInstaller is not installed: .venv/bin/pip install 'pyinstaller>=6'" >&2
    exit 1
fi
"$PYINSTALLER" --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" installer/totem-agent.spec
cp installer/install.sh installer/uninstall.sh installer/config.example.toml \
    service_units/totem-agent.service service_units/60-totem-agent.rules "$DIST/"
for optional in service_units/totem-agent-tray.desktop docs/install.md; do
    if [ -f "$optional" ]; then cp "$optional" "$DIST/"; fi
done
echo "built $DIST/totem-agent ($(wc -c < "$DIST/totem-agent") bytes)"
if [ -f "$DIST/totem-agent-tray" ]; then
    echo "built $DIST/totem-agent-tray ($(wc -c < "$DIST/totem-agent-tray") bytes)"
else
    echo "no tray binary: this venv has no pystray (pip install -e '.[tray]')"
fi
