#!/usr/bin/env bash
# The local stack without Docker: Apache Kafka (KRaft), PostgreSQL and Redis on loopback.
#
#   scripts/stack.sh up       start what is not already reachable, wait until it answers
#   scripts/stack.sh down     stop only what `up` started
#   scripts/stack.sh status   say what is up and who owns it
#   scripts/stack.sh browser  install Debian's Chromium and poppler-utils (the browser and PDF tests)
#   scripts/stack.sh prometheus  install Debian's Prometheus and promtool (make run, make test)
#   KAFKA_BROKERS=3 scripts/stack.sh up     three KRaft brokers (127.0.0.1:19092,19192,19292)
#   scripts/stack.sh node kill|start N      SIGKILL or start node N of those three
#   scripts/stack.sh kill kafka|postgres|redis   crash one server we started (up starts it again)
#
# STACK_DIR (default .stack) and the URLs make a second stack beside the first: the chaos
# suite (python -m chaos) runs one of its own on other ports, so it can crash its servers
# without touching the ones `make test` or `make run` use. KAFKA_CLUSTER_PORT moves the
# three-broker cluster (19092 and on).
#
# Idempotent: `up` twice starts nothing the second time. A server already reachable at the
# configured URL is reused and never stopped by `down`. Everything we start keeps its data,
# logs and pid files under .stack/ (git-ignored); Kafka's jars come from Maven Central into
# .cache/ (git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=${STACK_DIR:-"$ROOT/.stack"}
CACHE="$ROOT/.cache"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
KAFKA_HEAP=${KAFKA_HEAP:-"-Xms256m -Xmx768m"}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
DATABASE_URL=${DATABASE_URL:-postgres://polystack:polystack@127.0.0.1:5432/polystack}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# url_part URL FIELD -> one field of a URL (host, port, user, password, db)
url_part() {
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit, unquote
u = urlsplit(sys.argv[1] if "://" in sys.argv[1] else "//" + sys.argv[1])
default_port = {"redis": 6379, "postgres": 5432, "postgresql": 5432}.get(u.scheme, 9092)
print({
    "host": u.hostname or "127.0.0.1",
    "port": u.port or default_port,
    "user": unquote(u.username or ""),
    "password": unquote(u.password or ""),
    "db": u.path.lstrip("/"),
}[sys.argv[2]])
PY
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
  say "$what is up"
}

is_local() { case "$1" in 127.*|localhost|::1) return 0 ;; *) return 1 ;; esac; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

apt_install() {  # apt_install PACKAGE...
  [ "$(id -u)" -eq 0 ] || die "$* missing and not root: install them, or point the URLs at running servers"
  say "installing $* from Debian's packages"
  if [ ! -f "$STACK/.apt-updated" ]; then
    apt-get update -qq && mkdir -p "$STACK" && touch "$STACK/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Kafka --------------------------------------------------------------------------------
KAFKA_HOST=$(url_part "${KAFKA_BOOTSTRAP_SERVERS%%,*}" host)
KAFKA_PORT=$(url_part "${KAFKA_BOOTSTRAP_SERVERS%%,*}" port)
KAFKA_DIR="$STACK/kafka"

kafka_java() { java $KAFKA_HEAP -cp "$KAFKA_LIBS/*" "$@"; }

kafka_answers() {  # a metadata request, not just an open port: the broker is really serving
  "$ROOT/.venv/bin/python" - "$KAFKA_BOOTSTRAP_SERVERS" <<'PY'
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=2)
PY
}

kafka_fetch() {
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  say "resolving Apache Kafka $KAFKA_VERSION from Maven Central into ${KAFKA_LIBS#$ROOT/}"
  rm -rf "$KAFKA_LIBS.tmp"
  mkdir -p "$CACHE"
  mvn -B -f "$ROOT/scripts/kafka/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" \
    >"$CACHE/maven.log" 2>&1 || die "Maven could not resolve Kafka; see ${CACHE#$ROOT/}/maven.log"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
}

kafka_logging() {  # kafka_logging DIR: warnings and errors only, to the node's log
  cat >"$1/log4j2.properties" <<EOF
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.state.name=state.change.logger
logger.state.level=WARN
logger.controller.name=org.apache.kafka.controller
logger.controller.level=WARN
EOF
}

