#!/usr/bin/env bash
# Compares lubeck with the thinnest possible handler (null-handler), two ways:
#   zmq  lubeck-bench plays Mongrel2 over ZeroMQ, so only the handler's own cost
#        shows (docs/architecture.md, "Where the time goes");
#   wrk  a real Mongrel2 in front and wrk over HTTP: what a user sees end to end.
# Every row is measured in this run, and compared with the null row of this run:
# a ratio means something, a bare time on an unknown machine does not.
#
# usage: tests/bench/run.sh [BUILD_DIR]          (default: build)
# env:   DURATION=5  seconds per measurement
#        ROUNDS=3    rounds of null, hello, class, one after the other; each
#                    figure is the median over the rounds, each ratio the median
#                    of the rounds' ratios (a row is compared with the null
#                    measured next to it, not minutes apart)
#        WINDOW=100  requests lubeck-bench keeps in flight
#        LATENCY_DURATION=2  seconds of the light-load run (window 1) per row
#        WRK_CONNECTIONS=50
#        M2_ACCESS_LOG=1   0 turns Mongrel2's access log off (it costs Mongrel2 ~30%)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "run.sh: no build dir '${1:-build}'" >&2; exit 2; }
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
WINDOW=${WINDOW:-100}
LATENCY_DURATION=${LATENCY_DURATION:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-50}
M2_ACCESS_LOG=${M2_ACCESS_LOG:-1}

for tool in lubeck-bench null-handler; do
    [[ -x $BUILD/$tool ]] || { echo "run.sh: $BUILD/$tool missing; build first" >&2; exit 2; }
done
for tool in mongrel2 m2sh wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not installed" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/lubeck-bench.XXXXXX)
PIDS=()

# Stops one process we started: TERM, then KILL if it is still there after 5 s.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints N free loopback ports, all different (held open together while chosen).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# The handler of a row, connected to SEND/RECV, in the background; sets HANDLER_PID.
# Its stdout (lubeck's access lines) goes to /dev/null, stderr to LOG.
start_handler() {
    local row=$1 send=$2 recv=$3 log=$4
    case $row in
        null)  "$BUILD/null-handler" --send "$send" --recv "$recv" >/dev/null 2>"$log" & ;;
        *)     "$BUILD/lubeck" run "$(app_of "$row")" --send "$send" --recv "$recv" >/dev/null 2>"$log" & ;;
    esac
    HANDLER_PID=$!
    PIDS+=("$HANDLER_PID")
}

# Why a row cannot run, or nothing.
skip_reason() {
    case $1 in
        null) ;;
        hello|class)
            if [[ ! -x $BUILD/lubeck ]]; then echo "skipped: $BUILD/lubeck missing"
            elif [[ ! -f $(app_of "$1")/app.lua ]]; then echo "skipped: $(app_of "$1")/app.lua missing"
            fi ;;
    esac
}

app_of() { [[ $1 == class ]] && echo "$ROOT/tests/bench/apps/classy" || echo "$ROOT/apps/hello"; }
path_of() { [[ $1 == class ]] && echo '/hello/world?greeting=hey' || echo /; }

# "key=value ..." → value
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# wrk prints latencies as 812.00us, 4.89ms or 1.02s; this gives microseconds.
to_us() {
    awk -v t="$1" 'BEGIN {
        v = t + 0
        if (t ~ /us$/) u = v; else if (t ~ /ms$/) u = v * 1000;
        else if (t ~ /m$/) u = v * 60e6; else if (t ~ /s$/) u = v * 1e6; else u = v
        printf "%.0f", u }'
}

# Each holds one value per round, space-separated.
declare -A ZRPS ZP50 ZP99 ZCPU ZLAT WRPS WP99 WCPU NOTE

# CPU time a process (all its threads) has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# ---- zmq: lubeck-bench → handler ------------------------------------------------------

