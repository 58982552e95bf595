#  migrate/: causeway-migrate, the schema migration command.
bin_PROGRAMS += migrate/causeway-migrate
migrate_causeway_migrate_SOURCES = migrate/main.c
migrate_causeway_migrate_CPPFLAGS = $(AM_CPPFLAGS) \
    -DCW_PKGDATADIR='"$(pkgdatadir)"'
migrate_causeway_migrate_CFLAGS = $(AM_CFLAGS) $(DEP_CFLAGS)
migrate_causeway_migrate_LDADD = lib/libcwrt.a $(RUNTIME_LIBS)
