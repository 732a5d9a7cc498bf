# Picking a free slot for a local cluster (sourced by e2e/run-tests and e2e/demo), so that
# several clusters can run on one machine at once: a dev cluster, the tests of several
# checkouts, a demo. A slot is a port base (the cluster listens on base+43, +50, +51, +57,
# +79 and +80) and a pod range 127.N.0.0/16 (the loopback kubelet's --pod-cidr).

# slot_free BASE CIDR: nothing listens on the slot's ports and no loopback kubelet runs
# with that pod range.
slot_free() {
  local base=$1 cidr=$2 off f
  for off in 43 50 51 57 79 80; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$((base + off))") 2>/dev/null; then return 1; fi
  done
  for f in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' 2>/dev/null < "$f" | grep -q -- "--pod-cidr=$cidr "; then return 1; fi
  done
  return 0
}

# slot_claim BASE: takes the slot's lock (flock on a file under the cache) and keeps it, on
# file descriptor SLOT_LOCK_FD, until this shell and every process it started have exited.
# Free ports alone are not enough: a run builds for minutes before its cluster listens, and
# a second run picking in that window would otherwise take the same slot.
slot_claim() {
  local dir="${MCOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}/slots" fd
  mkdir -p "$dir"
  exec {fd}>"$dir/$1.lock"
  if flock -n "$fd"; then SLOT_LOCK_FD=$fd; return 0; fi
  exec {fd}>&-
  return 1
}

# pick_slot FIRST_BASE FIRST_OCTET COUNT: the first free slot i < COUNT of the series whose
# slot i has ports FIRST_BASE+100*i and pods 127.(FIRST_OCTET+i).0.0/16, claimed for this
# process (slot_claim). Sets SLOT, SLOT_PORT_BASE and SLOT_POD_CIDR; returns 1 when every
# slot is taken.
pick_slot() {
  local first_base=$1 first_octet=$2 count=$3 i
  for ((i = 0; i < count; i++)); do
    if slot_free $((first_base + 100 * i)) "127.$((first_octet + i)).0.0/16" &&
      slot_claim $((first_base + 100 * i)); then
      SLOT=$i
      SLOT_PORT_BASE=$((first_base + 100 * i))
      SLOT_POD_CIDR="127.$((first_octet + i)).0.0/16"
      return 0
    fi
  done
  return 1
}
