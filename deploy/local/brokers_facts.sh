#!/usr/bin/env bash
# Facts about the two-broker Tansu cluster of brokers.sh, checked against real processes:
#   a. a topic with 4 partitions, created on one broker, is seen by both;
#   b. a producer bootstrapped on both brokers (acks=all) keeps going when the broker it talks to
#      is killed with SIGKILL mid-way; a consumer group then reads every acked message;
#   c. the killed broker, restarted, serves everything alone (and the group's committed offsets);
#   d. a group consumer fails over when its broker is killed mid-way;
#   e. how long the setup takes.
# Prints PASS/FAIL with figures and exits non-zero on any FAIL. Everything runs in a temp dir and
# is stopped by pid on exit. Env: TANSU_BIN (a build with the postgres feature), FACTS_MESSAGES,
# FACTS_RATE (messages per second the producer aims at, so that the kill lands mid-way).
#
# Which broker is "killed" is decided at run time: each Tansu broker advertises itself as node 111,
# so a client talks to whichever bootstrap broker answered first. Killing the other one would
# prove nothing, so the client writes the port it is using and we kill that broker.

# shellcheck source-path=SCRIPTDIR source=brokers.sh
source "$(dirname "${BASH_SOURCE[0]}")/brokers.sh"

N=${FACTS_MESSAGES:-40000}
RATE=${FACTS_RATE:-5000}
TOPIC=facts
WORK=$(mktemp -d /tmp/brokers-facts.XXXXXX)
chmod 711 "$WORK" # the PostgreSQL user must reach its directory inside
PIDS=$WORK/pids
FAILS=0

cleanup() {
  local rc=$?
  stop_brokers >/dev/null
  stop_postgres >/dev/null
  if [ "$rc" -eq 0 ] && [ "$FAILS" -eq 0 ]; then rm -rf "$WORK"; else echo "logs kept in $WORK"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }
