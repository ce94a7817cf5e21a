"""python -m dashboard --results results/ [--host 127.0.0.1] [--port 8050]"""

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboard", description="ltray's read-only results dashboard.")
    p.add_argument("--results", default="results",
                   help="folder or pyarrow URI (s3://bucket/path) holding the studies (default: results)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8050)
    a = p.parse_args(argv)
    from ltray.results.storage import is_uri, shown

    root = a.results if is_uri(a.results) else Path(a.results)
    if isinstance(root, Path) and root.exists() and not root.is_dir():
        print(f"error: --results {root} is not a folder", file=sys.stderr)
        return 2
    if not 0 < a.port < 65536:
        print(f"error: --port must be in 1..65535, got {a.port}", file=sys.stderr)
        return 2
    from dashboard.app import create_app

    app = create_app(root)
    where = root.resolve() if isinstance(root, Path) else shown(root)  # a URI's options may hold keys
    print(f"ltray dashboard on http://{a.host}:{a.port}/ (studies in {where})", flush=True)
    app.run(host=a.host, port=a.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