kafka_common_properties() {  # kafka_common_properties REPLICAS MIN_ISR: what every broker of ours says
  cat <<EOF
# Topics are code (manage.py ensuretopics); a typo must fail, not create a topic.
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=$1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$1
transaction.state.log.min.isr=$2
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=$1
share.coordinator.state.topic.min.isr=$2
# One machine, many short-lived test groups: do not wait for more members to join.
group.initial.rebalance.delay.ms=0
EOF
}

kafka_configure() {
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by scripts/stack.sh: one combined broker+controller in KRaft mode, on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((KAFKA_PORT + 1))
# FAULTY is for failure tests: it advertises port +200, where a test runs a TCP proxy it can
# cut, so a client bootstrapped there loses the broker while everyone else keeps it.
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://127.0.0.1:$((KAFKA_PORT + 1)),FAULTY://127.0.0.1:$((KAFKA_PORT + 100))
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,FAULTY://127.0.0.1:$((KAFKA_PORT + 200))
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,FAULTY:PLAINTEXT
log.dirs=$KAFKA_DIR/data
$(kafka_common_properties 1 1)
EOF
  kafka_logging "$KAFKA_DIR"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    say "formatting Kafka storage in ${KAFKA_DIR#$ROOT/}/data"
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    kafka_java -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" kafka.tools.StorageTool \
      format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >>"$KAFKA_DIR/kafka.log" 2>&1
  fi
}

kafka_up() {
  if pid_alive "$KAFKA_DIR/kafka.pid"; then
    say "kafka already running (ours, pid $(cat "$KAFKA_DIR/kafka.pid"))"
  elif port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    wait_for 60 "kafka at $KAFKA_BOOTSTRAP_SERVERS (reused)" kafka_answers \
      || die "something listens on $KAFKA_HOST:$KAFKA_PORT but does not answer as a Kafka broker"
    return 0
  else
    is_local "$KAFKA_HOST" || die "kafka at $KAFKA_BOOTSTRAP_SERVERS is unreachable and not on this machine"
    kafka_fetch
    kafka_configure
    say "starting kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (log: ${KAFKA_DIR#$ROOT/}/kafka.log)"
    # setsid: the broker outlives the shell that started it and ignores its Ctrl-C.
    setsid java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
      >>"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
    echo $! >"$KAFKA_DIR/kafka.pid"
  fi
  wait_for 120 "kafka at $KAFKA_BOOTSTRAP_SERVERS" kafka_answers \
    || die "kafka did not answer within 120 s; see ${KAFKA_DIR#$ROOT/}/kafka.log"
}

# --- a three-broker Kafka cluster (KAFKA_BROKERS=3) -------------------------------------------
# Three combined broker+controller nodes in KRaft mode on loopback, apart from the one broker
# (ports and folders of their own): node N listens on 19092+100*(N-1), its controller one port
# above. Every topic has 3 replicas and takes a write once 2 have it (acks=all).
CLUSTER_DIR="$STACK/kafka-cluster"
CLUSTER_NODES=(1 2 3)
CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-19092}
cluster_port() { echo $((CLUSTER_PORT + 100 * ($1 - 1))); }
CLUSTER_BOOTSTRAP="127.0.0.1:$(cluster_port 1),127.0.0.1:$(cluster_port 2),127.0.0.1:$(cluster_port 3)"
CLUSTER_VOTERS="1@127.0.0.1:$(($(cluster_port 1) + 1)),2@127.0.0.1:$(($(cluster_port 2) + 1)),3@127.0.0.1:$(($(cluster_port 3) + 1))"

cluster_answers() {  # every node answers metadata, and sees three brokers
  "$ROOT/.venv/bin/python" - "$CLUSTER_BOOTSTRAP" <<'PY'
import sys
from confluent_kafka.admin import AdminClient
for server in sys.argv[1].split(","):
    assert len(AdminClient({"bootstrap.servers": server}).list_topics(timeout=2).brokers) == 3
PY
}

