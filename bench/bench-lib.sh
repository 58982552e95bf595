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

bench_psql() {
    psql -X -q -v ON_ERROR_STOP=1 -At "$pguri" "$@"
}

bench_pg_start() {
    local migrate="$builddir/migrate/causeway-migrate" island
    [ -x "$migrate" ] || { echo "bench: $migrate not found: build first (make) or set CW_BUILDDIR" >&2; exit 2; }
    command -v pgbench >/dev/null || { echo "bench: pgbench not found (apt-get install postgresql-client-15)" >&2; exit 2; }
    pgdir="$work/pg"
    pguri="$(CW_PG_DURABLE=1 "$top/scripts/pg" start "$pgdir")"
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

#  bench_load_jobs N FLOW: N ready jobs of FLOW, due now, then VACUUM
#  ANALYZE and a CHECKPOINT so the runs start from the same state.
bench_load_jobs() {
    bench_psql -c "TRUNCATE erp_mw.jobs, erp_mw.job_attempts" \
        -c "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, payload,
                                     target, next_run_at, produced_at)
            SELECT '$2', 'bench', 'bench-' || g, jsonb_build_object('n', g),
                   'erpsim', now() - interval '1 minute', now()
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
