#  scripts/: fragment of the top Makefile.am (see there).

#  scripts/fuzz: builds and runs tests/fuzz/fuzz_*.c with libFuzzer
EXTRA_DIST += scripts/fuzz
