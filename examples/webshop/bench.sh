#!/usr/bin/env bash
#  Measures webshop-ref: N distinct single-price pushes (each a new inbox
#  row and price), then the same N again (all duplicates: stored replies),
#  8 connections in parallel with curl --parallel. Prints HTTP codes,
#  seconds per pass and the row counts. Run in a private cluster:
#      N=2000 scripts/pg run examples/webshop/bench.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd); b=${CW_BUILDDIR:-$top/build/plain}; d=$(mktemp -d); n=${N:-2000}
psql "$CW_TEST_PGURI" -qc "CREATE DATABASE wsbench_$$" >/dev/null
uri="${CW_TEST_PGURI%/*}/wsbench_$$"
case "$CW_TEST_PGURI" in *\?*) echo "uri has query"; exit 1;; esac
umask 077
echo "$uri" > $d/super; echo "$uri?user=cw_shop_owner" > $d/owner; echo "$uri?user=cw_webshop" > $d/ws
CW_DB_URI_FILE=$d/super $b/migrate/causeway-migrate roles --sql-dir $top/sql >/dev/null
CW_DB_URI_FILE=$d/owner $b/migrate/causeway-migrate apply --island shop --sql-dir $top/sql >/dev/null
$b/token/causeway-token keygen --out $d/k >/dev/null
CW_WEBSHOP_DB_URI_FILE=$d/ws $b/examples/webshop/webshop-ref --listen 127.0.0.1:0 --port-file $d/port --token-public-key $d/k.public --pool 8 --log-level warn 2>$d/log &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf $d' EXIT
for i in $(seq 50); do [ -s $d/port ] && break; sleep 0.1; done
port=$(cat $d/port)
tok=$($b/token/causeway-token sign --key-file $d/k.secret --iss erp-mw --sub bench --aud webshop --ttl 600)
for i in $(seq $n); do
  cat <<EOC
url = "http://127.0.0.1:$port/webshop/products/prices"
header = "Authorization: Bearer $tok"
header = "Content-Type: application/json"
header = "Idempotency-Key: price:A-$i:retail:1"
data = "{\"prices\":[{\"articleNumber\":\"A-$i\",\"priceListId\":\"retail\",\"amount\":$i,\"currency\":\"EUR\",\"effectiveAt\":\"2026-01-01T00:00:00Z\",\"externalVersion\":1}]}"
output = "/dev/null"
write-out = "%{http_code} %{exitcode} %{errormsg} A-'$i'\n"
EOC
  if [ $i -lt $n ]; then echo next; fi
done > $d/cfg
for pass in new duplicate; do
  s=$(date +%s.%N)
  curl -sS --parallel --parallel-max 8 --config $d/cfg > $d/codes 2>$d/curl.err || true
  grep -v "^200" $d/codes | head -5 || true; sort $d/codes | cut -c1-3 | uniq -c | tr '\n' ' '; sort $d/curl.err | uniq -c | head -3
  e=$(date +%s.%N)
  echo " $pass: $n requests in $(echo "$e - $s" | bc) s"
done
psql "$uri" -Atc "SELECT 'prices ' || count(*) FROM shop.product_prices; SELECT 'inbox ' || count(*) FROM shop.inbox"
kill -TERM $pid; timeout 20 tail --pid=$pid -f /dev/null; echo "stopped: $(kill -0 $pid 2>/dev/null && echo no || echo yes)"; tail -3 $d/log
