#!/usr/bin/env bash
# The kernel matrix: run fivexx-agent's capability check and kernel
# self-tests on Debian's 5.10, 6.1 and 6.12 cloud kernels (qemu) and on the host
# kernel, one summary line per kernel. See matrix/README.md.
#
#   matrix/run.sh                 build the static agent, run every kernel
#   matrix/run.sh --agent PATH    use this static agent binary (no build)
#   matrix/run.sh --agent none    stand-in image without the agent: proves the
#                                 pipeline; every kernel FAILS ("agent missing")
#   matrix/run.sh --only 6.12     only this series or release ("host" for the
#                                 host kernel); repeatable
#
# Environment: MATRIX_TIMEOUT (seconds per guest, default 120), MATRIX_ACCEL
# (auto|tcg|kvm, default auto), MATRIX_JOBS (guests booted at once, default 1),
# MATRIX_SMP (vCPUs per guest, default 2: per-CPU counters and softirqs on
# another CPU are part of what is tested),
# MATRIX_VERBOSE=1 (echo consoles live), MATRIX_BIOS (firmware; default qboot
# when installed, "" for qemu's SeaBIOS), MATRIX_CHECK_ARGS (default
# "check --load -o json"), MATRIX_MODULES, KERNEL_SERIES.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { printf 'matrix: %s\n' "$*" >&2; }
die() { printf 'matrix: error: %s\n' "$*" >&2; exit 1; }
loud() {
  printf '\n' >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  printf '!!! KERNEL MATRIX NOT RUN: %s\n' "$@" >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
  exit 1
}

