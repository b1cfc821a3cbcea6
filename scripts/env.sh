# Sourced by the build scripts (run.sh, test.sh, .ci/run, bench/): links Debian's RocksDB
# (librocksdb-dev, installed by setup.sh) instead of compiling the bundled copy, which takes
# 13+ minutes on a 2-core machine. The library directory is the machine's own multiarch one
# (x86_64-linux-gnu, aarch64-linux-gnu, ...). Without the system library, or with
# ROCKSDB_LIB_DIR already set, nothing changes here and cargo builds what it is told to.
if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
    multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || true)
    if [ -n "$multiarch" ] && [ -e "/usr/lib/$multiarch/librocksdb.so" ]; then
        export ROCKSDB_LIB_DIR="/usr/lib/$multiarch"
    fi
fi
