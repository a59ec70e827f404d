# Sourced by nginx/test.sh and apache/test.sh: whether a worker has mapped
# all of a segment (the modules prefault it at each worker's start).

# prefault_supported: the kernel has MADV_POPULATE_READ (Linux 5.14 or later).
prefault_supported() {
    [ "$(uname -r | awk -F. '{ print ($1 > 5 || ($1 == 5 && $2 >= 14)) }')" = 1 ]
}

# unmapped_kib PID PATH: KiB of PID's mappings of PATH that are not
# resident; -1 if PID maps no PATH; "gone" if PID has exited (nothing left
# to read: a prefork child reaped between being listed and being read).
unmapped_kib() {
    awk -v path="$2" '
        /^[0-9a-f]+-[0-9a-f]+ / { maps++; ours = ($NF == path) }
        ours && /^Size:/ { size += $2 }
        ours && /^Rss:/ { rss += $2 }
        END { print (maps == 0 ? "gone" : size == 0 ? -1 : size - rss) }' \
        "/proc/$1/smaps" 2>/dev/null || echo gone
}