cluster_configure() {  # cluster_configure NODE CLUSTER_ID
  local node=$1 dir="$CLUSTER_DIR/node-$1" port
  port=$(cluster_port "$1")
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
# Written by scripts/stack.sh: node $node of a three-node KRaft cluster (broker+controller), on loopback.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$CLUSTER_VOTERS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
default.replication.factor=3
min.insync.replicas=2
$(kafka_common_properties 3 2)
# A killed broker is noticed in seconds (its partitions led elsewhere), not after 9 s.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
EOF
  kafka_logging "$dir"
  if [ ! -f "$dir/data/meta.properties" ]; then
    kafka_java -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.tools.StorageTool \
      format -t "$2" -c "$dir/server.properties" >>"$dir/kafka.log" 2>&1
  fi
}

cluster_start_node() {  # cluster_start_node NODE (configured before)
  local dir="$CLUSTER_DIR/node-$1"
  pid_alive "$dir/kafka.pid" && return 0
  say "starting kafka node $1 on 127.0.0.1:$(cluster_port "$1") (log: ${dir#$ROOT/}/kafka.log)"
  setsid java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
}

cluster_up() {
  kafka_fetch
  mkdir -p "$CLUSTER_DIR"
  [ -s "$CLUSTER_DIR/cluster.id" ] || kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$CLUSTER_DIR/cluster.id"
  for node in "${CLUSTER_NODES[@]}"; do
    cluster_configure "$node" "$(cat "$CLUSTER_DIR/cluster.id")"
    cluster_start_node "$node"
  done
  wait_for 180 "kafka cluster at $CLUSTER_BOOTSTRAP (3 brokers)" cluster_answers \
    || die "the cluster did not answer within 180 s; see ${CLUSTER_DIR#$ROOT/}/node-*/kafka.log"
}

cluster_down() {
  for node in "${CLUSTER_NODES[@]}"; do stop_pidfile "kafka node $node" "$CLUSTER_DIR/node-$node/kafka.pid"; done
}

# --- PostgreSQL ---------------------------------------------------------------------------
PG_HOST=$(url_part "$DATABASE_URL" host)
PG_PORT=$(url_part "$DATABASE_URL" port)
PG_USER=$(url_part "$DATABASE_URL" user)
PG_PASSWORD=$(url_part "$DATABASE_URL" password)
PG_DB=$(url_part "$DATABASE_URL" db)
PG_DIR="$STACK/postgres"

# PostgreSQL refuses to run as root, so its files belong to the postgres user, who must be
# able to reach them. A clone in a private folder (mktemp -d is 0700) is out of its reach:
# then the data lives under /var/tmp and .stack/postgres links to it.
pg_place_data_dir() {
  [ -e "$PG_DIR" ] && return 0
  mkdir -p "$STACK"
  if runuser -u postgres -- test -x "$STACK"; then mkdir -p "$PG_DIR"; return 0; fi
  local outside
  outside="/var/tmp/polystack-$(printf '%s' "$STACK" | cksum | cut -d' ' -f1)/postgres"
  mkdir -p "$outside" && chown postgres:postgres "$(dirname "$outside")"
  ln -s "$outside" "$PG_DIR"
}

pg_answers() { PGPASSWORD="$PG_PASSWORD" psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -Atc 'select 1'; }
as_postgres() { runuser -u postgres -- "$@"; }
pg_admin() { as_postgres "$PG_BIN/psql" -h "$PG_DIR/run" -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 -Atqc "$1"; }

