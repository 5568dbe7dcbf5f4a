"""Compares the faces' answers with the expected classes: the parity suite's verdict.

Usage: compare.py [--details] <out_dir> <expected_file> <face>... [--extra scenario=class ...]

Each face wrote <out_dir>/<face>.jsonl, one {"scenario", "class", "via", "detail"} object per
line. Each line of <expected_file> is `scenario class [faces]`: the class every face (or only
the comma-separated faces named) must give. Prints a table (with --details, the detail of
every answer too: the discovery scenarios' counts) and exits 1 on any disagreement.
"""

import json
import sys


def main() -> int:
    args = sys.argv[1:]
    details = args[:1] == ["--details"]
    args = args[1:] if details else args
    extra = []
    if "--extra" in args:
        extra = args[args.index("--extra") + 1 :]
        args = args[: args.index("--extra")]
    out, expected_file, faces = args[0], args[1], args[2:]
    expected = {}
    for line in open(expected_file):
        if line.strip() and not line.startswith("#"):
            scenario, wanted, *only = line.split()
            expected[scenario] = (wanted, only[0].split(",") if only else faces)
    for pair in extra:
        scenario, wanted = pair.split("=")
        expected[scenario] = (wanted, faces)
    seen = {face: {} for face in faces}
    for face in faces:
        for line in open(f"{out}/{face}.jsonl"):
            entry = json.loads(line)
            seen[face][entry["scenario"]] = entry
    failures = 0
    width = max(map(len, expected))
    print(f"{'scenario':<{width}}  " + "  ".join(f"{face:<20}" for face in faces))
    for scenario, (wanted, which) in expected.items():
        cells = []
        for face in faces:
            if face not in which:
                cells.append(f"{'n/a':<20}")
                continue
            entry = seen[face].get(scenario)
            got = entry["class"] if entry else "missing"
            mark = "" if got == wanted else " (!)"
            failures += got != wanted
            cells.append(f"{got + mark:<20}")
            if got != wanted:
                detail = entry["detail"] if entry else ""
                print(f"  {face} {scenario}: {got}, expected {wanted}: {detail}", file=sys.stderr)
            elif details and entry and entry.get("detail"):
                print(f"  {face} {scenario}: {entry['detail']}")
        print(f"{scenario:<{width}}  " + "  ".join(cells))
    checks = sum(len(which) for _, which in expected.values())
    print(f"parity: {len(expected)} scenarios, {checks} face answers, {failures} disagreements")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
