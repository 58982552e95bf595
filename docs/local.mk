#  docs/: fragment of the top Makefile.am (see there).

#  The envelope, events, sync bodies and contract versions (proto/)
EXTRA_DIST += docs/envelope.md
