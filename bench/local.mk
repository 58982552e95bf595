#  bench/: fragment of the top Makefile.am (see there).
#  erpsim throughput benchmark (wrk); see bench/README.md
EXTRA_DIST += bench/README.md bench/erpsim-rps bench/erpsim-get.lua \
    bench/erpsim-upsert.lua
