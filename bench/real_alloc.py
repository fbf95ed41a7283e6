"""An allocation-heavy Python script for `make bench-real`: dicts, lists,
strings and JSON round trips, with PYTHONMALLOC=malloc so that every object
is a malloc.  Prints its own wall time and peak RSS."""
import json
import resource
import sys
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 6

start = time.perf_counter()
checksum = 0
for r in range(ROUNDS):
    records = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)],
                "score": i * 0.5, "nested": {"a": i, "b": str(i) * 3}} for i in range(60000)]
    text = json.dumps(records)
    back = json.loads(text)
    index = {rec["name"]: rec for rec in back}
    groups = {}
    for rec in back:
        groups.setdefault(rec["tags"][0], []).append(rec["id"])
    big = [str(x) * (1 + x % 50) for x in range(100000)]
    checksum += len(text) + len(index) + sum(len(v) for v in groups.values()) + len(big)
    del records, text, back, index, groups, big
elapsed = time.perf_counter() - start
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{elapsed:.3f} {rss_kib} {checksum}")
