"""Compare two CPython regrtest --junit-xml files, test case by test case.

    compare_results.py PLAIN.xml MMAPPER.xml

Prints the totals of each and every test case whose outcome (passed,
skipped, failure, error) differs or that ran in one only; exits 1 if any.
"""
import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    result = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("skipped", "failure", "error")]
        result[case.get("name")] = kinds[0] if kinds else "passed"
    return result


def totals(res):
    counts = {}
    for kind in res.values():
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no test cases"


plain, mm = outcomes(sys.argv[1]), outcomes(sys.argv[2])
print(f"  without mmapper: {len(plain)} cases: {totals(plain)}")
print(f"  on mmapper:      {len(mm)} cases: {totals(mm)}")
diff = sorted(n for n in plain.keys() | mm.keys() if plain.get(n) != mm.get(n))
for name in diff:
    print(f"  DIFFERS: {name}: {plain.get(name, 'not run')} without mmapper, "
          f"{mm.get(name, 'not run')} on mmapper")
sys.exit(1 if diff or not plain else 0)
