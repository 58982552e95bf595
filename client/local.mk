#  client/: causeway, the operator CLI (subcommand dispatcher).
bin_PROGRAMS += client/causeway
client_causeway_SOURCES = client/main.c
client_causeway_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
client_causeway_LDADD = lib/libcwrt.a $(RUNTIME_LIBS)
