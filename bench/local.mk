#  bench/: fragment of the top Makefile.am (see there).
#  erpsim throughput benchmark (wrk); see bench/README.md
EXTRA_DIST += bench/README.md bench/erpsim-rps bench/erpsim-get.lua \
    bench/erpsim-upsert.lua
#  pipeline benchmarks: PostgreSQL ceiling, B1-B4 (issue #4); see bench/README.md
EXTRA_DIST += bench/bench-lib.sh bench/pg-ceiling bench/pg-claim-ack.sql \
    bench/pg-claim.sql bench/b1-throughput bench/b2-latency bench/b2-insert.sql \
    bench/b3-erp-bound bench/b4-growth
#  CWP/1 codec micro-benchmark (built, not installed); see bench/README.md
noinst_PROGRAMS += bench/msg-codec
bench_msg_codec_SOURCES = bench/msg-codec.c
bench_msg_codec_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(MSGPACK_CFLAGS)
bench_msg_codec_LDADD = proto/libcwproto.a $(PROTO_LIBS)
