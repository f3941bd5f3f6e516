#!/usr/bin/env bash
# A throwaway single-node Slurm cluster on this machine, for tests and for trying `diffclass submit
# slurm` without a real cluster. Needs Debian's slurmctld, slurmd, slurm-client and munge
# (tools/install-deps.sh slurmctld slurmd slurm-client munge). No systemd: the daemons are started
# directly, each with its own pid, log, state and socket files under one temporary folder, on free
# TCP ports, so nothing under /etc or /run is touched and a second cluster can run beside it.
#
#   eval "$(tools/slurm-test-cluster.sh start [DIR])"   # prints: export SLURM_CONF=...; export SLURM_TEST_CLUSTER=DIR
#   sbatch ...; squeue; sinfo                             # any Slurm client, through SLURM_CONF
#   tools/slurm-test-cluster.sh stop [DIR]               # default DIR: $SLURM_TEST_CLUSTER
#
# start: DIR (default: a new folder from mktemp) must be absent or empty; it gets a munge key,
# munged on its own socket, a generated slurm.conf (the node's real CPUs and memory from
# `slurmd -C`, one partition "debug", proctrack/linuxproc, task/none, no cgroups, select/cons_tres
# with CR_CPU), then slurmctld and slurmd, and waits until `sinfo` shows the node idle (error and
# the daemons' logs otherwise). As root the daemons run as root; as another user they run as that
# user, which runs that user's jobs (tried by hand; the tests run as root).
# stop: cancels the cluster's jobs, stops slurmd, slurmctld and munged by their pid files (KILL
# after 10 s) and removes DIR. It only removes a folder that this script made (marker file).
set -euo pipefail

marker=.diffclass-slurm-test-cluster

die() { echo "slurm-test-cluster: $*" >&2; exit 1; }

# A TCP port on 127.0.0.1 nobody listens on, from a random start.
free_port() {
  local p=$(( 20000 + (RANDOM % 20000) )) tries=0
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
    p=$(( p + 1 )); tries=$(( tries + 1 ))
    [ $tries -lt 200 ] || die "no free TCP port found near $p"
  done
  echo "$p"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Stops the daemon whose pid file is $1: TERM, then KILL after 10 s.
stop_pidfile() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if pid_alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

show_logs() {
  local dir=$1 f
  for f in "$dir"/log/*.log "$dir"/munge/munged.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
}

stop_cluster() {
  local dir=$1
  [ -f "$dir/$marker" ] || die "$dir was not made by this script (no $marker); not touching it"
  export SLURM_CONF="$dir/slurm.conf"
  # Cancel the cluster's jobs first: slurmstepd processes outlive slurmd otherwise.
  if [ -f "$dir/slurmctld.pid" ] && pid_alive "$(cat "$dir/slurmctld.pid" 2>/dev/null)"; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null || true
      for _ in $(seq 100); do
        [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break
        sleep 0.1
      done
    fi
  fi
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  rm -rf "$dir"
}

# Closes every descriptor above 2 this shell inherited, so the daemons do not hold them open: a
# caller waiting for a pipe or socket it gave this script to close (Foundation's Process does)
# would otherwise wait for as long as the daemons run.
close_inherited_fds() {
  local fd
  for fd in $(ls /proc/$$/fd 2>/dev/null); do
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

start_cluster() {
  local dir=$1
  close_inherited_fds
  for tool in munged mungekey slurmctld slurmd sinfo sbatch; do
    command -v "$tool" >/dev/null || die "$tool not found; install: tools/install-deps.sh slurmctld slurmd slurm-client munge"
  done
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then die "$dir is not empty"; fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  case "$dir" in *[[:space:]]*) die "$dir: the cluster folder must not contain spaces (slurm.conf paths)";; esac
  # Unix socket paths are limited to 107 bytes.
  [ ${#dir} -le 80 ] || die "$dir: path too long for munge's socket; use a shorter DIR"
  touch "$dir/$marker"
  chmod 700 "$dir"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/tmp"
  chmod 700 "$dir/munge"
  local user host cpus_line ctld_port slurmd_port
  user=$(id -un)
  host=$(hostname -s 2>/dev/null || hostname)
  [ -n "$host" ] || host=localhost

  # munge: its own key, socket, pid, log and seed files.
  mungekey --create --keyfile="$dir/munge/munge.key" >/dev/null 2>&1 \
    || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; }
  chmod 600 "$dir/munge/munge.key"
  munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" --force </dev/null >>"$dir/log/start.log" 2>&1 \
    || { show_logs "$dir"; stop_cluster "$dir"; die "munged did not start"; }

  # The node as slurmd sees it (CPUs, sockets, cores, threads, memory), under our name.
  cpus_line=$(slurmd -C 2>/dev/null | head -n 1 | sed -e 's/^NodeName=[^ ]* //')
  [ -n "$cpus_line" ] || cpus_line="CPUs=$(nproc)"
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  [ "$slurmd_port" != "$ctld_port" ] || slurmd_port=$(( ctld_port + 1 ))
  cat > "$dir/slurm.conf" <<EOF
# Generated by tools/slurm-test-cluster.sh: a single-node test cluster in $dir.
ClusterName=diffclass-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
KillWait=2
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=300
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 $cpus_line State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF" </dev/null >>"$dir/log/start.log" 2>&1 || { show_logs "$dir"; stop_cluster "$dir"; die "slurmctld did not start"; }
  slurmd -f "$SLURM_CONF" -N "$host" </dev/null >>"$dir/log/start.log" 2>&1 || { show_logs "$dir"; stop_cluster "$dir"; die "slurmd did not start"; }

  local state=""
  for _ in $(seq 300); do
    state=$(timeout 5 sinfo -h -N -n "$host" -o %T 2>/dev/null | head -n 1 || true)
    [ "$state" = "idle" ] && break
    sleep 0.2
  done
  if [ "$state" != "idle" ]; then
    show_logs "$dir"
    stop_cluster "$dir"
    die "the node did not become idle within 60 s (last state: '${state:-none}')"
  fi
  echo "export SLURM_CONF='$dir/slurm.conf'; export SLURM_TEST_CLUSTER='$dir'"
}

case "${1:-}" in
  start) start_cluster "${2:-$(mktemp -d /tmp/slurm-test.XXXXXX)}" ;;
  stop)
    dir=${2:-${SLURM_TEST_CLUSTER:-}}
    [ -n "$dir" ] || die "stop needs DIR (or SLURM_TEST_CLUSTER)"
    [ -d "$dir" ] || exit 0
    stop_cluster "$(cd "$dir" && pwd)" ;;
  *) echo "usage: $0 start [DIR] | stop [DIR]" >&2; exit 2 ;;
esac
