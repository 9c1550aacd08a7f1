#!/usr/bin/env bash
# cargo's runner under deploy/local/faketime.sh: runs one test binary (and everything it starts)
# with the clock moved by $CLOCK_SHIFT_SECS seconds. Only programs cargo runs get the moved clock;
# cargo and rustc themselves must not (rustc hangs under libfaketime).
if [ -z "${CLOCK_SHIFT_SECS:-}" ] || [ -z "${CLOCK_SHIFT_LIB:-}" ]; then exec "$@"; fi
export FAKETIME="$CLOCK_SHIFT_SECS"
export FAKETIME_DONT_FAKE_MONOTONIC=1
# Every process reads the offset at start; none needs to re-read a file for it.
export FAKETIME_NO_CACHE=0
export LD_PRELOAD="$CLOCK_SHIFT_LIB${LD_PRELOAD:+:$LD_PRELOAD}"
exec "$@"
