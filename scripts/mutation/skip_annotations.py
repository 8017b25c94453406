"""Mark a cosmic-ray session's mutants inside unevaluated annotations as skipped, before exec.

scripts/mutation.sh calls this between `cosmic-ray init` and `cosmic-ray exec`; it is not a
library. A mutant that lies wholly inside a function's parameter or return annotation, in a
module whose annotations PEP 563 leaves as strings that are never read back, cannot change
behaviour (report.py's rule, `unevaluated_annotations`): running the tests against it only
costs time (132 of network.py's 484 mutants). Each such job gets the result `skipped`, which
exec leaves alone and report.py counts as equivalent by that same rule.

Usage: skip_annotations.py SESSION SOURCE   (prints how many were skipped)
"""

from __future__ import annotations

import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult
from report import inside, unevaluated_annotations

REASON = "inside an unevaluated annotation (PEP 563): cannot change behaviour"


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit("usage: skip_annotations.py SESSION SOURCE")
    session, source = Path(sys.argv[1]), Path(sys.argv[2])
    spans = unevaluated_annotations(source.read_text())
    skipped = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            if all(inside((m.start_pos, m.end_pos), spans) for m in item.mutations):
                db.set_result(item.job_id, WorkResult(WorkerOutcome.SKIPPED, output=REASON))
                skipped += 1
    print(f"mutation: {skipped} mutants inside unevaluated annotations skipped (not run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
