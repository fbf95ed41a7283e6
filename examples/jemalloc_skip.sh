#!/bin/sh
# Stands in for examples/jemalloc_driver when configure found no jemalloc.
echo "SKIP: jemalloc_driver: jemalloc (pkg-config jemalloc) not found at configure time;"
echo "      install libjemalloc-dev and re-run configure to test the jemalloc extent hooks."
exit 77