measure_zmq() {
    local row=$1 ports send recv line
    read -r -a ports <<<"$(free_ports 2)"
    send=tcp://127.0.0.1:${ports[0]} recv=tcp://127.0.0.1:${ports[1]}
    start_handler "$row" "$send" "$recv" "$TMP/$row.zmq.err"
    sleep 0.3   # past the handler's start-up, which is not what we measure
    local ticks=$(cpu_ticks "$HANDLER_PID")
    if line=$("$BUILD/lubeck-bench" --send "$send" --recv "$recv" --window "$WINDOW" \
                  --duration "$DURATION" --path "$(path_of "$row")" 2>"$TMP/$row.bench.err"); then
        # The handler's own CPU per request: unlike requests/s, it does not
        # depend on who wins the two cores.
        local cpu_us=$(awk -v t="$(($(cpu_ticks "$HANDLER_PID") - ticks))" -v us="$TICK_US" \
                           -v n="$(field "$line" requests)" 'BEGIN {if (n > 0) printf "%.2f", t * us / n}')
        echo "zmq   $row: $line cpu_us_per_request=$cpu_us"
        ZRPS[$row]+="$(field "$line" rps) " ZP50[$row]+="$(field "$line" p50_us) "
        ZP99[$row]+="$(field "$line" p99_us) " ZCPU[$row]+="$cpu_us "
        [[ $(field "$line" errors) == 0 ]] || NOTE[$row]+=" zmq errors=$(field "$line" errors);"
        # Light load: one request at a time, for the latency the host adds.
        if line=$("$BUILD/lubeck-bench" --send "$send" --recv "$recv" --window 1 \
                      --duration "$LATENCY_DURATION" --path "$(path_of "$row")" 2>>"$TMP/$row.bench.err"); then
            echo "zmq   $row (window 1): $line"
            ZLAT[$row]+="$(field "$line" p50_us) "
        fi
    else
        echo "zmq   $row: failed: $(tail -n 1 "$TMP/$row.bench.err")"
        tail -n 5 "$TMP/$row.zmq.err" | sed 's/^/      handler: /'
        NOTE[$row]+=" zmq run failed;"
    fi
    stop_pid "$HANDLER_PID"
}

# ---- wrk: wrk → Mongrel2 → handler ---------------------------------------------------

# Writes a one-route Mongrel2 config into DIR, loads it and starts mongrel2 in the
# foreground (daemonize 0). As root, chroot="/" keeps every path absolute; its own
# control_port keeps parallel runs from colliding on /run/control.
start_mongrel2() {
    local dir=$1 http=$2 send=$3 recv=$4 uuid i
    uuid=$(cat /proc/sys/kernel/random/uuid)
    mkdir -p "$dir"
    cat >"$dir/conf" <<EOF
bench = Server(
    uuid="$uuid",
    name="bench",
    chroot="/",
    access_log="$dir/access.log",
    error_log="$dir/error.log",
    pid_file="$dir/mongrel2.pid",
    control_port="ipc://$dir/control",
    default_host="localhost",
    bind_addr="127.0.0.1",
    port=$http,
    hosts=[Host(name="localhost", routes={
        "/": Handler(send_spec="$send", send_ident="$(cat /proc/sys/kernel/random/uuid)",
                     recv_spec="$recv", recv_ident="")
    })]
)
settings = {"server.daemonize": 0, "disable.access_logging": $((M2_ACCESS_LOG ? 0 : 1))}
servers = [bench]
EOF
    (cd "$dir" && LOGNAME=${LOGNAME:-root} m2sh load -config conf -db db.sqlite >"$dir/m2sh.out" 2>&1) ||
        { echo "run.sh: m2sh load failed:"; cat "$dir/m2sh.out"; return 1; } >&2
    (cd / && exec mongrel2 "$dir/db.sqlite" "$uuid") >"$dir/mongrel2.out" 2>&1 &
    M2_PID=$!
    PIDS+=("$M2_PID")
    for ((i = 0; i < 100; i++)); do     # Mongrel2 retries a busy bind for 10 s
        (exec 3<>"/dev/tcp/127.0.0.1/$http") 2>/dev/null && return 0
        kill -0 "$M2_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "run.sh: mongrel2 did not start listening on $http:" >&2
    tail -n 5 "$dir/mongrel2.out" "$dir/error.log" >&2 2>/dev/null || true
    return 1
}

