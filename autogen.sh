#!/bin/sh
#  Regenerates the build system: configure and Makefile.in.
set -e
cd "$(dirname "$0")"
autoreconf -fi
