"""`python -m entropy_rl`: the `entropy-rl` command."""

import sys

try:
    from entropy_rl.commands.cli import run
except KeyboardInterrupt:  # Ctrl-C before `main` could catch it
    print("entropy-rl: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

run()
