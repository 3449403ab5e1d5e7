# shellcheck shell=bash
# Helpers shared by the tests/cluster scripts. Source it; do not run it.

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# ensure_pkgs PKG...: apt-get install the Debian packages that are not installed yet.
# Only runs apt-get (and its update) when something is missing, so repeated calls are cheap.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  # On a fresh machine the package lists may be empty or stale.
  local aptlog; aptlog=$(mktemp)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >"$aptlog" 2>&1; then
    tail -n 30 "$aptlog" >&2; rm -f "$aptlog"
    die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$aptlog"
}

# Debian's python3 (a pyenv shim, where there is one, costs ~0.1 s per call).
py() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else python3 "$@"; fi; }

# port_free PORT: true when we could bind 127.0.0.1:PORT the way etcd and the
# apiserver do (SO_REUSEADDR, so TIME_WAIT leftovers of old connections don't count).
port_free() {
  py - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

# pick_port: print a random port in 20000-59999 that is free right now.
# Another process can still grab it before we bind; callers retry on a failed start.
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  die "no free loopback port found"
}

# proc_running PID: true while PID exists and is not a zombie (a zombie is a child of
# ours that exited but was not reaped yet; kill -0 still succeeds on it).
proc_running() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# pid_alive PIDFILE [COMM]: true when the pid in PIDFILE is a running process
# (and, given COMM, that process is named COMM: a stale pid file whose pid was
# reused by some other program does not count).
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  proc_running "$pid" || return 1
  [ -z "${2:-}" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# stop_pid PIDFILE NAME [TIMEOUT [SIGNAL]]: send SIGNAL (default TERM), wait up to
# TIMEOUT seconds, then SIGKILL. NAME is the process name (/proc/PID/comm); a pid
# that now belongs to another program is left alone. Safe when the file is missing
# or the process is gone; removes the pid file.
stop_pid() {
  local file=$1 name=$2 timeout=${3:-15} sig=${4:-TERM} pid _
  if ! pid_alive "$file" "$name"; then rm -f "$file"; return 0; fi
  pid=$(cat "$file")
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((timeout * 10))); do
    proc_running "$pid" || break
    sleep 0.1
  done
  if proc_running "$pid"; then
    log "$name (pid $pid) still running ${timeout}s after SIG$sig; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do proc_running "$pid" || break; sleep 0.1; done
  fi
  rm -f "$file"
}
