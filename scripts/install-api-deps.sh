#!/usr/bin/env bash
# Installs what the control-plane API tests need: PostgreSQL (Debian package; the tests start
# their own throwaway cluster and never touch an existing one) and, in a virtualenv under
# target/api-venv (gitignored), the `openstack` CLI and openstacksdk with what its shipped
# functional tests need. Idempotent: installs only what is missing. Prints the venv path.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || need+=(postgresql)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
have runuser || need+=(util-linux)
have curl || need+=(curl)
have psql || need+=(postgresql-client)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

VENV="${WEFT_API_VENV:-$PWD/target/api-venv}"
# Pinned to the versions the tests were written against (docs/api.md).
PKGS=(
    "python-openstackclient==10.5.0"
    "openstacksdk==4.22.0"
    "pytest==9.2.0"
    "fixtures==4.3.2"
    "oslotest==6.1.1"
    "testtools==2.9.1"
    "requests-mock==1.12.1"
)
stamp="$VENV/.weft-installed"
want="${PKGS[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[@]}" >&2
    echo "$want" >"$stamp"
fi
echo "$VENV"
