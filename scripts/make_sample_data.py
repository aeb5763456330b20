#!/usr/bin/env python3
"""Write a synthetic ReDSM5-format corpus (posts.csv, annotations.csv).

A thin command line over :func:`psy_agents_noaug.data.corpus.write_corpus`;
the generator itself (phrase banks, composition, profiles) lives in the
package. Output is deterministic: the same profile and seed give
byte-identical files.

    python scripts/make_sample_data.py                               # the bundled sample
    python scripts/make_sample_data.py --profile redsm5 --out DIR    # the real data's shape
    python scripts/make_sample_data.py --profile sample --out DIR --seed 7
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Use this checkout's package, not whichever copy happens to be installed.
sys.path.insert(0, str(REPO_ROOT / "src"))

from psy_agents_noaug.data.corpus import PROFILES, write_corpus  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "src" / "psy_agents_noaug" / "data" / "sample"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="sample")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (sample default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default: the profile's)"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        if args.profile != "sample":
            parser.error(
                f"--out is required for --profile {args.profile} (only the sample is bundled)"
            )
        args.out = DEFAULT_OUT
    posts, annotations = write_corpus(args.profile, args.out, seed=args.seed)
    print(f"wrote {posts} and {annotations} ({args.profile} profile)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
