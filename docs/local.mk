#  docs/: fragment of the top Makefile.am (see there).

#  erpsim: the ERP simulator
EXTRA_DIST += docs/erpsim.md
