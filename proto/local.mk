#  proto/: the contract in code; pure, no I/O.
noinst_LIBRARIES += proto/libcwproto.a
proto_libcwproto_a_SOURCES =
proto_libcwproto_a_CFLAGS = $(AM_CFLAGS) $(MSGPACK_CFLAGS) $(JANSSON_CFLAGS) $(SODIUM_CFLAGS)

#  idempotency keys and retry arithmetic
proto_libcwproto_a_SOURCES += proto/cw_idkey.c proto/cw_idkey.h proto/cw_retry.c proto/cw_retry.h
