#  proto/: the contract in code, pure (no I/O): envelope and codecs, event
#  and sync-body validators, contract versions.
noinst_LIBRARIES += proto/libcwproto.a
proto_libcwproto_a_SOURCES = \
    proto/cw_envelope.c proto/cw_envelope.h \
    proto/cw_event.c proto/cw_event.h \
    proto/cw_version.c proto/cw_version.h
proto_libcwproto_a_CFLAGS = $(AM_CFLAGS) $(MSGPACK_CFLAGS) $(JANSSON_CFLAGS) $(SODIUM_CFLAGS)

#  idempotency keys and retry arithmetic
proto_libcwproto_a_SOURCES += proto/cw_idkey.c proto/cw_idkey.h proto/cw_retry.c proto/cw_retry.h