measure_wrk() {
    local row=$1 ports http send recv dir url code out rps p99 non2xx sockerr
    read -r -a ports <<<"$(free_ports 3)"
    http=${ports[0]} send=tcp://127.0.0.1:${ports[1]} recv=tcp://127.0.0.1:${ports[2]}
    dir=$TMP/m2-$row
    if ! start_mongrel2 "$dir" "$http" "$send" "$recv"; then
        NOTE[$row]+=" mongrel2 failed;"
        return
    fi
    start_handler "$row" "$send" "$recv" "$TMP/$row.wrk.err"
    url="http://127.0.0.1:$http$(path_of "$row")"
    # One request first: it waits inside Mongrel2 until the handler is connected,
    # and shows that the row answers what it should before we time it.
    code=$(curl -sS -m 10 -H 'Cookie: session=abc' -o "$TMP/$row.body" -w '%{http_code}' "$url" \
               2>"$TMP/$row.curl.err") || code=000
    if [[ $code != 000 ]]; then
        echo "check $row: GET $(path_of "$row") → $code $(head -c 100 "$TMP/$row.body" | tr -s '\r\n' ' ')"
        [[ $code == [23]?? ]] || NOTE[$row]+=" check answered $code;"
    else
        echo "check $row: GET $(path_of "$row") failed: $(head -n 1 "$TMP/$row.curl.err")"
        tail -n 5 "$TMP/$row.wrk.err" | sed 's/^/      handler: /'
        NOTE[$row]+=" no answer through Mongrel2, wrk not run;"
        stop_pid "$HANDLER_PID"
        stop_pid "$M2_PID"
        return
    fi
    local ticks=$(cpu_ticks "$HANDLER_PID")
    out=$(wrk -t1 -c"$WRK_CONNECTIONS" -d"${DURATION}s" --latency -H 'Cookie: session=abc' "$url" 2>&1) ||
        NOTE[$row]+=" wrk failed: $(tail -n 1 <<<"$out");"
    local cpu_us=$(awk -v t="$(($(cpu_ticks "$HANDLER_PID") - ticks))" -v us="$TICK_US" \
                       '/ requests in / {if ($1 > 0) printf "%.2f", t * us / $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    WRPS[$row]+="$rps " WCPU[$row]+="$cpu_us "
    [[ -z $p99 ]] || WP99[$row]+="$(to_us "$p99") "
    echo "wrk   $row: rps=$rps p99=$p99 handler_cpu_us_per_request=$cpu_us"
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    sockerr=$(grep -m1 'Socket errors:' <<<"$out" || true)
    [[ -z $non2xx ]] || NOTE[$row]+=" wrk non-2xx/3xx=$non2xx;"
    [[ -z $sockerr ]] || NOTE[$row]+=" wrk${sockerr#*Socket errors};"
    stop_pid "$HANDLER_PID"
    stop_pid "$M2_PID"
}

# ---- the reference: nginx + lua-nginx-module, `ngx.say` behind the same wrk load ------------

NGINX_DIR=${NGINX_DIR:-$BUILD/nginx-ref}

measure_nginx() {
    local row=nginx port dir out rps p99
    if [[ ! -x $NGINX_DIR/usr/sbin/nginx ]]; then
        NOTE[$row]+=" not unpacked (tests/bench/nginx-fetch.sh $NGINX_DIR);"
        return
    fi
    read -r port <<<"$(free_ports 1)"
    dir=$TMP/nginx
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
load_module $NGINX_DIR/usr/lib/nginx/modules/ndk_http_module.so;
load_module $NGINX_DIR/usr/lib/nginx/modules/ngx_http_lua_module.so;
events { worker_connections 1024; }
http {
    access_log off;
    lua_package_path "$NGINX_DIR/usr/share/lua/5.1/?.lua;;";
    client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fcgi;
    uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        location / { default_type "text/html; charset=utf-8"; content_by_lua_block { ngx.print("Hello from Lua") } }
    }
}
CONF
    LD_LIBRARY_PATH=$NGINX_DIR/usr/lib/x86_64-linux-gnu "$NGINX_DIR/usr/sbin/nginx" \
        -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" >"$dir/out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 50; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    out=$(wrk -t1 -c"$WRK_CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/" 2>&1) ||
        NOTE[$row]+=" wrk failed;"
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    WRPS[$row]=$rps
    [[ -z $p99 ]] || WP99[$row]=$(to_us "$p99")
    echo "wrk   $row: rps=$rps p99=$p99"
    stop_pid "$pid"
}

# ---- the run ---------------------------------------------------------------------------

ROWS=(null hello class nginx)
declare -A LABEL=([null]="null" [hello]="lubeck hello" [class]="lubeck class" [nginx]="nginx+lua ref")

echo "lubeck bench: ${DURATION}s per measurement; zmq window $WINDOW; wrk -t1 -c$WRK_CONNECTIONS;" \
     "Mongrel2 access log $([[ $M2_ACCESS_LOG == 0 ]] && echo off || echo on); $(nproc) CPUs"
