#!/usr/bin/env bash
# opamp-agent's idle footprint: RSS (VmRSS), PSS (smaps_rollup) and CPU of the opamp-agent
# process alone, idle for a while, connected over WebSocket to a local opampd, managing
#   1. collectd (Debian's /usr/sbin/collectd, read plugins load + memory, 10 s interval,
#      a remote config applied through opampd first), and
#   2. `sleep` (nothing to watch but the process).
# Release builds. Prints a Markdown table (docs/BENCHMARKS.md, "opamp-agent idle footprint")
# and, per scenario, the largest mappings of opamp-agent by RSS.
#
# Usage (from anywhere in the repository):
#   crates/opamp-agent/bench/footprint.sh [IDLE_SECONDS]     # default 60
# Environment: CARGO_TARGET_DIR (default: <repo>/target); SKIP_BUILD=1 to use existing
# release binaries; AGENT_BIN to measure another opamp-agent binary (e.g. another profile).
set -euo pipefail

idle="${1:-60}"
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
agent_bin="${AGENT_BIN:-$target/release/opamp-agent}"
opampd_bin="$target/release/opampd"
tck="$(getconf CLK_TCK)"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$repo" && cargo build --release --quiet -p opamp-agent -p opampd)
fi
for b in "$agent_bin" "$opampd_bin"; do
  [ -x "$b" ] || { echo "missing $b (cargo build --release -p opamp-agent -p opampd)" >&2; exit 1; }
done
for t in curl jq; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# opampd on port 0; ports.json says where.
mkdir -p "$work/opampd"
"$opampd_bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/opampd" \
  >"$work/opampd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/opampd/ports.json" ] && break; sleep 0.1; done
opamp="$(jq -r .opamp "$work/opampd/ports.json")"
admin="http://$(jq -r .admin "$work/opampd/ports.json")"

# Waits until opampd lists an agent with service.name=$1 that satisfies the jq filter $2.
wait_agent() {
  for _ in $(seq 300); do
    local uid
    uid="$(curl -fsS "$admin/api/v1/agents?selector=service.name%3D$1" |
      jq -r ".agents[] | select($2) | .instance_uid" | head -n1)"
    if [ -n "$uid" ]; then echo "$uid"; return 0; fi
    sleep 0.2
  done
  echo "agent $1 never matched $2" >&2
  curl -fsS "$admin/api/v1/agents" >&2 || true
  tail -n 30 "$work"/*/agent.log >&2 || true
  return 1
}

# ticks used so far (utime + stime) by a pid
ticks() { awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "$1"; }

rows=()
run() { # name command args...
  local name="$1" dir="$work/$1"
  shift
  mkdir -p "$dir"
  local args=""
  for a in "${@:2}"; do args+="\"$a\", "; done
  cat >"$dir/agent.toml" <<EOF
state_dir = "state"
[server]
endpoint = "ws://$opamp/v1/opamp"
[description]
identifying = { "service.name" = "$name" }
[process]
command = "$1"
args = [${args%, }]
working_dir = "{config_dir}"
[config]
accept_remote = true
main_file = "collectd.conf"
health_gate = "2s"
[[config.local]]
name = "base.conf"
body = '''
Hostname "footprint"
FQDNLookup false
BaseDir "$dir/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 10
LoadPlugin csv
<Plugin csv>
  DataDir "$dir/collectd/csv"
</Plugin>
Include "collectd.conf"
'''
[[health.checks]]
name = "process"
type = "process"
interval = "10s"
timeout = "2s"
EOF
  # As root (a container), opamp-agent must be told that root is wanted (SEC-2).
  local root_flag=()
  if [ "$(id -u)" = 0 ]; then root_flag=(--allow-root); fi
  "$agent_bin" --config "$dir/agent.toml" --log-level warn "${root_flag[@]}" >"$dir/agent.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local uid
  uid="$(wait_agent "$name" '.connected')"
  if [ "$name" = collectd ]; then
    # (collectd refuses a last line without its newline: no $(...) here.)
    local body=$'LoadPlugin load\nLoadPlugin memory\n'
    curl -fsS -X POST -H 'content-type: application/json' "$admin/api/v1/configs" \
      -d "$(jq -n --arg b "$body" '{name: "footprint", files: {"collectd.conf": {content_type: "text/plain", body: $b}}}')" >/dev/null
    curl -fsS -X POST -H 'content-type: application/json' "$admin/api/v1/assignments" \
      -d "$(jq -n --arg u "$uid" '{config: "footprint", agent: $u}')" >/dev/null
    wait_agent "$name" '.remote_config_status.status == "APPLIED"' >/dev/null
  fi
  sleep 5 # let start-up settle
  local t0 c0 t1 c1
  t0="$(date +%s.%N)"
  c0="$(ticks "$pid")"
  sleep "$idle"
  t1="$(date +%s.%N)"
  c1="$(ticks "$pid")"
  local rss pss hwm cpu anon
  rss="$(kib "/proc/$pid/status" VmRSS)"
  anon="$(kib "/proc/$pid/smaps_rollup" Anonymous)"
  hwm="$(kib "/proc/$pid/status" VmHWM)"
  pss="$(kib "/proc/$pid/smaps_rollup" Pss)"
  cpu="$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$tck" \
    'BEGIN { printf "%.2f", (b - a) / hz / (t1 - t0) * 100 }')"
  local threads
  threads="$(awk '$1 == "Threads:" { print $2 }' "/proc/$pid/status")"
  rows+=("| $name | $(awk -v k="$rss" 'BEGIN { printf "%.2f", k / 1024 }') MiB | $(awk -v k="$pss" 'BEGIN { printf "%.2f", k / 1024 }') MiB | $(awk -v k="$hwm" 'BEGIN { printf "%.2f", k / 1024 }') MiB | $(awk -v k="$anon" 'BEGIN { printf "%.2f", k / 1024 }') MiB | $cpu % ($((c1 - c0)) ticks in ${idle} s) | $threads |")
  echo "## $name: largest mappings of opamp-agent (pid $pid) by RSS" >&2
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6 " (" $2 ")") } $1 == "Rss:" { rss[name] += $2 }
       END { for (n in rss) if (rss[n] > 0) printf "%8d KiB  %s\n", rss[n], n }' "/proc/$pid/smaps" |
    sort -rn | head -n 14 >&2
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

[ -x /usr/sbin/collectd ] && run collectd /usr/sbin/collectd -f -C "{config_dir}/base.conf"
run sleep /bin/sleep infinity

echo
echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; idle window ${idle} s after a 5 s settle; opamp-agent ${AGENT_COMMIT:-$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)} (release)"
echo
echo "| managed process | RSS (VmRSS) | PSS (smaps_rollup) | peak RSS (VmHWM) | anonymous (smaps_rollup) | CPU | threads |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
