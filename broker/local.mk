#  broker/: the pure decision core (cw_core), linked by the broker shell
#  and the simulator.
noinst_LIBRARIES += broker/libcwcore.a
broker_libcwcore_a_SOURCES = broker/cw_core.c broker/cw_core.h
broker_libcwcore_a_CFLAGS = $(AM_CFLAGS) $(CZMQ_CFLAGS) $(ZMQ_CFLAGS)
CORE_LIBS = broker/libcwcore.a proto/libcwproto.a $(CZMQ_LIBS) $(ZMQ_LIBS)
#  Programs and tests using the core add these to their CFLAGS / LDADD.
CORE_CFLAGS = -I$(top_srcdir)/broker $(CZMQ_CFLAGS) $(ZMQ_CFLAGS)