pg_up() {
  if pid_alive "$(pg_pidfile)"; then
    say "postgresql already running (ours)"
  elif port_open "$PG_HOST" "$PG_PORT"; then
    wait_for 30 "postgresql at $PG_HOST:$PG_PORT/$PG_DB (reused)" pg_answers \
      || die "a server listens on $PG_HOST:$PG_PORT but $PG_USER cannot log in to $PG_DB; fix DATABASE_URL"
    return 0
  else
    is_local "$PG_HOST" || die "postgresql at $PG_HOST:$PG_PORT is unreachable and not on this machine"
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || { apt_install postgresql; PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); }
    command -v psql >/dev/null || apt_install postgresql-client
    pg_place_data_dir
    mkdir -p "$PG_DIR/run"
    chown postgres:postgres "$PG_DIR" "$PG_DIR/run"
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
      say "initialising a PostgreSQL cluster in ${PG_DIR#$ROOT/}/data"
      as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    say "starting postgresql on $PG_HOST:$PG_PORT (log: ${PG_DIR#$ROOT/}/postgres.log)"
    touch "$PG_DIR/postgres.log" && chown postgres:postgres "$PG_DIR/postgres.log"
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
      -o "-c listen_addresses=$PG_HOST -p $PG_PORT -c unix_socket_directories=$PG_DIR/run -c max_connections=200 -c fsync=on" >/dev/null
  fi
  # Our own cluster: make sure the role and database of DATABASE_URL exist.
  if ! pg_answers >/dev/null 2>&1; then
    say "creating role $PG_USER and database $PG_DB"
    local pw=${PG_PASSWORD//\'/\'\'}
    pg_admin "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
          CREATE ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$pw';
        ELSE ALTER ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$pw'; END IF; END \$\$;"
    [ "$(pg_admin "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" = 1 ] \
      || pg_admin "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\""
  fi
  wait_for 30 "postgresql at $PG_HOST:$PG_PORT/$PG_DB" pg_answers || die "postgresql does not answer"
}

# --- Redis --------------------------------------------------------------------------------
REDIS_HOST=$(url_part "$REDIS_URL" host)
REDIS_PORT=$(url_part "$REDIS_URL" port)
REDIS_DIR="$STACK/redis"

redis_answers() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_up() {
  if pid_alive "$REDIS_DIR/redis.pid"; then
    say "redis already running (ours, pid $(cat "$REDIS_DIR/redis.pid"))"
  elif port_open "$REDIS_HOST" "$REDIS_PORT"; then
    say "redis at $REDIS_HOST:$REDIS_PORT is up (reused)"
    return 0
  else
    is_local "$REDIS_HOST" || die "redis at $REDIS_HOST:$REDIS_PORT is unreachable and not on this machine"
    command -v redis-server >/dev/null || apt_install redis-server
    mkdir -p "$REDIS_DIR"
    say "starting redis on $REDIS_HOST:$REDIS_PORT"
    redis-server --bind "$REDIS_HOST" --port "$REDIS_PORT" --daemonize yes \
      --pidfile "$REDIS_DIR/redis.pid" --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" \
      --save "" --appendonly no
  fi
  command -v redis-cli >/dev/null || apt_install redis-tools
  wait_for 30 "redis at $REDIS_HOST:$REDIS_PORT" redis_answers || die "redis does not answer"
}

# --- commands -----------------------------------------------------------------------------
stop_pidfile() {  # stop_pidfile NAME PIDFILE
  if pid_alive "$2"; then
    local pid; pid=$(cat "$2")
    say "stopping $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "$1 did not stop in 30 s; killing it"; kill -9 "$pid"; }
  fi
  rm -f "$2"
}

status_line() {  # status_line NAME ADDRESS OURS_PIDFILE ANSWERS_FN
  local owner="not ours"
  pid_alive "$3" && owner="ours, pid $(cat "$3")"
  if "$4" >/dev/null 2>&1; then say "$1 up at $2 ($owner)"; else say "$1 DOWN at $2"; return 1; fi
}

pg_pidfile() {  # postmaster.pid holds more than the pid: give pid_alive a one-line copy
  local f="$PG_DIR/postmaster.pid.1"
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then head -n 1 "$PG_DIR/data/postmaster.pid" >"$f"; else rm -f "$f"; fi
  echo "$f"
}

case "${1:-}" in
  up)
    mkdir -p "$STACK"
    redis_up
    pg_up
    if [ "${KAFKA_BROKERS:-1}" = 3 ]; then cluster_up; else kafka_up; fi
    ;;
  down)
    stop_pidfile kafka "$KAFKA_DIR/kafka.pid"
    cluster_down
    stop_pidfile redis "$REDIS_DIR/redis.pid"
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
      say "stopping postgresql"
      as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
    fi
    say "stopped what this stack started; reused servers were left alone"
    ;;
  browser)
    # The browser tests drive Debian's Chromium (Playwright with executable_path).
    if command -v chromium >/dev/null; then
      say "chromium: $(command -v chromium)"
    else
      [ "$(id -u)" = 0 ] || die "chromium is missing; install Debian's chromium package (or set CHROMIUM_PATH)"
      say "installing chromium from Debian for the browser tests"
      apt_install chromium
    fi
    # The analytics export tests read the PDFs back with pdftotext (poppler-utils).
    if command -v pdftotext >/dev/null; then
      say "pdftotext: $(command -v pdftotext)"
    else
      [ "$(id -u)" = 0 ] || die "pdftotext is missing; install Debian's poppler-utils package"
      apt_install poppler-utils
    fi
    ;;
  prometheus)
    # Debian's Prometheus (2.42): make run starts it on 127.0.0.1:9090; make test runs promtool
    # on the alert rules. Installed without the package's recommends (node exporter...).
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
      say "prometheus: $(command -v prometheus)"
    else
      [ "$(id -u)" = 0 ] || die "prometheus is missing; install Debian's prometheus package"
      say "installing prometheus from Debian"
      apt_install --no-install-recommends prometheus
    fi
    ;;
  node)
    # scripts/stack.sh node kill|start N: the chaos suite's broker faults, in the three-broker
    # cluster. kill is SIGKILL: no controlled shutdown, no leadership handed over.
    [ -f "$CLUSTER_DIR/node-${3:-}/server.properties" ] || die "usage: $0 node kill|start 1|2|3 (KAFKA_BROKERS=3 up first)"
    case "${2:-}" in
      kill) pid_alive "$CLUSTER_DIR/node-$3/kafka.pid" && kill -9 "$(cat "$CLUSTER_DIR/node-$3/kafka.pid")"
            rm -f "$CLUSTER_DIR/node-$3/kafka.pid"; say "kafka node $3 killed" ;;
      start) cluster_start_node "$3" ;;
      *) die "usage: $0 node kill|start N" ;;
    esac
    ;;
  kill)
    # A crash, not a shutdown: SIGKILL for Kafka and Redis, PostgreSQL's immediate stop (every
    # backend quits without a checkpoint; the next start recovers from the WAL). `up` restarts it.
    case "${2:-}" in
      kafka) pid_alive "$KAFKA_DIR/kafka.pid" && kill -9 "$(cat "$KAFKA_DIR/kafka.pid")"
             rm -f "$KAFKA_DIR/kafka.pid"; say "kafka killed" ;;
      redis) pid_alive "$REDIS_DIR/redis.pid" && kill -9 "$(cat "$REDIS_DIR/redis.pid")"
             rm -f "$REDIS_DIR/redis.pid"; say "redis killed" ;;
      postgres) [ -f "$PG_DIR/data/postmaster.pid" ] || die "postgresql is not ours or not running"
                as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null; say "postgresql crashed" ;;
      *) die "usage: $0 kill kafka|postgres|redis" ;;
    esac
    ;;
  status)
    rc=0
    if [ "${KAFKA_BROKERS:-1}" = 3 ]; then
      for node in "${CLUSTER_NODES[@]}"; do
        pid_alive "$CLUSTER_DIR/node-$node/kafka.pid" && say "kafka node $node up (ours, pid $(cat "$CLUSTER_DIR/node-$node/kafka.pid"))" \
          || { say "kafka node $node DOWN"; rc=1; }
      done
    else
      status_line kafka "$KAFKA_BOOTSTRAP_SERVERS" "$KAFKA_DIR/kafka.pid" kafka_answers || rc=1
    fi
    status_line postgresql "$PG_HOST:$PG_PORT/$PG_DB" "$(pg_pidfile)" pg_answers || rc=1
    status_line redis "$REDIS_HOST:$REDIS_PORT" "$REDIS_DIR/redis.pid" redis_answers || rc=1
    exit $rc
    ;;
  *)
    echo "usage: $0 up|down|status|browser|prometheus|node|kill" >&2
    exit 2
    ;;
esac
