#  bench/bench-lib.sh: shared helpers of the pipeline benchmarks (sourced,
#  not run). Each benchmark gets a private durable PostgreSQL cluster (fsync
#  and synchronous_commit on: benchmarks must not measure a cluster that
#  may lose commits), in a fresh folder under /tmp, stopped on exit.
#
#    bench_init NAME          work folder, EXIT trap; sets $work, $top, $builddir
#    bench_pg_start           durable cluster + roles + both islands migrated;
#                             sets $pguri (superuser) and $pgbroker (cw_broker)
#                             (CW_BENCH_SQL: extra SQL after the migrations)
#    bench_psql SQL...        psql as superuser, quiet, stop on error
#    bench_spawn NAME CMD..   start a process in the background, remember
#                             its pid (stopped by pid on exit)
#    bench_box                one line: cores, load average, the busiest
#                             other processes (what shares the box)
#    median                   median of numbers on stdin, one a line

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
builddir="${CW_BUILDDIR:-$top/build/plain}"
work=
pgdir=
bench_pids=()

bench_cleanup() {
    local pid
    for pid in "${bench_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${bench_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$pgdir" ]; then
        "$top/scripts/pg" stop "$pgdir" >/dev/null 2>&1 || true
    fi
    if [ -n "$work" ] && [ -z "${CW_BENCH_KEEP:-}" ]; then
        rm -rf "$work"
    elif [ -n "$work" ]; then
        echo "kept $work" >&2
    fi
}

bench_init() {
    work="$(mktemp -d "/tmp/causeway-$1.XXXXXX")"
    chmod 0755 "$work"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_spawn() {
    local name="$1"
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.log" &
    bench_pids+=("$!")
    last_pid=$!
}

#  secret_file NAME VALUE: a 0600 file holding a secret (URIs, keys).
bench_secret() {
    (umask 077 && printf '%s\n' "$2" >"$work/$1")
    echo "$work/$1"
}

bench_as_role() { echo "${1%%\?*}?user=$2"; }

#  psql itself, not Debian's pg_wrapper (a Perl script: started every
#  0.2 s by bench_drain_run's polling it took ~5% of the box during B1).
bench_psql_bin="$(pg_config --bindir 2>/dev/null)/psql"
[ -x "$bench_psql_bin" ] || bench_psql_bin=psql

bench_psql() {
    "$bench_psql_bin" -X -q -v ON_ERROR_STOP=1 -At "$pguri" "$@"
}

bench_pg_start() {
    local migrate="$builddir/migrate/causeway-migrate" island
    [ -x "$migrate" ] || { echo "bench: $migrate not found: build first (make) or set CW_BUILDDIR" >&2; exit 2; }
    command -v pgbench >/dev/null || { echo "bench: pgbench not found (apt-get install postgresql-client-15)" >&2; exit 2; }
    pgdir="$work/pg"
    pguri="$(CW_PG_DURABLE=1 CW_PG_EXTRA="${bench_pg_extra:-}" "$top/scripts/pg" start "$pgdir")"
    CW_DB_URI_FILE="$(bench_secret superuser.uri "$pguri")" "$migrate" roles \
        --sql-dir "$top/sql" >/dev/null
    for island in erp_mw shop; do
        CW_DB_URI_FILE="$(bench_secret "$island.uri" "$(bench_as_role "$pguri" "cw_${island}_owner")")" \
            "$migrate" apply --island "$island" --sql-dir "$top/sql" >/dev/null
    done
    pgbroker="$(bench_as_role "$pguri" cw_broker)"
    #  CW_BENCH_SQL: extra SQL run after the migrations (e.g. an index to
    #  try), as the erp_mw owner; printed so results say what they measured.
    if [ -n "${CW_BENCH_SQL:-}" ]; then
        echo "extra SQL (CW_BENCH_SQL): $CW_BENCH_SQL"
        bench_psql -c "SET ROLE cw_erp_mw_owner" -c "$CW_BENCH_SQL"
    fi
    #  Say so if the cluster is not durable after all.
    local fsync sync
    fsync="$(bench_psql -c 'SHOW fsync')"
    sync="$(bench_psql -c 'SHOW synchronous_commit')"
    if [ "$fsync" != on ] || [ "$sync" != on ]; then
        echo "bench: the cluster is not durable (fsync=$fsync synchronous_commit=$sync)" >&2
        exit 1
    fi
}

#  bench_load_jobs N FLOW [TARGET]: N ready jobs of FLOW (for TARGET,
#  default erpsim), due now, then VACUUM ANALYZE and a CHECKPOINT so the
#  runs start from the same state.
bench_load_jobs() {
    bench_psql -c "TRUNCATE erp_mw.jobs, erp_mw.job_attempts" \
        -c "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,
                                     target, next_run_at, produced_at)
            SELECT '$2', 'bench', 'bench-' || g, jsonb_build_object('n', g),
                   '${3:-erpsim}', now() - interval '1 minute', now()
              FROM generate_series(1, $1) g" \
        -c "VACUUM ANALYZE erp_mw.jobs" -c "VACUUM ANALYZE erp_mw.job_attempts" \
        -c "CHECKPOINT"
}