# Other work on the machine skews rows measured at different moments; say so.
read -r load _ </proc/loadavg
if awk -v l="$load" -v n="$(nproc)" 'BEGIN {exit !(l > 0.5 * n)}'; then
    echo "warning: load average $load on $(nproc) CPUs before starting; expect noisy ratios"
fi
for ((round = 1; round <= ROUNDS; round++)); do
    echo "-- round $round of $ROUNDS"
    for row in null hello class; do
        reason=$(skip_reason "$row")
        if [[ -n $reason ]]; then
            ((round > 1)) || echo "${LABEL[$row]}: $reason"
            continue
        fi
        measure_zmq "$row"
        measure_wrk "$row"
    done
done
measure_nginx

median() {   # of the numbers given, or "-" when there are none
    tr ' ' '\n' <<<"$*" | awk 'NF' | sort -g |
        awk '{v[NR] = $1} END {if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                              else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# per_round EXPR ROW_VALUES NULL_VALUES: the median over the rounds of EXPR (awk,
# of a, the row's value, and b, null's), each pair measured in the same round.
per_round() {
    local -a v base
    read -r -a v <<<"${2:-}"
    read -r -a base <<<"${3:-}"
    local i out=()
    for ((i = 0; i < ${#v[@]} && i < ${#base[@]}; i++)); do
        out+=("$(awk -v a="${v[$i]}" -v b="${base[$i]}" "BEGIN {if (b > 0) printf \"%.3f\", $1}")")
    done
    median "${out[@]}"
}

ratio() { local m; m=$(per_round 'a / b' "$@"); [[ $m == - ]] && echo - || printf '%.2f' "$m"; }
difference() { local m; m=$(per_round 'a - b' "$@"); [[ $m == - ]] && echo - || printf '%.1f' "$m"; }

# For the nginx row: its one measurement over the median null.
ratio_to_median() {
    local v=${1:-} base
    base=$(median ${2:-})
    [[ -n $v && $base != - ]] && awk -v a="$v" -v b="$base" 'BEGIN {printf "%.2f", a / b}' || echo -
}

# A wrk figure over null's: per round, or for nginx (run once) over the median null.
wrk_ratio() { if [[ $1 == nginx ]]; then ratio_to_median "$2" "$3"; else ratio "$2" "$3"; fi; }

echo
printf '%-13s %10s %10s %10s %10s %10s %10s %11s %10s %10s %10s\n' "" "zmq rps" "zmq p50_us" \
    "zmq p99_us" "zmq ratio" "cpu_us/req" "wrk rps" "wrk p99_us" "wrk ratio" "p99 ratio" "cpu_us/req"
for row in "${ROWS[@]}"; do
    wrk_ratio=$(wrk_ratio "$row" "${WRPS[$row]:-}" "${WRPS[null]:-}")
    p99_ratio=$(wrk_ratio "$row" "${WP99[$row]:-}" "${WP99[null]:-}")
    printf '%-13s %10s %10s %10s %10s %10s %10s %11s %10s %10s %10s\n' "${LABEL[$row]}" \
        "$(median ${ZRPS[$row]:-})" "$(median ${ZP50[$row]:-})" "$(median ${ZP99[$row]:-})" \
        "$(ratio "${ZRPS[$row]:-}" "${ZRPS[null]:-}")" "$(median ${ZCPU[$row]:-})" \
        "$(median ${WRPS[$row]:-})" "$(median ${WP99[$row]:-})" "$wrk_ratio" "$p99_ratio" \
        "$(median ${WCPU[$row]:-})"
done
echo
printf '%-13s %16s %19s\n' "" "window-1 p50_us" "minus null's (us)"
for row in null hello class; do
    printf '%-13s %16s %19s\n' "${LABEL[$row]}" "$(median ${ZLAT[$row]:-})" \
        "$(difference "${ZLAT[$row]:-}" "${ZLAT[null]:-}")"
done
echo
echo "figures: medians over $ROUNDS rounds; ratios: the median of the rounds' row/null"
echo "(each pair measured one after the other); nginx: one run over the median null."
echo "cpu_us/req: the handler process's CPU time (all threads) per request, in each setup."
for row in "${ROWS[@]}"; do
    [[ -z ${NOTE[$row]:-} ]] || echo "note: ${LABEL[$row]}:${NOTE[$row]%;}"
done
