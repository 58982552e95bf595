#  scripts/: fragment of the top Makefile.am (see there).