bench_box() {
    local others
    others="$(ps -eo pcpu=,comm= --sort=-pcpu 2>/dev/null | awk '$1 >= 5 { printf "%s%s %s%%", sep, $2, $1; sep = ", " }' | head -c 300)"
    echo "box: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a);" \
        "busy processes: ${others:-none}"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

#  ---- the pipeline: erpsim, brokers, workers (B1-B4) -------------------
#
#    bench_certs                   broker + worker certificates in $work/keys
#    bench_erpsim [FLAGS..]        erpsim on a free port; sets $erp_url,
#                                  $erp_control, $erp_key_file, $erp_pid
#    bench_broker NAME [VAR=V..]   a broker (CW_BROKER_* overrides); sets
#                                  $broker_endpoint, $broker_pid
#    bench_worker NAME [VAR=V..]   a worker of $broker_endpoint against
#                                  erpsim (CW_WORKER_* overrides); $worker_pid
#    bench_wait_sql SQL SECONDS    until SQL returns t; 1 on timeout
#    bench_rss_kb PID              resident set size in KiB

bench_wait_file() {
    local i
    for i in $(seq 1 200); do
        [ -s "$1" ] && return 0
        sleep 0.05
    done
    return 1
}

bench_certs() {
    local cli="$builddir/client/causeway"
    mkdir -p "$work/keys" "$work/peers"
    "$cli" cert new --role admin --name broker --dir "$work/keys" >/dev/null
    "$cli" cert new --role worker --name worker --dir "$work/keys" >/dev/null
    cp "$work/keys/worker.pub" "$work/peers/"
    broker_public="$(sed -n 's/^ *public-key *= *"\(.*\)"/\1/p' "$work/keys/broker.pub")"
    [ -n "$broker_public" ] || { echo "bench: no public-key in $work/keys/broker.pub" >&2; exit 1; }
}

bench_erpsim() {
    erp_key="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
    erp_key_file="$(bench_secret erpsim.key "$erp_key")"
    bench_spawn erpsim "$builddir/erpsim/erpsim" --api-key-file "$erp_key_file" \
        --listen 127.0.0.1:0 --port-file "$work/erpsim.port" \
        --control-port-file "$work/erpsim.control" --log-level warn \
        --allow-unknown-customers "$@"
    erp_pid=$last_pid
    bench_wait_file "$work/erpsim.control" || { echo "bench: erpsim did not start" >&2; cat "$work/erpsim.log" >&2; exit 1; }
    erp_url="http://127.0.0.1:$(cat "$work/erpsim.port")"
    erp_control="http://127.0.0.1:$(cat "$work/erpsim.control")"
}

bench_broker() {
    local name="$1"
    shift
    local uri_file
    uri_file="$(bench_secret "$name.uri" "$pgbroker")"
    rm -f "$work/$name.endpoint"
    bench_spawn "$name" env CW_BROKER_DB_URI_FILE="$uri_file" \
        CW_BROKER_SERVER_CERT_FILE="$work/keys/broker.secret" \
        CW_BROKER_SERVER_PEERS="$work/peers" CW_BROKER_ID="$name" \
        CW_BROKER_SERVER_BIND='tcp://127.0.0.1:*' CW_BROKER_LOG_LEVEL=warn \
        "$@" "$builddir/broker/causeway-broker" --endpoint-file "$work/$name.endpoint"
    broker_pid=$last_pid
    bench_wait_file "$work/$name.endpoint" || { echo "bench: broker $name did not start" >&2; cat "$work/$name.log" >&2; exit 1; }
    broker_endpoint="$(cat "$work/$name.endpoint")"
}

bench_worker() {
    local name="$1"
    shift
    bench_spawn "$name" env CW_WORKER_BROKER_ENDPOINTS="$broker_endpoint" \
        CW_WORKER_BROKER_PUBLIC_KEY="$broker_public" \
        CW_WORKER_SECURITY_CERTIFICATE_FILE="$work/keys/worker.secret" \
        CW_WORKER_NAME="$name" CW_WORKER_TARGET_NAME=erp \
        CW_WORKER_TARGET_BASE_URL="$erp_url" \
        CW_WORKER_TARGET_CREDENTIALS_FILE="$erp_key_file" \
        CW_WORKER_TARGET_AUTH=api_key CW_WORKER_LOG_LEVEL=warn \
        "$@" "$builddir/worker/causeway-worker"
    worker_pid=$last_pid
}

bench_wait_sql() {
    local deadline=$(( $(date +%s) + $2 ))
    while [ "$(bench_psql -c "$1")" != t ]; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

bench_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

#  bench_http_jobs N: N ready http.generic jobs for target erp, each a
#  customer upsert at erpsim (a distinct key and customer per job).
bench_http_jobs() {
    bench_psql -c "TRUNCATE erp_mw.jobs, erp_mw.job_attempts" \
        -c "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,
                                     target, correlation_id, next_run_at, produced_at)
            SELECT 'http.generic', 'bench', 'bench-$RANDOM-' || g,
                   jsonb_build_object ('method', 'POST', 'path', '/api/v1/customers',
                       'body', jsonb_build_object ('tenant', 'bench',
                           'customerId', 'C-' || g, 'name', 'Bench ' || g)),
                   'erp', 'corr-' || g, now () - interval '1 minute', now ()
              FROM generate_series (1, $1) g" \
        -c "VACUUM ANALYZE erp_mw.jobs" -c "VACUUM ANALYZE erp_mw.job_attempts" \
        -c "CHECKPOINT"
}

#  bench_drain_run N SECONDS WORKER_VARS..: starts $workers workers (with
#  the given CW_WORKER_* settings) against the running broker, waits
#  until the N loaded jobs are finished, stops the workers. Prints
#  "rate wall_rate done dead max_worker_rss_kb max_broker_rss_kb
#  broker_cpu_us_per_job workers_cpu_us_per_job": rate from the database
#  (N / (last finished_at - first attempt started_at)), wall_rate from the
#  script's clock (worker start to all finished), CPU time (user + system,
#  /proc) the broker spent during the run and the workers in all, per job:
#  far less noisy on a shared box than the rates.
bench_drain_run() {
    local n="$1" limit="$2"
    shift 2
    local pids=() i start end rss_w=0 rss_b=0 r pid cpu_b0 cpu_b1 cpu_w=0
    cpu_b0="$(bench_cpu_ticks "$broker_pid")"
    start=$(date +%s.%N)
    for i in $(seq 1 "${workers:-1}"); do
        bench_worker "worker$i" "$@"
        pids+=("$worker_pid")
    done
    local deadline=$(( $(date +%s) + limit ))
    while :; do
        for pid in "${pids[@]}"; do
            r="$(bench_rss_kb "$pid")"
            [ "$r" -gt "$rss_w" ] && rss_w=$r
        done
        r="$(bench_rss_kb "$broker_pid")"
        [ "$r" -gt "$rss_b" ] && rss_b=$r
        #  The database gone (the script was stopped): stop the workers too.
        #  Nothing ready or leased left: two index probes (the partial
        #  indexes of 'ready' and 'leased' rows) that stop at the first
        #  row. A count(*) here seq-scanned the whole table five times a
        #  second and took a good share of PostgreSQL's CPU from the run.
        r="$(bench_psql -c "SELECT NOT EXISTS (SELECT 1 FROM erp_mw.jobs WHERE state = 'ready')
                               AND NOT EXISTS (SELECT 1 FROM erp_mw.jobs WHERE state = 'leased')")" \
            || { kill -TERM "${pids[@]}" 2>/dev/null; return 1; }
        [ "$r" = t ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "bench: not finished after $limit s: $(bench_psql -c "SELECT string_agg (state || '=' || c, ' ') FROM (SELECT state, count(*) c FROM erp_mw.jobs GROUP BY 1) s")" >&2
            break
        fi
        sleep 0.2
    done
    end=$(date +%s.%N)
    cpu_b1="$(bench_cpu_ticks "$broker_pid")"
    for pid in "${pids[@]}"; do
        cpu_w=$(( cpu_w + $(bench_cpu_ticks "$pid") ))
    done
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local hz
    hz="$(getconf CLK_TCK)"
    bench_psql -c "SELECT round ($n / extract (epoch FROM (SELECT max (finished_at) FROM erp_mw.jobs)
                                     - (SELECT min (started_at) FROM erp_mw.job_attempts)))::bigint,
                          round ($n / ($end - $start))::bigint,
                          count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'dead'),
                          $rss_w, $rss_b,
                          round (($cpu_b1 - $cpu_b0) * 1e6 / $hz / $n, 1),
                          round ($cpu_w * 1e6 / $hz / $n, 1)
                     FROM erp_mw.jobs" | tr '|' ' '
}

#  bench_cpu_ticks PID: user + system CPU time of PID (all its threads),
#  in clock ticks; 0 when it is gone.
bench_cpu_ticks() {
    #  Fields after the ")" ending the command name: utime is the 12th,
    #  stime the 13th.
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0
}

#  erpsim's /_introspect without the per-entity effects (stdin to stdout).
bench_introspect_summary() {
    python3 -c 'import json, sys
d = json.load (sys.stdin)
d.pop ("effects", None)
print (json.dumps (d, separators = (",", ":"))[:800])'
}
