#!/bin/bash
# make check hook for the codec's own suite (test/codec/Makefile): unit tests of the
# codec and the error-feedback store, then a short libFuzzer run of the decoder.
set -eu
make -s -C "$(dirname "$0")" check
