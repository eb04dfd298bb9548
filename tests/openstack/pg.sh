# Sourced by scripts/test-api.sh and scripts/bench-api.sh: a throwaway PostgreSQL cluster in a
# temporary directory, owned by the postgres user, listening on 127.0.0.1 on a free port (and a
# socket in its own directory). Never touches an existing cluster. `pg_start` sets PG_URL;
# `pg_stop` stops and removes it (call it from an EXIT trap).

PG_DIR=""
PG_URL=""

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

pg_start() {
    local bin port
    bin="$(pg_bin)"
    [ -x "$bin/initdb" ] || { echo "pg.sh: PostgreSQL is not installed (scripts/install-api-deps.sh)" >&2; return 1; }
    id postgres >/dev/null 2>&1 || { echo "pg.sh: no postgres user" >&2; return 1; }
    PG_DIR="$(mktemp -d /tmp/weft-pg.XXXXXX)"
    chown postgres "$PG_DIR"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
    runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >"$PG_DIR/initdb.log" 2>&1
    runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$PG_DIR -c max_connections=200 -c fsync=on" \
        start >/dev/null
    PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    export PG_URL
}

pg_stop() {
    local bin
    bin="$(pg_bin)"
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
    PG_DIR=""
}
