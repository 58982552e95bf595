#  token/: causeway-token, the key and token command line tool.
bin_PROGRAMS += token/causeway-token
token_causeway_token_SOURCES = token/main.c
token_causeway_token_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
token_causeway_token_LDADD = lib/libcwrt.a $(RUNTIME_LIBS)
