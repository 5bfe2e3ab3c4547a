"""PNG report from a monitor database: `python -m finance_sentiment.report --db monitor.db --out r.png`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .dashboard import write_png_report
from .store import Store


def main(argv: list[str] | None = None) -> dict:
    """Writes the per-topic trend charts with alerts marked; prints and returns a summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--db", type=Path, required=True, help="monitor.db written by the service or the demo"
    )
    parser.add_argument("--out", type=Path, default=Path("finance_report.png"))
    parser.add_argument("--window", default="6h", help="window size, e.g. 1h, 6h, 1D")
    args = parser.parse_args(argv)
    if not args.db.is_file():
        parser.error(
            f"{args.db} does not exist; run the service or `verticals demo finance_sentiment` first"
        )
    store = Store(args.db)
    try:
        path = write_png_report(store, args.out, args.window)
        result = {"report": str(path), "items": store.count_items(), "alerts": len(store.alerts())}
    finally:
        store.close()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