verdict() { # OK(0 = pass) TEXT
  if [ "$1" -eq 0 ]; then echo "PASS $2"; return; fi
  echo "FAIL $2 (client log: $WORK/client.log)"
  FAILS=$((FAILS + 1))
}
free_ports() { # COUNT: ports the kernel has no listener on right now
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# The Kafka client side: confluent-kafka (librdkafka 2.x; Debian's librdkafka 2.0 cannot talk to
# Tansu 0.6). Modes: topic, produce, consume, committed, latest. Prints one line; exit 1 = fail.
# librdkafka's log lines and tracebacks go to $WORK/client.log.
client() {
  python3 - "$@" 2>>"$WORK/client.log" <<'PY'
import json, os, sys, time
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
mode, boot, topic, *args = sys.argv[1:]

def node_port(client_stats):  # the port of the broker this client reaches node 111 through
    for b in client_stats.get("brokers", {}).values():
        if b.get("nodeid") == 111 and b.get("state") == "UP":
            return b["nodename"].rsplit(":", 1)[1]
    return ""

def await_kill(marker, port, killed):  # tell the shell whom to kill; return when it is done
    with open(marker + ".tmp", "w") as f: f.write(port)
    os.rename(marker + ".tmp", marker)
    while not os.path.exists(killed): time.sleep(0.01)
    return float(open(killed).read())

# Tansu 0.6 answers ListOffsets(latest, read_committed) with SQL that PostgreSQL 15 rejects
# ("subquery in FROM must have an alias"; 16+ accepts it), and librdkafka's consumers default to
# read_committed. Without transactions read_uncommitted is the same data; see the "latest" mode.
UNCOMMITTED = {"isolation.level": "read_uncommitted"}
stats = {}
conf = {"bootstrap.servers": boot, "statistics.interval.ms": 200,
        "stats_cb": lambda s: stats.update(json.loads(s))}

if mode == "topic":
    md = Consumer({"bootstrap.servers": boot, "group.id": "x"}).list_topics(topic, timeout=10)
    print(len(md.topics[topic].partitions))

elif mode == "produce":  # N RATE MARKER KILLED ACKED_FILE
    n, rate, marker, killed, out = int(args[0]), float(args[1]), *args[2:]
    p = Producer({**conf, "acks": "all", "enable.idempotence": False,  # see ENVIRONMENT.md
                  "message.timeout.ms": 60000})
    acks, failed = [], []
    def done(err, msg):
        (failed if err else acks).append((time.time(), int(msg.value())))
    start, sent, kill_at = time.time(), 0, None
    while sent < n or len(acks) + len(failed) < n:
        due = min(n, int((time.time() - start) * rate) + 1)
        while sent < due:
            try: p.produce(topic, str(sent).encode(), callback=done); sent += 1
            except BufferError: break
        p.poll(0.005)
        if kill_at is None and len(acks) >= n // 2:
            with open(marker + ".tmp", "w") as f: f.write(node_port(stats))
            os.rename(marker + ".tmp", marker)
            kill_at = 0.0
        if kill_at == 0.0 and os.path.exists(killed): kill_at = float(open(killed).read())
        if time.time() - start > 180: break
    times = [t for t, _ in acks]
    gap = max(b - a for a, b in zip(times, times[1:]))
    after = [t - kill_at for t in times if kill_at and t > kill_at]
    with open(out, "w") as f: f.write("\n".join(str(v) for _, v in acks))
    print(f"{len(acks)} of {n} acked, {len(failed)} failed, in {times[-1] - start:.1f} s;"
          f" {sum(t > kill_at for t in times) if kill_at else 0} acked after the kill;"
          f" longest gap between acks {gap:.2f} s, first ack {after[0] if after else -1:.2f} s"
          f" after the kill")
    sys.exit(0 if len(acks) == n and after else 1)

elif mode == "consume":  # ACKED_FILE GROUP|- [MARKER KILLED]: read up to the high watermarks
    acked = set(int(x) for x in open(args[0]).read().split())
    group, killing = args[1], len(args) > 2
    # When killing, prefetch little: else librdkafka may hold everything before the kill.
    small = {"queued.min.messages": 100, "fetch.max.bytes": 65536, "message.max.bytes": 1000,
             "max.partition.fetch.bytes": 16384} if killing else {}
    c = Consumer({**conf, **UNCOMMITTED, **small, "group.id": group if group != "-" else "none",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    parts = [TopicPartition(topic, i) for i in range(4)]
    high = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    if group == "-": c.assign([TopicPartition(topic, i, 0) for i in range(4)])
    else: c.subscribe([topic])
    start, seen, count, first, pos = time.time(), set(), 0, None, dict.fromkeys(high, 0)
    kill_at, last, pause, after = None, 0, 0, 0  # pause: the longest wait after the kill
    while any(pos[i] < high[i] for i in high) and time.time() - start < 120:
        for m in c.consume(200, timeout=0.05):
            if m.error(): continue
            first = first or time.time() - start
            if kill_at: pause, last, after = max(pause, time.time() - last), time.time(), after + 1
            seen.add(int(m.value())); count += 1; pos[m.partition()] = m.offset() + 1
        if killing and kill_at is None and count >= len(acked) // 2:
            kill_at = last = await_kill(args[2], node_port(stats), args[3])
    if group != "-": c.commit(asynchronous=False)
    c.close()
    missing = len(acked - seen)
    print(f"read {count} ({len(seen)} distinct) of {sum(high.values())} stored, {missing} of"
          f" {len(acked)} acked missing; first message after {first or -1:.1f} s"
          + (f"; {after} read after the kill, longest pause {pause:.2f} s" if kill_at else ""))
    sys.exit(0 if missing == 0 and (not killing or after) else 1)

elif mode == "committed":  # GROUP: the group's committed offsets against the high watermarks
    c = Consumer({"bootstrap.servers": boot, "group.id": args[0], **UNCOMMITTED})
    parts = [TopicPartition(topic, i) for i in range(4)]
    got = [tp.offset for tp in c.committed(parts, timeout=10)]
    high = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
    print(f"committed {got}, high watermarks {high}")
    sys.exit(0 if got == high else 1)

elif mode == "latest":  # the high watermark with librdkafka's default isolation level
    c = Consumer({"bootstrap.servers": boot, "group.id": "x"})
    try: print(f"high watermark {c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]}")
    except KafkaException as e: print(f"failed: {e.args[0].str()}"); sys.exit(1)
PY
}

# broker_on PORT: the broker number listening on PORT.
broker_on() { if [ "$1" = "${BROKER_PORTS[1]}" ]; then echo 2; else echo 1; fi; }

# kill_when_asked MARKER KILLED PID: waits for client PID to name its broker, SIGKILLs that broker,
# stamps KILLED (atomically: the client polls for it) and sets VICTIM. Not in $(...): kill9_broker
# must run in the shell whose child the broker is, to reap it.
kill_when_asked() {
  local marker=$1 killed=$2 pid=$3
  for _ in $(seq 1 1200); do [ -f "$marker" ] || [ ! -d "/proc/$pid" ] && break; sleep 0.05; done
  [ -s "$marker" ] || die "the client did not say which broker it uses; see $WORK/client.log"
  VICTIM=$(broker_on "$(cat "$marker")")
  kill9_broker "$VICTIM" >/dev/null
  now >"$killed.tmp" && mv "$killed.tmp" "$killed"
}

T0=$(now)
step "Setting up PostgreSQL and two Tansu brokers in $WORK"
ensure_postgres
python3 -c 'import confluent_kafka' 2>/dev/null || pip install --quiet confluent-kafka
read -r PG_PORT P1 P2 < <(free_ports 3)
t0=$(now)
start_postgres "$WORK/pg" "$PG_PORT"
t1=$(now)
start_brokers "$WORK/brokers" "$PG_PORT" "$P1" "$P2"
t2=$(now)
BOTH=$(bootstrap_servers)

step "Facts"
out=$("$TANSU_BIN" topic create "$TOPIC" --partitions 4 --broker "tcp://127.0.0.1:$P1" 2>&1) ||
  die "topic create failed: $out"
n1=$(client topic "127.0.0.1:$P1" "$TOPIC")
n2=$(client topic "127.0.0.1:$P2" "$TOPIC")
verdict "$([ "$n1" = 4 ] && [ "$n2" = 4 ]; echo $?)" \
  "a. topic created with 4 partitions on broker 1: broker 1 reports $n1, broker 2 reports $n2"

client produce "$BOTH" "$TOPIC" "$N" "$RATE" "$WORK/p.marker" "$WORK/p.killed" "$WORK/acked" \
  >"$WORK/produce.out" &
producer=$!
kill_when_asked "$WORK/p.marker" "$WORK/p.killed" "$producer"
rc=0; wait "$producer" || rc=$?
verdict "$rc" "b. producer on both brokers, acks=all, broker $VICTIM (its broker) SIGKILLed at half: $(cat "$WORK/produce.out")"
rc=0; res=$(client consume "$BOTH" "$TOPIC" "$WORK/acked" facts-group) || rc=$?
verdict "$rc" "b. consumer group on both brokers (broker $VICTIM down): $res"

acked=$(grep -c '' "$WORK/acked")
rows=$(psql_at "$PG_PORT" "$TANSU_PG_DB" -tAc 'select count(*) from record')
verdict "$([ "$rows" -ge "$acked" ]; echo $?)" \
  "b. PostgreSQL's record table holds $rows rows for $acked acked messages"

restart_broker "$VICTIM" >/dev/null
ONLY=127.0.0.1:${BROKER_PORTS[VICTIM - 1]}
rc=0; res=$(client consume "$ONLY" "$TOPIC" "$WORK/acked" -) || rc=$?
verdict "$rc" "c. broker $VICTIM restarted, a consumer bootstrapped on it alone: $res"
rc=0; res=$(client committed "$ONLY" "$TOPIC" facts-group) || rc=$?
verdict "$rc" "c. offsets the group committed through broker $((3 - VICTIM)), read through broker $VICTIM: $res"

client consume "$BOTH" "$TOPIC" "$WORK/acked" failover-group "$WORK/c.marker" "$WORK/c.killed" \
  >"$WORK/consume.out" &
consumer=$!
kill_when_asked "$WORK/c.marker" "$WORK/c.killed" "$consumer"
rc=0; wait "$consumer" || rc=$?
verdict "$rc" "d. group consumer on both brokers, broker $VICTIM (its broker) SIGKILLed at half: $(cat "$WORK/consume.out")"

restart_broker "$VICTIM" >/dev/null
# Not a pass/fail fact: a known limit of Tansu 0.6 on PostgreSQL 15 (see UNCOMMITTED above).
res=$(client latest "$BOTH" "$TOPIC") || true
cause=$(grep -ho 'subquery in FROM must have an alias' "$BROKERS_DIR"/broker*.log | head -n 1)
echo "NOTE ListOffsets(latest) with librdkafka's default read_committed on PostgreSQL" \
  "$("$(pg_bin)/postgres" -V | awk '{print $3}'): $res${cause:+ (broker log: $cause)}"

echo "PASS e. setup: PostgreSQL (initdb, start, schema) $(secs "$t0" "$t1") s," \
  "two brokers $(secs "$t1" "$t2") s, total $(secs "$t0" "$t2") s; whole run $(secs "$T0" "$(now)") s"
[ "$FAILS" -eq 0 ] || die "$FAILS fact(s) failed"
