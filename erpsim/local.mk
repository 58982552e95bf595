#  erpsim/: fragment of the top Makefile.am (see there).
#  The ERP simulator: API, idempotency, faults, feeds (docs/erpsim.md).
bin_PROGRAMS += erpsim/erpsim
erpsim_erpsim_SOURCES = \
    erpsim/main.c \
    erpsim/erpsim_server.c erpsim/erpsim_server.h \
    erpsim/erpsim_validate.c erpsim/erpsim_validate.h \
    erpsim/erpsim_pdf.c erpsim/erpsim_pdf.h
erpsim_erpsim_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS) -pthread
erpsim_erpsim_LDADD = lib/libcwrt.a $(RUNTIME_LIBS) -lm -lpthread
