#!/usr/bin/env bash
# Install or upgrade loacam on a Debian 12 host, from a checkout of the repo.
#
#   sudo ./systemd/install.sh
#
# Safe to re-run: every step checks what is already there. An existing
# /etc/loacam/loacam.yaml is never overwritten, and the service is never
# started or restarted by this script; it tells you what to run next.
set -euo pipefail

readonly VENV=/opt/loacam/.venv
readonly CONFIG_DIR=/etc/loacam
readonly CONFIG=/etc/loacam/loacam.yaml
readonly STATE_DIR=/var/lib/loacam
readonly UNIT_DEST=/etc/systemd/system/loacam.service
readonly DOC_DEST=/opt/loacam/share/doc/operations.md
readonly SVC_USER=loacam

# Resolve the repo root from this script's location, not from the caller's cwd.
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly repo

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

[[ "$(id -u)" -eq 0 ]] || die "must be run as root (try: sudo $0)"
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found; this script targets Debian 12"
for f in pyproject.toml systemd/loacam.service config/loacam.example.yaml; do
    [[ -f "$repo/$f" ]] || die "$repo/$f is missing; is $repo a loacam checkout?"
done

# The venv and the unit must be readable by the loacam user whatever the
# caller's umask is (a root umask of 077 would make the venv unusable).
umask 022
# runuser below would otherwise inherit a cwd (e.g. /root) loacam cannot enter.
cd /

# --- Debian packages ---------------------------------------------------------
# dpkg-query rather than `dpkg -s`: `dpkg -s` also succeeds for a package that
# was removed but whose config files remain ("deinstall ok config-files").
is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}
missing=()
# adduser is normally present on Debian, but not in minimal images. ffmpeg remuxes
# camera video to HLS for slow links; fonts-dejavu-core draws Vietnamese text on the
# "signal lost" picture, and levels and encodes announcements; espeak-ng reads
# Vietnamese when Google's text-to-speech cannot be reached.
for pkg in python3-venv mosquitto adduser ffmpeg fonts-dejavu-core espeak-ng; do
    is_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- System user -------------------------------------------------------------
if ! getent passwd "$SVC_USER" >/dev/null; then
    echo "Creating system user $SVC_USER"
    # Its home; owner and mode are set further down, once the user exists.
    install -d "$STATE_DIR"
    if getent group "$SVC_USER" >/dev/null; then
        adduser --system --ingroup "$SVC_USER" --home "$STATE_DIR" --no-create-home "$SVC_USER"
    else
        adduser --system --group --home "$STATE_DIR" --no-create-home "$SVC_USER"
    fi
fi

# --- Python package ----------------------------------------------------------
# (Re)create the venv if it is missing or its interpreter no longer runs, e.g.
# after a Debian upgrade replaced the python3 minor version it pointed to.
if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    echo "Creating virtualenv $VENV"
    /usr/bin/python3 -m venv --clear "$VENV"
fi
# Non-editable: the installed daemon must not depend on this checkout staying
# put. pip always rebuilds and reinstalls from a local directory, so this also
# picks up changes made without a version bump.
echo "Installing loacam from $repo into $VENV"
# Within the versions the test suite passed with (requirements/constraints.txt).
"$VENV/bin/pip" install --upgrade -c "$repo/requirements/constraints.txt" "$repo"
# So that operators can type `loacam check-config ...` as the docs say.
ln -sfn "$VENV/bin/loacam" /usr/local/bin/loacam

if [[ -f "$repo/docs/operations.md" ]]; then
    # Target of Documentation= in the unit.
    install -D -m 0644 "$repo/docs/operations.md" "$DOC_DEST"
fi

# --- Directories and configuration -------------------------------------------
# Same owner/mode as the unit's ConfigurationDirectory=/StateDirectory= would
# give them; created here so that `loacam user add` works before first start.
install -d -m 0750 -o root -g "$SVC_USER" "$CONFIG_DIR"
install -d -m 0750 -o "$SVC_USER" -g "$SVC_USER" "$STATE_DIR"

if [[ -e "$CONFIG" ]]; then
    echo "Keeping existing $CONFIG"
else
    echo "Installing example configuration to $CONFIG"
    install -m 0640 -o root -g "$SVC_USER" "$repo/config/loacam.example.yaml" "$CONFIG"
fi

# Checked as the service user, so that unreadable files show up here too.
# A failure does not stop the install: the example has placeholders that the
# operator has to fill in first.
config_ok=yes
if ! runuser -u "$SVC_USER" -- "$VENV/bin/loacam" check-config "$CONFIG"; then
    config_ok=no
    cat >&2 <<EOF

*** $CONFIG does not pass 'loacam check-config' (see above). ***
*** Edit it before starting the service; the service refuses to   ***
*** start (exit 78) with an invalid configuration.                 ***
*** ({credential: NAME} secrets exist only inside the service:     ***
*** an error about \$CREDENTIALS_DIRECTORY here is expected.)      ***

EOF
fi

# --- systemd unit ------------------------------------------------------------
install -m 0644 "$repo/systemd/loacam.service" "$UNIT_DEST"
was_active=no
if [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
    systemctl enable loacam.service
    if systemctl is-active --quiet loacam.service; then
        was_active=yes
    fi
else
    echo "Installed $UNIT_DEST, but systemd is not running here:" \
        "run 'systemctl daemon-reload && systemctl enable loacam.service' on the booted system."
fi

# --- Next steps --------------------------------------------------------------
echo
echo "loacam is installed. Next steps:"
step=1
if [[ "$config_ok" == no ]]; then
    echo "  $step. Edit $CONFIG, then check it:"
    echo "       runuser -u $SVC_USER -- $VENV/bin/loacam check-config $CONFIG"
else
    echo "  $step. Review $CONFIG"
fi
step=$((step + 1))
echo "  $step. Create the first administrator (you are asked for the password twice):"
echo "       loacam user add admin --role admin --config $CONFIG"
step=$((step + 1))
if [[ "$was_active" == yes ]]; then
    echo "  $step. The service is running the previous version; restart it when convenient:"
    echo "       systemctl restart loacam"
else
    echo "  $step. Start the service:"
    echo "       systemctl start loacam"
fi
echo "     Logs: journalctl -u loacam -f"