agent=build
only=()
while (($#)); do
  case $1 in
    --agent) (($# >= 2)) || die "--agent needs a path or 'none'"; agent=$2; shift 2 ;;
    --only) (($# >= 2)) || die "--only needs a series (6.1), a release or 'host'"; only+=("$2"); shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see $0 --help)" ;;
  esac
done
limit=${MATRIX_TIMEOUT:-120}
[[ $limit =~ ^[0-9]+$ ]] || die "MATRIX_TIMEOUT must be a number of seconds, not '$limit'"
jobs=${MATRIX_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "MATRIX_JOBS must be a positive number, not '$jobs'"
smp=${MATRIX_SMP:-2}
[[ $smp =~ ^[1-9][0-9]*$ ]] || die "MATRIX_SMP must be a positive number of vCPUs, not '$smp'"
accel=${MATRIX_ACCEL:-auto}
[[ $accel =~ ^(auto|tcg|kvm)$ ]] || die "MATRIX_ACCEL must be auto, tcg or kvm, not '$accel'"

wanted() { # series release (or: host host)
  ((${#only[@]} == 0)) && return 0
  local o
  for o in "${only[@]}"; do [[ $1 == "$o" || $2 == "$o" ]] && return 0; done
  return 1
}

command -v qemu-system-x86_64 >/dev/null \
  || loud "qemu-system-x86_64 is not installed (Debian package qemu-system-x86; run 'make setup')"
command -v python3 >/dev/null || loud "python3 is not installed (run 'make setup')"
[[ -x /bin/busybox ]] || loud "busybox-static is not installed (run 'make setup')"

started=$(date +%s.%N)

# 1. The static agent.
if [[ $agent == build ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
  # The dev profile builds in about half the time of release; the kernel
  # programs are always built optimised, and the tests mostly wait on the kernel.
  profile=${MATRIX_PROFILE:-dev}
  profile_dir=$profile
  [[ $profile == dev ]] && profile_dir=debug
  say "building fivexx-agent ($profile) for x86_64-unknown-linux-musl (cargo --quiet; the first build takes minutes)"
  if ! cargo build --quiet --profile "$profile" --target x86_64-unknown-linux-musl -p tracer-user --bin fivexx-agent >&2; then
    loud "the static fivexx-agent failed to build (see above)"
  fi
  agent=$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/$profile_dir/fivexx-agent
  [[ -x $agent ]] || loud "cargo built no $agent"
elif [[ $agent != none ]]; then
  [[ -x $agent ]] || die "agent binary '$agent' not found or not executable"
  agent=$(realpath "$agent")
fi

# 2. The kernels.
mapfile -t kernels < <(matrix/kernels.sh)
((${#kernels[@]})) || die "matrix/kernels.sh gave no kernels"

# 3. Accelerator: KVM only where the CPU has vmx/svm, /dev/kvm opens, and a probe boot works.
kvm_probe() { # vmlinuz initrd [accel args...]
  local vmlinuz=$1 initrd=$2 out
  shift 2
  (($#)) || set -- -accel kvm -cpu host
  out=$(timeout -k 5 60 qemu-system-x86_64 -nographic -nodefaults -no-reboot -serial stdio "$@" \
    -m 256M -kernel "$vmlinuz" -initrd "$initrd" -append 'console=ttyS0 quiet panic=-1 fivexx_probe=1' \
    </dev/null 2>&1) || true
  grep -q 'FIVEXX-PROBE-OK' <<<"$out"
}
choose_accel() { # series release vmlinuz (of one kernel to probe with)
  local probe=$repo/.cache/matrix/probe.cpio.gz
  if [[ $accel == tcg ]]; then echo tcg; return; fi
  if grep -Eqw 'vmx|svm' /proc/cpuinfo && [[ -r /dev/kvm && -w /dev/kvm ]] \
    && MATRIX_MODULES='' matrix/initramfs.sh "$repo/.cache/kernels/$2" "$2" none "$probe" >&2 \
    && kvm_probe "$3" "$probe"; then
    echo kvm
  elif [[ $accel == kvm ]]; then
    die "MATRIX_ACCEL=kvm but KVM does not work here (no vmx/svm, no /dev/kvm access, or the probe boot failed)"
  else
    echo tcg
  fi
}

# 4. One guest: build its image, boot it, judge the console.
run_guest() { # release vmlinuz
  local rel=$1 vmlinuz=$2 dir img rc=0 qemu_accel
  dir=$repo/artifacts/kernels/$rel
  img=$repo/.cache/matrix/initramfs-$rel.cpio.gz
  rm -rf "$dir"; mkdir -p "$dir"
  matrix/initramfs.sh "$repo/.cache/kernels/$rel" "$rel" "$agent" "$img" >&2
  case $chosen_accel in
    kvm) qemu_accel=(-accel kvm -cpu host) ;;
    *) qemu_accel=(-accel tcg -cpu max) ;;
  esac
  # qboot (qemu-system-data) only loads -kernel/-initrd: ~1 s faster than SeaBIOS under TCG.
  [[ -n $qboot ]] && qemu_accel+=(-bios "$qboot")
  local echo_flag=()
  [[ -n ${MATRIX_VERBOSE:-} ]] && echo_flag=(--echo)
  set +e
  timeout -k 5 "$limit" qemu-system-x86_64 -nographic -nodefaults -no-reboot -serial stdio \
    "${qemu_accel[@]}" -m 1G -smp "$smp" -kernel "$vmlinuz" -initrd "$img" \
    -append "console=ttyS0 quiet panic=-1 fivexx_timeout=$((limit - 20 > 10 ? limit - 20 : 10))" \
    </dev/null 2>&1 | python3 matrix/result.py stream "$dir/console.log" "$dir/markers.tsv" "${echo_flag[@]}"
  rc=${PIPESTATUS[0]}
  set -e
  python3 matrix/result.py judge --kernel "$rel" --label guest --dir "$dir" --exit "$rc" --limit "$limit"
}

# 5. The host kernel, as root, with the same markers.
run_host() {
  local rel dir
  rel=$(uname -r)
  dir=$repo/artifacts/kernels/$rel
  if [[ $(id -u) -ne 0 ]]; then
    echo "kernel $rel (host): SKIPPED: not root (eBPF needs root; run 'sudo make test-kernels')"
    return 0
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  if [[ $agent == none ]]; then
    echo "kernel $rel (host): FAILED: agent missing (stand-in run)" | tee "$dir/summary.txt"
    return 1
  fi
  set +e
  {
    echo "FIVEXX-INIT start kernel=$rel"
    while read -r ev; do
      if [[ -r /sys/kernel/tracing/events/$ev/format ]]; then
        echo "FIVEXX-FORMAT-BEGIN $ev"; cat "/sys/kernel/tracing/events/$ev/format"; echo "FIVEXX-FORMAT-END"
      else
        echo "FIVEXX-FORMAT-MISSING $ev"
      fi
    done <matrix/formats
    echo "FIVEXX-CHECK-BEGIN"
    # shellcheck disable=SC2086 # word list on purpose
    timeout -k 5 "$limit" "$agent" ${MATRIX_CHECK_ARGS-check --load -o json} 2>"$dir/check.err"
    echo "FIVEXX-CHECK-END rc=$?"
    sed 's/^/[check stderr] /' "$dir/check.err"; rm -f "$dir/check.err"
    echo "FIVEXX-SELFTEST-BEGIN timeout=$limit"
    exec 3>&1 # the agent's stdout; its stderr goes through sed
    { timeout -k 5 "$limit" "$agent" selftest 2>&1 1>&3 3>&-; echo $? >"$dir/selftest.rc"; } | sed 's/^/[stderr] /'
    echo "FIVEXX-SELFTEST-END rc=$(<"$dir/selftest.rc")"
    rm -f "$dir/selftest.rc"
    echo "FIVEXX-INIT done"
  } </dev/null 2>&1 | python3 matrix/result.py stream "$dir/console.log" "$dir/markers.tsv"
  set -e
  python3 matrix/result.py judge --kernel "$rel" --label host --dir "$dir" --exit 0 --limit "$limit"
}

if [[ -n ${MATRIX_BIOS+set} ]]; then
  qboot=$MATRIX_BIOS
  [[ -z $qboot || -f $qboot ]] || die "MATRIX_BIOS: no file $qboot"
else
  qboot=/usr/share/qemu/qboot.rom
  [[ -f $qboot ]] || qboot=
fi
mkdir -p "$repo/artifacts/kernels" "$repo/.cache/matrix"
# shellcheck disable=SC2086 # "series release vmlinuz"
chosen_accel=$(choose_accel ${kernels[0]})
selected=()
for k in "${kernels[@]}"; do
  read -r series rel _ <<<"$k"
  wanted "$series" "$rel" && selected+=("$k")
done
host_wanted=0
wanted host "$(uname -r)" && host_wanted=1
((${#selected[@]} + host_wanted)) || die "--only ${only[*]} matched no kernel"
say "${#selected[@]} guest kernel(s) under ${chosen_accel^^} (limit ${limit} s each)$( ((host_wanted)) && echo ' + the host kernel')"

failures=0 ran=0 dirs=()
pids=() outs=()
for k in "${selected[@]}"; do
  read -r _ rel vmlinuz <<<"$k"
  ran=$((ran + 1)); dirs+=("artifacts/kernels/$rel")
  if ((jobs > 1)); then
    out=$(mktemp); outs+=("$out")
    run_guest "$rel" "$vmlinuz" >"$out" & pids+=($!)
    if ((${#pids[@]} >= jobs)); then
      wait "${pids[0]}" || failures=$((failures + 1)); cat "${outs[0]}"; rm -f "${outs[0]}"
      pids=("${pids[@]:1}"); outs=("${outs[@]:1}")
    fi
  else
    run_guest "$rel" "$vmlinuz" || failures=$((failures + 1))
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failures=$((failures + 1)); cat "${outs[$i]}"; rm -f "${outs[$i]}"
done
if ((host_wanted)); then
  ran=$((ran + 1)); dirs+=("artifacts/kernels/$(uname -r)")
  run_host || failures=$((failures + 1))
fi

python3 matrix/result.py table "${dirs[@]}" >artifacts/kernels/matrix.md || true
wall=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
if ((failures)); then
  echo "kernel matrix: FAILED on $failures of $ran kernel(s) (${wall} s; artifacts in artifacts/kernels/)"
  exit 1
fi
echo "kernel matrix: $ran kernel(s) passed (${wall} s; artifacts in artifacts/kernels/)"
