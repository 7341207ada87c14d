#!/bin/sh
# Regenerates configure and the Makefile.in files (needs autoconf, automake, libtool).
set -e
cd "$(dirname "$0")"
mkdir -p config
autoreconf -ivf
