#!/usr/bin/env bash
# cargo's runner under deploy/local/faketime.sh: runs one test binary (and everything it starts)
# with the clock moved by $UPTAKE_FAKETIME seconds. Only programs cargo runs get the moved clock;
# cargo and rustc themselves must not (rustc hangs under libfaketime).
[ -n "${UPTAKE_FAKETIME:-}" ] && [ -n "${UPTAKE_FAKETIME_LIB:-}" ] || exec "$@"
export FAKETIME="$UPTAKE_FAKETIME"
export FAKETIME_DONT_FAKE_MONOTONIC=1
# Every process reads the offset at start; none needs to re-read a file for it.
export FAKETIME_NO_CACHE=0
export LD_PRELOAD="$UPTAKE_FAKETIME_LIB${LD_PRELOAD:+:$LD_PRELOAD}"
exec "$@"
