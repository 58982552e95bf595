#  examples/webshop/: fragment of the top Makefile.am (see there).
