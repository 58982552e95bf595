#  client/: causeway, the operator CLI (subcommand dispatcher in main.c;
#  cw_client: the CURVE session with a broker, REQUEST / RESPONSE).
bin_PROGRAMS += client/causeway
client_causeway_SOURCES = client/main.c client/cw_client.c client/cw_client.h
client_causeway_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
client_causeway_LDADD = lib/libcwrt.a proto/libcwproto.a $(RUNTIME_LIBS)
