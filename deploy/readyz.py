#!/usr/bin/env python3
"""Exit 0 when the service's /readyz answers 200, else print why and exit 1: the health check of
the compose file and the systemd web unit. Standard library only, so it runs from any Python.

    python3 deploy/readyz.py [URL] [--wait SECONDS]

URL defaults to http://127.0.0.1:8000/readyz. ``--wait`` polls until ready or until that many
seconds have passed (a unit's ExecStartPost: "started" means ready); without it, one try.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request

# /readyz answers within READYZ_TIMEOUT (2 s by default); this only guards against a web process
# that does not answer at all.
REQUEST_TIMEOUT = 10


def ready(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as response:
            return response.status == 200, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code}: {exc.read().decode(errors='replace')}"
    except (OSError, urllib.error.URLError) as exc:
        return False, str(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000/readyz")
    parser.add_argument("--wait", type=float, default=0, metavar="SECONDS")
    options = parser.parse_args()
    deadline = time.monotonic() + options.wait
    while True:
        ok, detail = ready(options.url)
        if ok:
            return 0
        if time.monotonic() >= deadline:
            print(f"not ready: {options.url}: {detail}", file=sys.stderr)
            return 1
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
