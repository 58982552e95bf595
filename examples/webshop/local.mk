#  examples/webshop/: fragment of the top Makefile.am (see there).
#  webshop-ref, the reference webshop side of the boundary contract.
bin_PROGRAMS += examples/webshop/webshop-ref
examples_webshop_webshop_ref_SOURCES = \
    examples/webshop/main.c \
    examples/webshop/cw_webshop.c examples/webshop/cw_webshop.h \
    examples/webshop/cw_webshop_store.c examples/webshop/cw_webshop_store.h
examples_webshop_webshop_ref_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
examples_webshop_webshop_ref_LDADD = lib/libcwrt.a proto/libcwproto.a \
    $(RUNTIME_LIBS)
EXTRA_DIST += examples/webshop/bench.sh
