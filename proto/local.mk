#  proto/: the contract in code; pure, no I/O.
noinst_LIBRARIES += proto/libcwproto.a
proto_libcwproto_a_SOURCES =
proto_libcwproto_a_CFLAGS = $(AM_CFLAGS) $(MSGPACK_CFLAGS) $(JANSSON_CFLAGS) $(SODIUM_CFLAGS)

#  idempotency keys and retry arithmetic
proto_libcwproto_a_SOURCES += proto/cw_idkey.c proto/cw_idkey.h proto/cw_retry.c proto/cw_retry.h

#  envelope and codecs, event and sync-body validators, contract versions
proto_libcwproto_a_SOURCES += \
    proto/cw_envelope.c proto/cw_envelope.h \
    proto/cw_event.c proto/cw_event.h \
    proto/cw_version.c proto/cw_version.h

#  CWP/1 wire codec (PROTOCOL.md)
proto_libcwproto_a_SOURCES += proto/cw_msg.c proto/cw_msg.h
EXTRA_DIST += proto/PROTOCOL.md

#  canonical msgpack packing of a JSON value (envelope and CWP/1 codecs)
proto_libcwproto_a_SOURCES += proto/cw_mpjson.c proto/cw_mpjson.h
