#  lib/: the shared runtime (I/O allowed), linked by every program.
noinst_LIBRARIES += lib/libcwrt.a
lib_libcwrt_a_SOURCES = \
    lib/cw_log.c lib/cw_log.h \
    lib/cw_secret.c lib/cw_secret.h
lib_libcwrt_a_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)

#  cw_token: Ed25519 service tokens (webshop branch)
lib_libcwrt_a_SOURCES += lib/cw_token.c lib/cw_token.h


#  cw_pg, cw_migrate (lib): PostgreSQL connection, migration runner.
lib_libcwrt_a_SOURCES += \
    lib/cw_pg.c lib/cw_pg.h \
    lib/cw_migrate.c lib/cw_migrate.h
#  cw_config: typed configuration from ZPL files and the environment
lib_libcwrt_a_SOURCES += lib/cw_config.c lib/cw_config.h
#  cw_http: HTTP server glue over libmicrohttpd (erpsim, webshop, sync API)
lib_libcwrt_a_SOURCES += lib/cw_http.c lib/cw_http.h
#  cw_curve, cw_zap (lib): CURVE certificates with roles, ZAP handler,
#  handshake monitor
lib_libcwrt_a_SOURCES += \
    lib/cw_curve.c lib/cw_curve.h \
    lib/cw_zap.c lib/cw_zap.h

#  cw_daemon: start-up shared by causeway-worker and causeway-relay
#  (arguments, logger, configuration, signal pipe)
lib_libcwrt_a_SOURCES += lib/cw_daemon.c lib/cw_daemon.h
#  cw_wire: CWP/1 messages over CZMQ sockets (worker, relay)
lib_libcwrt_a_SOURCES += lib/cw_wire.c lib/cw_wire.h
