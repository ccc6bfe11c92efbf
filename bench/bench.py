#!/usr/bin/env python3
"""`make bench`: what fivexx-agent costs on this machine, side by side with
bpftrace, measured in one run (issue 7). Standard library only.

Parts (each can be skipped with --skip PART):
  overhead   nginx (the lab's ingress) proxying to a backend pod, wrk keep-alive
             and `Connection: close`, conditions a..f interleaved in rounds
             ((b) the agent's default hooks, tp_btf where the kernel offers
             it; (f) the same agent with classic tracepoints only)
  forms      connection-per-request without a proxy (connloop.c): CPU per
             connection with no agent, tp_btf hooks and classic tracepoints,
             interleaved: all the kernel's tracing work, dispatch included;
             each form also without the idle-time read at a close
             (--no-idle-time), for its ns per close
  drops      skb:kfree_skb under a flood of unrelated drops (udpflood.c, UDP
             to a closed port), forced on, in both forms: eBPF ns per drop
  capacity   refused connects as fast as possible from 1..N processes: events/s
             the agent ingests, drops (from its own counters), CPU per 10k ev/s,
             and an overload (agent stopped mid-run) to show drops are counted
  latency    kernel event -> line read by a client: the agent's own outputs
             (bpf ktime, CLOCK_MONOTONIC) and `kubectl fivexx trace node/NODE --events`
             through the lab's fake API server and its port-forward (wall
             clock), with the plugin's RSS during that trace
  analysis   fivexx-core's bench_explain: capture write, explain 1M and 10M facts
  footprint  agent start-up (exec -> attached), RSS idle and under load;
             the plugin's RSS during the latency part's trace
  fanout     `kubectl fivexx trace -n NS --events` over 200 fake nodes (one real agent
             behind every agent pod's port-forward) while 300 pods start
             across them: port-forwards opened, the plugin's peak RSS and CPU,
             start to first event

Run one part with --only PART (e.g. --only fanout). Raw samples go to
target/bench/results.json (--out), the table to stdout.

Everything runs as root on loopback or inside the lab's network namespaces,
every loop is bounded, and the lab, agents, fake API server, plugin and
bpftrace are stopped on exit (also on failure or Ctrl-C).
"""

import argparse
import calendar
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
AGENT = os.environ.get("FIVEXX_AGENT") or os.path.join(TARGET, "release", "fivexx-agent")
LAB = os.environ.get("FIVEXX_LAB") or os.path.join(TARGET, "release", "fivexx-lab")
BENCH_EXPLAIN = os.path.join(TARGET, "release", "examples", "bench_explain")
PLUGIN = os.environ.get("FIVEXX_PLUGIN") or os.path.join(TARGET, "release", "kubectl-fivexx")
WORK = "/tmp/fxbench"
LAB_NODE = "lab-node-1"  # the node the fake API server's agent pod runs on
INGRESS = "10.244.0.2"
MONO = time.CLOCK_MONOTONIC
CLK_TCK = os.sysconf("SC_CLK_TCK")

CHILDREN = []  # every process we started, stopped by pid in cleanup()


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def mono_ns():
    return time.clock_gettime_ns(MONO)


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    CHILDREN.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        except ProcessLookupError:
            pass
    if p in CHILDREN:
        CHILDREN.remove(p)


def cleanup():
    for p in list(CHILDREN):
        try:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
            stop(p, signal.SIGTERM, 5)
        except Exception:
            pass
    if os.path.exists(LAB):
        subprocess.run([LAB, "clean"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[k]


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def cpu_ticks(pid):
    """utime + stime of a process and its reaped children, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


def bpf_prog_stats(pid):
    """Sum of run_time_ns / run_cnt over the eBPF programs a process holds
    (fdinfo; needs kernel.bpf_stats_enabled=1)."""
    ns = cnt = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("run_time_ns:"):
                        ns += int(line.split()[1])
                    elif line.startswith("run_cnt:"):
                        cnt += int(line.split()[1])
        except OSError:
            continue
    return {"run_time_ns": ns, "run_cnt": cnt}


def lab_pids():
    pids = []
    for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n"):
        name = ns.split(" ")[0]
        if name.startswith("fxlab"):
            pids += [int(p) for p in subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                                    text=True).stdout.split()]
    return pids


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def refused_probe(port):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    finally:
        s.close()


COUNTER_RE = re.compile(r"^(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def parse_counters(text):
    """The agent's exit table: KIND GENERATED RECEIVED DROPPED."""
    kinds = {}
    for line in text.splitlines():
        m = COUNTER_RE.match(line.strip())
        if m:
            kinds[m.group(1)] = {
                "generated": int(m.group(2)),
                "received": int(m.group(3)),
                "dropped": int(m.group(4)),
            }
    tot = {k: sum(v[k] for v in kinds.values()) for k in ("generated", "received", "dropped")}
    return kinds, tot


# ---------------------------------------------------------------- tracers

BPFTRACE_PRINT = r"""
BEGIN { printf("READY\n"); }
tracepoint:sock:inet_sock_set_state {
  printf("%llu state %s:%d -> %s:%d %d->%d %s\n", nsecs, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport, args->oldstate, args->newstate, comm);
}
tracepoint:tcp:tcp_send_reset { printf("%llu send_reset state=%d reason=%d\n", nsecs, args->state, args->reason); }
tracepoint:tcp:tcp_receive_reset { printf("%llu receive_reset %s:%d -> %s:%d\n", nsecs, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport); }
tracepoint:sock:inet_sk_error_report { printf("%llu sk_error %s:%d -> %s:%d err=%d\n", nsecs, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport, args->error); }
tracepoint:tcp:tcp_retransmit_skb { printf("%llu retransmit %d %d\n", nsecs, args->sport, args->dport); }
tracepoint:tcp:tcp_retransmit_synack { printf("%llu retransmit_synack\n", nsecs); }
tracepoint:signal:signal_generate { printf("%llu signal %d %s -> %d %d\n", nsecs, args->sig, comm, args->pid, args->result); }
tracepoint:sched:sched_process_exit { printf("%llu exit %d %s\n", nsecs, args->pid, args->comm); }
tracepoint:oom:mark_victim { printf("%llu oom %d\n", nsecs, args->pid); }
"""

BPFTRACE_COUNT = r"""
BEGIN { printf("READY\n"); }
tracepoint:sock:inet_sock_set_state { @state[args->oldstate, args->newstate] = count(); }
tracepoint:tcp:tcp_send_reset { @ev["send_reset"] = count(); }
tracepoint:tcp:tcp_receive_reset { @ev["receive_reset"] = count(); }
tracepoint:sock:inet_sk_error_report { @err[args->error] = count(); }
tracepoint:tcp:tcp_retransmit_skb { @ev["retransmit"] = count(); }
tracepoint:tcp:tcp_retransmit_synack { @ev["retransmit_synack"] = count(); }
tracepoint:signal:signal_generate { @sig[args->sig] = count(); }
tracepoint:sched:sched_process_exit { @ev["exit"] = count(); }
tracepoint:oom:mark_victim { @ev["oom"] = count(); }
"""

CONDITIONS = {
    "a": "no tracing",
    "b": "fivexx-agent, default hooks (trace -o json)",
    "c": "fivexx-agent + HTTP peek on the ingress cgroup",
    "d": "bpftrace printing every event",
    "e": "bpftrace counting in maps",
    "f": "fivexx-agent, classic tracepoints only (--classic-tracepoints)",
}


class Tracer:
    """One condition's tracer, started before and stopped after its loads."""

    def __init__(self, cond, ingress_cgroup, probe_port):
        self.cond = cond
        self.proc = None
        self.out = os.path.join(WORK, f"tracer-{cond}.out")
        self.err = os.path.join(WORK, f"tracer-{cond}.err")
        self.ingress_cgroup = ingress_cgroup
        self.probe_port = probe_port
        self.startup_s = None

    def start(self):
        if self.cond == "a":
            return
        for f in (self.out, self.err):
            if os.path.exists(f):
                os.unlink(f)
        if self.cond in "bcf":
            args = [AGENT, "trace", "-o", "json"]
            if self.cond == "c":
                args += ["--http-cgroup", self.ingress_cgroup]
            if self.cond == "f":
                args += ["--classic-tracepoints"]
        else:
            script = os.path.join(WORK, f"bpftrace-{self.cond}.bt")
            with open(script, "w") as f:
                f.write(BPFTRACE_PRINT if self.cond == "d" else BPFTRACE_COUNT)
            args = ["bpftrace", script]
        t0 = time.monotonic()
        self.proc = spawn(args, stdout=open(self.out, "w"), stderr=open(self.err, "w"))
        # Ready when it has seen something: the agent prints a refused connect
        # we make, bpftrace prints READY from BEGIN (after every probe attached).
        deadline = t0 + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited: {open(self.err).read()[-2000:]}")
            if self.cond in "bcf":
                refused_probe(self.probe_port)
            if os.path.getsize(self.out) > 0:
                self.startup_s = time.monotonic() - t0
                return
            time.sleep(0.05)
        raise RuntimeError(f"condition {self.cond}: tracer not ready in 30 s")

    def stop(self):
        if self.proc is None:
            return {}
        stop(self.proc, signal.SIGINT if self.cond in "de" else signal.SIGTERM, 20)
        info = {"startup_s": self.startup_s, "output_bytes": os.path.getsize(self.out)}
        if self.cond in "bcf":
            _, tot = parse_counters(open(self.err).read())
            info["agent_counters"] = tot
        os.unlink(self.out)
        self.proc = None
        return info


# ---------------------------------------------------------------- lab

class Lab:
    """A steady lab: one backend pod behind the ingress nginx. It is the
    prestop-fixed scenario held in its warm-up (1 request/s of its own load)
    and stopped with SIGTERM (which cleans every lab object)."""

    def __init__(self, replicas=1):
        self.replicas = replicas
        self.proc = None

    def start(self):
        subprocess.run([LAB, "clean"], stdout=subprocess.DEVNULL, check=False)
        out = os.path.join(WORK, "lab")
        shutil.rmtree(out, ignore_errors=True)
        self.proc = spawn(
            [LAB, "prestop-fixed", "--replicas", str(self.replicas), "--rate", "1",
             "--warmup-ms", "3600000", "--load-ms", "300000", "--out", out],
            stdout=open(os.path.join(WORK, "lab.log"), "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the lab exited: " + open(os.path.join(WORK, "lab.log")).read()[-2000:])
            try:
                s = socket.create_connection((INGRESS, 80), timeout=1)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    s.close()
                    break
                s.close()
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the lab's ingress never answered 200")
        pids = subprocess.run(["ip", "netns", "pids", "fxlab-ingress"], capture_output=True,
                              text=True).stdout.split()
        self.nginx_pids = [int(p) for p in pids]
        with open(f"/proc/{pids[0]}/cgroup") as f:
            self.ingress_cgroup = [l.split("::", 1)[1].strip() for l in f if l.startswith("0::")][0]

    def stop(self):
        if self.proc:
            stop(self.proc, signal.SIGTERM, 30)
            self.proc = None
        subprocess.run([LAB, "clean"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------- 1. overhead

def parse_latency(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    v = float(m.group(1))
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk(load, secs, conns, threads, tracer_pid=None):
    import resource
    pids = lab_pids()
    lab0 = {p: cpu_ticks(p) for p in pids}
    tr0 = cpu_ticks(tracer_pid) if tracer_pid else None
    bpf0 = bpf_prog_stats(tracer_pid) if tracer_pid else None
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = wrk_run(load, secs, conns, threads)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    lab_cpu = sum((cpu_ticks(p) or lab0[p]) - lab0[p] for p in pids if lab0[p] is not None)
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    reqs = s["rps"] * secs
    s["datapath_cpu_s"] = lab_cpu + wrk_cpu
    s["datapath_cpu_us_per_req"] = 1e6 * (lab_cpu + wrk_cpu) / reqs if reqs else None
    if tracer_pid:
        tr1, bpf1 = cpu_ticks(tracer_pid), bpf_prog_stats(tracer_pid)
        s["tracer_cpu_s"] = tr1 - tr0
        s["tracer_cpu_us_per_req"] = 1e6 * (tr1 - tr0) / reqs if reqs else None
        if bpf0 and bpf1:
            s["bpf_run_ns"] = bpf1["run_time_ns"] - bpf0["run_time_ns"]
            s["bpf_run_cnt"] = bpf1["run_cnt"] - bpf0["run_cnt"]
            s["bpf_ns_per_req"] = s["bpf_run_ns"] / reqs if reqs else None
    else:
        s["tracer_cpu_s"] = 0.0
        s["tracer_cpu_us_per_req"] = 0.0
        s["bpf_ns_per_req"] = 0.0
    s["total_cpu_us_per_req"] = (s["datapath_cpu_us_per_req"] or 0) + (s["tracer_cpu_us_per_req"] or 0)
    return s


def wrk_run(load, secs, conns, threads):
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "--timeout", "5s"]
    if load == "close":
        args += ["-H", "Connection: close"]
    args.append(f"http://{INGRESS}/")
    out = subprocess.run(args, capture_output=True, text=True, timeout=secs + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = parse_latency(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    p50 = parse_latency(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps, "p50_ms": p50, "p99_ms": p99,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errs.groups()) if errs else 0,
    }


def overhead(res, args, lab):
    conds = [c for c in "abcdef" if c in args.conditions]
    loads = ["keepalive", "close"]
    probe_port = free_port()
    samples = []
    rng = random.Random(7)
    for r in range(args.rounds):
        order = conds[:]
        rng.shuffle(order)
        log(f"overhead round {r + 1}/{args.rounds}: order {''.join(order)}")
        for c in order:
            t = Tracer(c, lab.ingress_cgroup, probe_port)
            t.start()
            lo = loads if r % 2 == 0 else loads[::-1]
            runs = []
            try:
                time.sleep(0.3)
                for load in lo:
                    s = wrk(load, args.wrk_secs, args.conns, args.threads,
                            t.proc.pid if t.proc else None)
                    s.update({"round": r, "condition": c, "load": load})
                    runs.append(s)
            finally:
                info = t.stop()
            for s in runs:
                s["tracer"] = info
                samples.append(s)
            time.sleep(0.3)
    summary = {}
    for load in loads:
        base = [s for s in samples if s["load"] == load and s["condition"] == "a"]
        b_rps, b_p99 = median([s["rps"] for s in base]), median([s["p99_ms"] for s in base])
        b_cpu = median([s["total_cpu_us_per_req"] for s in base])
        for c in conds:
            ss = [s for s in samples if s["load"] == load and s["condition"] == c]
            m_rps, m_p99 = median([s["rps"] for s in ss]), median([s["p99_ms"] for s in ss])
            # Also the median of ratios paired within a round (robust to drift).
            paired = []
            for s in ss:
                b = [x for x in base if x["round"] == s["round"]]
                if b:
                    paired.append(s["rps"] / b[0]["rps"])
            summary[f"{load}/{c}"] = {
                "condition": CONDITIONS[c], "load": load, "n": len(ss),
                "median_rps": m_rps, "median_p99_ms": m_p99,
                "rps_ratio": m_rps / b_rps if b_rps else None,
                "throughput_cost_pct": (1 - m_rps / b_rps) * 100 if b_rps else None,
                "p99_ratio": m_p99 / b_p99 if b_p99 else None,
                "paired_rps_ratio_median": median(paired),
                "median_cpu_us_per_req": median([s["total_cpu_us_per_req"] for s in ss]),
                "cpu_per_req_ratio": median([s["total_cpu_us_per_req"] for s in ss]) / b_cpu if b_cpu else None,
                "median_bpf_ns_per_req": median([s.get("bpf_ns_per_req") for s in ss]),
                "median_tracer_cpu_us_per_req": median([s["tracer_cpu_us_per_req"] for s in ss]),
                # The tracing's own CPU per request (eBPF programs + the tracer
                # process) against the data path's CPU per request with no
                # tracing: much less sensitive to a busy machine than req/s.
                # It leaves out side effects outside the programs (for (c), the
                # syscall slow path that syscall tracepoints switch on).
                "est_cost_pct": 100 * ((median([s.get("bpf_ns_per_req") for s in ss]) or 0) / 1000
                                       + median([s["tracer_cpu_us_per_req"] for s in ss])) / b_cpu if b_cpu else None,
                "rps_samples": [s["rps"] for s in ss],
                "non_2xx": sum(s["non_2xx"] for s in ss),
                "socket_errors": sum(s["socket_errors"] for s in ss),
            }
    res["overhead"] = {
        "setup": f"wrk -t{args.threads} -c{args.conns} -d{args.wrk_secs}s against the lab's ingress "
                 f"nginx ({INGRESS}:80, 2 workers) proxying to 1 backend pod; loads keep-alive and "
                 f"'Connection: close'; {args.rounds} rounds, condition order shuffled per round",
        "summary": summary, "samples": samples,
    }


# ---------------------------------------------------------------- 1b. hook forms

def agent_with(extra, stderr_path):
    """`fivexx-agent trace -o json > /dev/null` with `extra` flags, returned
    once every hook is attached."""
    a = spawn([AGENT, "trace", "-o", "json"] + extra, stdout=subprocess.DEVNULL,
              stderr=open(stderr_path, "w"))
    deadline = time.monotonic() + 30
    while "HTTP peek off" not in open(stderr_path).read():
        if a.poll() is not None or time.monotonic() > deadline:
            stop(a)
            raise RuntimeError("agent did not start: " + open(stderr_path).read()[-2000:])
        time.sleep(0.02)
    time.sleep(0.3)
    return a


def agent_forms(pid):
    """How many programs the agent holds of each type (tracepoint or
    tp_btf), from its program fds' fdinfo: which forms it really attached."""
    types = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            info = dict(l.split(":", 1) for l in open(f"/proc/{pid}/fdinfo/{fd}") if ":" in l)
            t = {"5": "tracepoint", "26": "tp_btf"}.get(info["prog_type"].strip(), info["prog_type"].strip())
            types[t] = types.get(t, 0) + 1
        except OSError:
            continue
    return types


def set_bpf_stats(on):
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1" if on else "0")


def run_kv(argv, secs):
    """Runs a generator and parses its `key=value ...` line."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 30, check=True).stdout
    return dict(kv.split("=") for kv in out.split())


# "-noidle": the same hooks without the idle-time read of a closing
# connection (issue 16), so that its cost per close shows side by side:
# connloop's server closes first, one ESTABLISHED -> FIN_WAIT1 per
# connection, idle ~0 (read, then not emitted: the common case).
FORMS = {"none": None, "tp_btf": [], "classic": ["--classic-tracepoints"],
         "tp_btf-noidle": ["--no-idle-time"], "classic-noidle": ["--classic-tracepoints", "--no-idle-time"]}


def hook_forms(res, args, connloop):
    """Connection-per-request without a proxy (connloop.c: connect, accept,
    close both ends on loopback; 9 TCP state changes per connection) under
    no agent, the agent's tp_btf hooks and its classic tracepoints,
    interleaved in rounds. The loop's own CPU per connection includes every
    kernel cost of tracing (the tracepoint's record building and dispatch as
    well as the programs); the programs' run time comes from bpf_stats."""
    samples = []
    rng = random.Random(11)
    for r in range(args.rounds):
        order = list(FORMS)
        rng.shuffle(order)
        log(f"hook forms round {r + 1}/{args.rounds}: {' '.join(order)}")
        for form in order:
            a = agent_with(FORMS[form], os.path.join(WORK, f"agent-{form}.err")) if FORMS[form] is not None else None
            try:
                # The CPU measure runs with bpf_stats off: its two clock reads
                # per program run cost about as much as the programs here.
                set_bpf_stats(False)
                tr0 = cpu_ticks(a.pid) if a else None
                m = run_kv([connloop, str(args.form_secs)], args.form_secs)
                n = int(m["connects"])
                smp = {"round": r, "form": form, "connects": n, "cpu_us_per_conn": float(m["cpu_us_per_conn"]),
                       "conns_per_s": n / float(m["secs"])}
                if a:
                    smp["tracer_us_per_conn"] = 1e6 * (cpu_ticks(a.pid) - tr0) / n
                    # A second, shorter run with bpf_stats on: the programs' own time.
                    set_bpf_stats(True)
                    bpf0 = bpf_prog_stats(a.pid)
                    m2 = run_kv([connloop, "1"], 1)
                    bpf1, n2 = bpf_prog_stats(a.pid), int(m2["connects"])
                    smp["bpf_ns_per_conn"] = (bpf1["run_time_ns"] - bpf0["run_time_ns"]) / n2
                    smp["bpf_runs_per_conn"] = (bpf1["run_cnt"] - bpf0["run_cnt"]) / n2
                    smp["prog_types"] = agent_forms(a.pid)
                samples.append(smp)
            finally:
                set_bpf_stats(True)
                if a:
                    stop(a, signal.SIGTERM, 20)
            time.sleep(0.3)
    summary = {}
    base = median([x["cpu_us_per_conn"] for x in samples if x["form"] == "none"])
    for form in FORMS:
        ss = [x for x in samples if x["form"] == form]
        paired = []
        for x in ss:
            b = [y for y in samples if y["form"] == "none" and y["round"] == x["round"]]
            if b:
                paired.append(x["cpu_us_per_conn"] - b[0]["cpu_us_per_conn"])
        summary[form] = {
            "n": len(ss), "median_cpu_us_per_conn": median([x["cpu_us_per_conn"] for x in ss]),
            "median_added_us_per_conn_paired": median(paired) if form != "none" else 0.0,
            "added_us_per_conn": (median([x["cpu_us_per_conn"] for x in ss]) - base) if base else None,
            "median_bpf_ns_per_conn": median([x.get("bpf_ns_per_conn") for x in ss]) if form != "none" else 0.0,
            "median_bpf_runs_per_conn": median([x.get("bpf_runs_per_conn") for x in ss]) if form != "none" else 0.0,
            "median_tracer_us_per_conn": median([x.get("tracer_us_per_conn") for x in ss]) if form != "none" else 0.0,
            "prog_types": ss[-1].get("prog_types") if ss else None,
        }
    res["hook_forms"] = {
        "setup": f"connloop {args.form_secs}s on loopback, {args.rounds} rounds, order shuffled per round; "
                 "CPU with bpf_stats off, eBPF run time from a 1 s run with it on",
        "summary": summary, "samples": samples,
    }


def drop_flood(res, args, udpflood):
    """skb:kfree_skb's cost under a flood of drops that are not refused
    SYNs: UDP to a closed port (reason NO_SOCKET, like a refused SYN, so the
    program's reason filter passes and its protocol check rejects them),
    with the hook forced on (--force-kfree-skb) where the kernel would not
    need it (6.10+), in both forms."""
    port = free_port()
    out = {}
    for form, extra in (("none", None), ("tp_btf", ["--force-kfree-skb"]),
                        ("classic", ["--force-kfree-skb", "--classic-tracepoints"])):
        runs = []
        for _ in range(args.drop_rounds):
            a = agent_with(extra, os.path.join(WORK, f"agent-drop-{form}.err")) if extra is not None else None
            try:
                bpf0 = bpf_prog_stats(a.pid) if a else None
                g = subprocess.run([udpflood, str(args.drop_secs), str(port)], capture_output=True, text=True,
                                   timeout=args.drop_secs + 30, check=True).stdout
                m = dict(kv.split("=") for kv in g.split())
                n = int(m["datagrams"])
                run = {"datagrams": n, "per_s": n / float(m["secs"])}
                if a:
                    bpf1 = bpf_prog_stats(a.pid)
                    run["bpf_ns_per_drop"] = (bpf1["run_time_ns"] - bpf0["run_time_ns"]) / n
                    run["bpf_runs_per_drop"] = (bpf1["run_cnt"] - bpf0["run_cnt"]) / n
                runs.append(run)
            finally:
                if a:
                    stop(a, signal.SIGTERM, 20)
        out[form] = {
            "runs": runs, "median_per_s": median([r["per_s"] for r in runs]),
            "median_bpf_ns_per_drop": median([r.get("bpf_ns_per_drop") for r in runs]) if extra is not None else 0.0,
            "median_bpf_runs_per_drop": median([r.get("bpf_runs_per_drop") for r in runs]) if extra is not None else 0.0,
        }
    res["drop_flood"] = out


# ---------------------------------------------------------------- 2. capacity

def compile_generator(name="refuse"):
    exe = os.path.join(WORK, name)
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(ROOT, "bench", f"{name}.c")], check=True)
    return exe


def agent_signal_run(sig_gen, secs, rate):
    """Agent (`trace -o json > /dev/null`, default ring) around one signal
    flood at `rate` signals/s (0: flat out): one event per kill(2)."""
    err = os.path.join(WORK, "agent-sig.err")
    a = spawn([AGENT, "trace", "-o", "json"], stdout=subprocess.DEVNULL, stderr=open(err, "w"))
    deadline = time.monotonic() + 30
    while "HTTP peek off" not in open(err).read():
        if a.poll() is not None or time.monotonic() > deadline:
            stop(a)
            raise RuntimeError("agent did not start: " + open(err).read()[-2000:])
        time.sleep(0.02)
    time.sleep(0.5)
    c0, t0 = cpu_ticks(a.pid), time.monotonic()
    g = spawn([sig_gen, str(secs), str(rate)], stdout=subprocess.PIPE, text=True)
    gout = g.communicate(timeout=secs + 30)[0]
    CHILDREN.remove(g)
    wall = time.monotonic() - t0
    time.sleep(0.5)
    c1 = cpu_ticks(a.pid)
    st = proc_status(a.pid)
    stop(a, signal.SIGTERM, 20)
    kinds, _ = parse_counters(open(err).read())
    m = dict(kv.split("=") for kv in gout.split())
    sig = kinds.get("signal", {"generated": 0, "received": 0, "dropped": 0})
    return {
        "offered_rate": rate, "signals": int(m["signals"]), "secs": float(m["secs"]),
        "events_per_s": sig["generated"] / float(m["secs"]),
        "generated": sig["generated"], "received": sig["received"], "dropped": sig["dropped"],
        "accounted": sig["generated"] == sig["received"] + sig["dropped"],
        "agent_cpu_pct": 100 * (c1 - c0) / (wall + 0.5), "agent_vmhwm_kib": st.get("VmHWM"),
    }


def agent_run(gen, port, secs, procs, rate=None, ring=None, pause=None, stdout_path=os.devnull):
    """Agent (trace -o json > stdout_path) around one generator run."""
    args = [AGENT, "trace", "-o", "json"]
    if ring:
        args += ["--ring-bytes", str(ring)]
    err = os.path.join(WORK, "agent-cap.err")
    a = spawn(args, stdout=open(stdout_path, "w"), stderr=open(err, "w"))
    deadline = time.monotonic() + 30
    while "HTTP peek off" not in open(err).read():  # printed once every hook is attached
        if a.poll() is not None or time.monotonic() > deadline:
            stop(a)
            raise RuntimeError("agent did not start: " + open(err).read()[-2000:])
        time.sleep(0.02)
    time.sleep(0.5)
    st0 = proc_status(a.pid)
    c0, t0 = cpu_ticks(a.pid), time.monotonic()
    gargs = [gen, str(port), str(secs), str(procs)] + ([str(rate)] if rate else [])
    g = spawn(gargs, stdout=subprocess.PIPE, text=True)
    paused = None
    if pause:
        time.sleep(pause[0])
        a.send_signal(signal.SIGSTOP)
        time.sleep(pause[1])
        a.send_signal(signal.SIGCONT)
        paused = pause[1]
    gout = g.communicate(timeout=secs + 30)[0]
    CHILDREN.remove(g)
    wall = time.monotonic() - t0
    time.sleep(0.5)  # let it drain what the ring still holds
    c1 = cpu_ticks(a.pid)
    st1 = proc_status(a.pid)
    stop(a, signal.SIGTERM, 20)
    kinds, tot = parse_counters(open(err).read())
    m = dict(kv.split("=") for kv in gout.split())
    cpu_s = c1 - c0
    rate_ev = tot["generated"] / float(m["secs"])
    return {
        "procs": procs, "paced_rate_per_proc": rate, "ring_bytes": ring or "default",
        "paused_s": paused, "connects": int(m["connects"]), "refused": int(m["refused"]),
        "gen_secs": float(m["secs"]), "events_per_s": rate_ev,
        "generated": tot["generated"], "received": tot["received"], "dropped": tot["dropped"],
        "accounted": tot["generated"] == tot["received"] + tot["dropped"],
        "agent_cpu_s": cpu_s, "window_s": wall + 0.5,
        "agent_cpu_pct": 100 * cpu_s / (wall + 0.5),
        "cpu_pct_per_10k_ev_s": (100 * cpu_s / (wall + 0.5)) / (rate_ev / 1e4) if rate_ev else None,
        "events_per_agent_cpu_s": tot["received"] / cpu_s if cpu_s else None,
        "agent_vmrss_kib_before": st0.get("VmRSS"), "agent_vmrss_kib_after": st1.get("VmRSS"),
        "agent_vmhwm_kib": st1.get("VmHWM"), "by_kind": kinds,
    }


def capacity(res, args, gen):
    port = free_port()
    runs = []
    for procs in args.cap_procs:
        log(f"capacity: {procs} generator process(es), {args.cap_secs} s")
        r = agent_run(gen, port, args.cap_secs, procs)
        log(f"  {r['events_per_s']:.0f} events/s, dropped {r['dropped']}, agent CPU {r['agent_cpu_pct']:.1f}%")
        runs.append(r)
    # The same generator with no agent at all: what the kernel alone does
    # here, so the agent's in-kernel cost per event shows as the difference.
    alone = []
    for procs in args.cap_procs:
        out = subprocess.run([gen, str(port), str(args.cap_secs), str(procs)], capture_output=True,
                             text=True, timeout=args.cap_secs + 30).stdout
        m = dict(kv.split("=") for kv in out.split())
        alone.append({"procs": procs, "connects": int(m["connects"]), "secs": float(m["secs"]),
                      "connects_per_s": int(m["connects"]) / float(m["secs"])})
        log(f"capacity: no agent, {procs} process(es): {alone[-1]['connects_per_s']:.0f} connects/s")
    log("capacity: overload (agent SIGSTOPped 1.5 s mid-run, default ring)")
    over = agent_run(gen, port, 4, max(args.cap_procs), pause=(1.0, 1.5))
    log(f"  generated {over['generated']} received {over['received']} dropped {over['dropped']}")
    log("capacity: small ring (--ring-bytes 16384), full speed")
    small = agent_run(gen, port, 3, max(args.cap_procs), ring=16384)
    log(f"  generated {small['generated']} received {small['received']} dropped {small['dropped']}")
    log("capacity: the same top speed with an 8 MiB ring (--ring-bytes 8388608)")
    big = agent_run(gen, port, args.cap_secs, max(args.cap_procs), ring=8 << 20)
    log(f"  {big['events_per_s']:.0f} events/s, dropped {big['dropped']}")
    # Refused connects cost the generator ~30 us of kernel time per 4
    # events, so on 2 cores they cannot offer 200k events/s. A kill(2) of an
    # ignoring process is one event for ~1 us: it can.
    sig_gen = compile_generator("signals")
    sig_runs = []
    for rate in args.sig_rates:
        log(f"capacity: signal flood at {rate or 'max'} signals/s, {args.cap_secs} s")
        r = agent_signal_run(sig_gen, args.cap_secs, rate)
        log(f"  {r['events_per_s']:.0f} events/s, dropped {r['dropped']}, agent CPU {r['agent_cpu_pct']:.1f}%")
        sig_runs.append(r)
    sig_alone = subprocess.run([sig_gen, "3", "0"], capture_output=True, text=True, timeout=60).stdout
    m = dict(kv.split("=") for kv in sig_alone.split())
    sig_zero = [r for r in sig_runs if r["dropped"] == 0]
    zero = [r for r in runs if r["dropped"] == 0]
    best = max(zero, key=lambda r: r["events_per_s"]) if zero else None
    res["capacity"] = {
        "setup": "refused connects to a closed 127.0.0.1 port (bench/refuse.c, N processes, "
                 "4 events per connect) with `fivexx-agent trace -o json > /dev/null`; "
                 "counters from the agent's exit table; CPU from /proc/PID/stat",
        "max_zero_drop_events_per_s": best["events_per_s"] if best else None,
        "cpu_pct_per_10k_ev_s": median([r["cpu_pct_per_10k_ev_s"] for r in runs]),
        "events_per_agent_cpu_s": median([r["events_per_agent_cpu_s"] for r in runs]),
        "runs": runs, "overload_paused": over, "overload_small_ring": small,
        "generator_alone": alone, "ring_8mib": big,
        "signal_flood": {
            "setup": "bench/signals.c: kill(SIGHUP) to a process ignoring it, paced; one "
                     "signal_generate event each; agent `trace -o json > /dev/null`, default ring",
            "generator_alone_per_s": int(m["signals"]) / float(m["secs"]),
            "max_zero_drop_events_per_s": max((r["events_per_s"] for r in sig_zero), default=None),
            "runs": sig_runs,
        },
    }


# ---------------------------------------------------------------- 3. latency

def read_lines_latency(stream, samples, stop_at):
    for line in stream:
        now = mono_ns()
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if "mono_ns" in ev and ev.get("kind") != "exit":
            samples.append((now - ev["mono_ns"]) / 1e6)
        if time.monotonic() > stop_at:
            break


def latency_trace(gen, port, secs, rate):
    a = spawn([AGENT, "trace", "-o", "json", "--kinds", "send_reset,receive_reset,state_change,sock_error"],
              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    samples = []
    th = threading.Thread(target=read_lines_latency, args=(a.stdout, samples, time.monotonic() + 60),
                          daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not samples and time.monotonic() < deadline:
        refused_probe(port)
        time.sleep(0.05)
    time.sleep(0.3)
    samples.clear()
    g = subprocess.run([gen, str(port), str(secs), "1", str(rate)], capture_output=True, text=True)
    time.sleep(0.5)
    stop(a)
    th.join(5)
    return samples


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def wire_protocol():
    """The agent's wire protocol version, from fivexx-core's source (the
    agent refuses a Subscribe of another version with a Goodbye)."""
    src = open(os.path.join(ROOT, "fivexx-core", "src", "protocol.rs")).read()
    m = re.search(r"pub const PROTOCOL_VERSION: u32 = (\d+);", src)
    if not m:
        raise RuntimeError("PROTOCOL_VERSION not found in fivexx-core/src/protocol.rs")
    return int(m.group(1))


def latency_serve(gen, port, secs, rate):
    listen = free_port()
    a = spawn([AGENT, "serve", "--listen", f"127.0.0.1:{listen}"],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", listen), timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                stop(a)
                raise RuntimeError("serve never listened")
            time.sleep(0.05)
    body = json.dumps({"type": "subscribe", "protocol": wire_protocol(),
                       "filter": {"kinds": ["send_reset", "receive_reset", "state_change", "sock_error"]}}).encode()
    s.sendall(struct.pack(">I", len(body)) + body)
    s.settimeout(5)
    samples = []
    started = [False]
    goodbye = []

    def reader():
        end = time.monotonic() + 60
        try:
            while time.monotonic() < end:
                n = struct.unpack(">I", recv_exact(s, 4))[0]
                msg = recv_exact(s, n)
                now = mono_ns()
                m = json.loads(msg)
                if m.get("type") == "event":
                    started[0] = True
                    samples.append((now - m["event"]["mono_ns"]) / 1e6)
                elif m.get("type") == "goodbye":
                    goodbye.append(m.get("reason"))
        except (EOFError, OSError, ValueError):
            pass

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not started[0] and time.monotonic() < deadline and th.is_alive():
        refused_probe(port)
        time.sleep(0.05)
    if not started[0]:
        stop(a)
        s.close()
        raise RuntimeError(f"fivexx-agent serve sent no event for the probes (goodbye: {goodbye or 'none'})")
    time.sleep(0.3)
    samples.clear()
    subprocess.run([gen, str(port), str(secs), "1", str(rate)], capture_output=True, text=True)
    time.sleep(0.5)
    stop(a)
    th.join(5)
    s.close()
    return samples


# `kubectl fivexx trace --events` prints one line per kernel fact (without
# --events only one line per closed burst of failed requests, which a
# refused connect never makes), starting with the event's wall time
# (RFC 3339, milliseconds, UTC): see kernel_line() in
# kubectl-fivexx/src/session/lines.rs and event_line() in
# fivexx-core/src/report/lines.rs.
PLUGIN_LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z\s")


def read_plugin_lines_latency(stream, samples, needle, stop_at):
    """Kernel-fact lines of the plugin's trace that name our port: latency =
    CLOCK_REALTIME when the line was read minus the printed event time.
    Reads to EOF (the plugin is stopped by its --duration or by us), so the
    pipe never fills up; records until stop_at."""
    secs_cache = {}
    for line in stream:
        now = time.time_ns()
        if time.monotonic() > stop_at or not needle.search(line):
            continue
        m = PLUGIN_LINE_RE.match(line)
        if m:
            sec = secs_cache.get(m.group(1))
            if sec is None:
                sec = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
                secs_cache = {m.group(1): sec}
            samples.append((now - (sec * 1_000_000_000 + int(m.group(2)) * 1_000_000)) / 1e6)


def wait_file(path, text, proc, secs, what):
    """Polls a process's output file for `text`; bounded."""
    deadline = time.monotonic() + secs
    while True:
        try:
            body = open(path).read()
        except OSError:
            body = ""
        if text in body:
            return body
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {body[-1500:]}")
        time.sleep(0.05)


def plugin_control_plane(tag):
    """A real `fivexx-agent serve` for node lab-node-1, the lab's fake API
    server (`fivexx-lab api`) whose agent DaemonSet pod port-forwards to it,
    and `kubectl fivexx deploy --no-wait` against it. Returns (agent, api,
    kubeconfig); both processes are in CHILDREN."""
    listen = free_port()
    agent_err = os.path.join(WORK, f"plugin-agent-{tag}.err")
    started = []
    try:
        a = spawn([AGENT, "serve", "--listen", f"127.0.0.1:{listen}", "--node", LAB_NODE],
                  stdout=subprocess.DEVNULL, stderr=open(agent_err, "w"))
        started.append(a)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                break
            except OSError:
                if a.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("agent serve never listened: " + open(agent_err).read()[-1500:])
                time.sleep(0.05)
        kubeconfig = os.path.join(WORK, f"plugin-kubeconfig-{tag}")
        api_out = os.path.join(WORK, f"plugin-api-{tag}.out")
        api = spawn([LAB, "api", "--agent-addr", f"127.0.0.1:{listen}", "--kubeconfig", kubeconfig,
                     "--node", LAB_NODE], stdout=open(api_out, "w"), stderr=subprocess.STDOUT)
        started.append(api)
        wait_file(api_out, "fivexx-lab api: serving", api, 30, "fivexx-lab api")
        d = subprocess.run([PLUGIN, "deploy", "--no-wait"], env=plugin_env(kubeconfig),
                           capture_output=True, text=True, timeout=60)
        if d.returncode != 0:
            raise RuntimeError(f"kubectl-fivexx deploy failed: {(d.stdout + d.stderr)[-1500:]}")
    except BaseException:
        for p in reversed(started):
            stop(p)
        raise
    return a, api, kubeconfig


def plugin_env(kubeconfig):
    return dict(os.environ, KUBECONFIG=kubeconfig, NO_COLOR="1")


def latency_plugin(gen, port, secs, rate):
    """`kubectl-fivexx trace node/lab-node-1 --events` through the fake API server's
    port-forward; its RSS sampled from /proc while the generator runs."""
    a, api, kubeconfig = plugin_control_plane(rate)
    err = os.path.join(WORK, f"plugin-trace-{rate}.err")
    t = spawn([PLUGIN, "trace", f"node/{LAB_NODE}", "--events", "--duration", f"{secs + 60}s"],
              env=plugin_env(kubeconfig), stdout=subprocess.PIPE, stderr=open(err, "w"),
              text=True, bufsize=1)
    samples = []
    th = threading.Thread(target=read_plugin_lines_latency,
                          args=(t.stdout, samples, re.compile(rf":{port}(?!\d)"), time.monotonic() + secs + 90),
                          daemon=True)
    th.start()
    rss = {}
    try:
        wait_file(err, "tracing node/", t, 40, "kubectl-fivexx trace")
        deadline = time.monotonic() + 30
        while not samples and time.monotonic() < deadline and t.poll() is None:
            refused_probe(port)
            time.sleep(0.05)
        if not samples:
            raise RuntimeError("kubectl-fivexx trace printed no kernel fact for the probes: "
                               + open(err).read()[-1500:])
        time.sleep(0.3)
        samples.clear()
        rss["idle_vmrss_kib"] = proc_status(t.pid).get("VmRSS")
        procs = {"plugin": t, "api_server": api, "agent": a}
        cpu0 = {k: cpu_ticks(p.pid) or 0 for k, p in procs.items()}
        g = spawn([gen, str(port), str(secs), "1", str(rate)], stdout=subprocess.DEVNULL)
        t0, during = time.monotonic(), []
        while g.poll() is None and time.monotonic() < t0 + secs + 30:
            st = proc_status(t.pid)
            if "VmRSS" in st:
                during.append((time.monotonic() - t0, st["VmRSS"]))
            time.sleep(0.2)
        stop(g, signal.SIGTERM, 5)
        time.sleep(0.5)
        window = time.monotonic() - t0
        end = proc_status(t.pid)
        # CPU of each process on the path, as % of one core over the run.
        rss["cpu_pct"] = {k: round(100 * ((cpu_ticks(p.pid) or 0) - cpu0[k]) / window, 1) for k, p in procs.items()}
        if t.poll() is not None:
            raise RuntimeError(f"kubectl-fivexx trace exited mid-run ({t.returncode}): "
                               + open(err).read()[-1500:])
        half = [v for at, v in during if at >= secs / 2] or [v for _, v in during]
        rss.update({"steady_vmrss_kib": median(half), "end_vmrss_kib": end.get("VmRSS"),
                    "vmhwm_kib": end.get("VmHWM"), "rss_samples": len(during)})
    finally:
        stop(t, signal.SIGINT, 15)  # Ctrl-C: the plugin prints its summary and exits
        th.join(5)
        stop(api)
        stop(a)
    return samples, rss


LATENCY_PATHS = (
    ("agent_trace_json_pipe", latency_trace),
    ("agent_serve_loopback_client", latency_serve),
    ("plugin_trace_port_forward", latency_plugin),
)


def latency(res, args, gen):
    port = free_port()
    out = {"setup": "paced refused connects (bench/refuse.c) on loopback, 4 kernel events per connect. "
                    "agent_*: latency = CLOCK_MONOTONIC when the client has parsed the line/frame minus the "
                    "event's bpf ktime (mono_ns). plugin_trace_port_forward: the real kubectl-fivexx "
                    f"`trace node/{LAB_NODE} --events` (release build, one line per kernel fact) with a kubeconfig for the lab's fake API server "
                    "(`fivexx-lab api`), whose fivexx-system agent pod port-forwards (WebSocket) to a real "
                    "`fivexx-agent serve`, after `kubectl fivexx deploy --no-wait`; its stdout is a pipe; "
                    "latency = CLOCK_REALTIME when bench.py has read the line minus the event time printed "
                    "on it (the agent's wall_ns = mono_ns + a realtime offset taken at start, printed "
                    "truncated to the millisecond, so up to 1 ms is added); each rate starts a fresh "
                    "agent, API server and trace",
           "plugin": None}
    paths = list(LATENCY_PATHS)
    if not os.path.exists(PLUGIN):
        out["plugin"] = f"{PLUGIN} not built: the plugin path was not measured (`make bench` builds it)"
        paths = paths[:2]
    for name, fn in paths:
        for rate in args.lat_rates:
            log(f"latency: {name} at {rate} connects/s ({4 * rate} events/s)")
            extra = {}
            try:
                xs = fn(gen, port, args.lat_secs, rate)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                if fn is not latency_plugin:
                    raise
                log(f"  FAILED: {e}")
                out["plugin"] = f"FAILED at {rate} connects/s: {e}"
                break
            if isinstance(xs, tuple):
                xs, extra = xs
            out[f"{name}@{rate}"] = {
                "path": name, "connects_per_s": rate, "events": len(xs),
                "p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99), "max_ms": max(xs) if xs else None,
                **({"plugin_rss": extra} if extra else {}),
                "samples_ms": [round(x, 3) for x in xs],
            }
            log(f"  n={len(xs)} p50={pct(xs, 50)} p99={pct(xs, 99)} ms"
                + (f" plugin VmRSS steady {extra.get('steady_vmrss_kib')} KiB, VmHWM {extra.get('vmhwm_kib')} KiB"
                   if extra else ""))
    res["latency"] = out


# ---------------------------------------------------------------- 4. analysis

def analysis(res, args):
    d = os.path.join(TARGET, "bench-explain")
    os.makedirs(d, exist_ok=True)
    out = {"setup": "fivexx-core/examples/bench_explain (same as `make bench-explain`)", "runs": {}}
    for n in args.facts:
        f = os.path.join(d, f"synthetic-{n}.fxc")
        if os.path.exists(f):
            os.unlink(f)
        log(f"analysis: {n} facts")
        try:
            w = subprocess.run([BENCH_EXPLAIN, "write", f, str(n)], capture_output=True, text=True,
                               check=True, timeout=600).stdout
            e = subprocess.run([BENCH_EXPLAIN, "explain", f], capture_output=True, text=True,
                               check=True, timeout=600).stdout
        finally:
            if os.path.exists(f):
                os.unlink(f)
        wm = re.search(r"facts=(\d+) bytes=(\d+) .* secs=([\d.]+)", w)
        em = {k: v for k, v in re.findall(r"(\w+)=([\d.]+)", e)}
        out["runs"][str(n)] = {
            "write_facts_per_s": int(wm.group(1)) / float(wm.group(3)),
            "write_mb_per_s": int(wm.group(2)) / 1e6 / float(wm.group(3)),
            "bytes_per_fact": int(wm.group(2)) / int(wm.group(1)),
            "explain_facts_per_s": float(em["facts_per_s"]),
            "explain_facts_per_cpu_s": float(em["facts_per_cpu_s"]),
            "explain_wall_s": float(em["wall_s"]),
            "explain_peak_rss_kib": int(em["peak_rss_kib"]),
            "raw": [w.strip(), e.strip()],
        }
    n = min(args.facts)
    eng = subprocess.run([BENCH_EXPLAIN, "engine", str(n)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    em = {k: v for k, v in re.findall(r"(\w+)=([\d.]+)", eng)}
    out["engine_only"] = {"facts": n, "facts_per_s": float(em["facts_per_s"]),
                          "facts_per_cpu_s": float(em["facts_per_cpu_s"]), "raw": eng.strip()}
    res["analysis"] = out


# ---------------------------------------------------------------- 5. footprint

def footprint(res, args):
    starts = []
    for i in range(args.startup_runs):
        t0 = time.monotonic()
        a = spawn([AGENT, "trace"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = a.stdout.readline()  # the table header: printed once every hook is attached
        t = time.monotonic() - t0
        if i == 0:
            time.sleep(3)
            idle = proc_status(a.pid)
        stop(a)
        if line.startswith("TIME"):
            starts.append(t)
    res["footprint"] = {
        "startup_s_samples": starts, "startup_s_median": median(starts), "startup_s_max": max(starts) if starts else None,
        "startup_how": "exec of `fivexx-agent trace` to its table header on stdout (printed after load + attach of every hook)",
        "idle_vmrss_kib": idle.get("VmRSS"), "idle_vmhwm_kib": idle.get("VmHWM"),
    }
    cap = res.get("capacity")
    if cap:
        r = max(cap["runs"], key=lambda r: r["events_per_s"])
        res["footprint"]["load_vmrss_kib"] = r["agent_vmrss_kib_after"]
        res["footprint"]["load_vmhwm_kib"] = max(x["agent_vmhwm_kib"] or 0 for x in cap["runs"] + [cap["overload_paused"]])
        res["footprint"]["load_events_per_s"] = r["events_per_s"]
    runs = [v for v in (res.get("latency") or {}).values()
            if isinstance(v, dict) and v.get("plugin_rss")]
    if runs:
        top = max(runs, key=lambda v: v["connects_per_s"])
        res["footprint"].update({
            "plugin_vmhwm_kib": max(v["plugin_rss"]["vmhwm_kib"] or 0 for v in runs) or None,
            "plugin_steady_vmrss_kib": top["plugin_rss"]["steady_vmrss_kib"],
            "plugin_idle_vmrss_kib": top["plugin_rss"]["idle_vmrss_kib"],
            "plugin_load_events_per_s": 4 * top["connects_per_s"],
            "plugin_rss_how": "kubectl-fivexx trace node/NODE of the latency part (--events, otherwise default flags): /proc/PID/status "
                              "VmHWM at the end of the busiest run (max over runs), VmRSS steady = median of 5 Hz "
                              "samples over the second half of the busiest generator run, idle = before it",
        })
    else:
        res["footprint"]["plugin_vmhwm_kib"] = None
        res["footprint"]["plugin_note"] = ("not measured: " + ((res.get("latency") or {}).get("plugin")
                                                              or "the latency part was skipped"))


# ---------------------------------------------------------------- report

# ---------------------------------------------------------------- 6. fan-out

def read_lines_timed(stream, lines):
    """Every line of a pipe with CLOCK_MONOTONIC when it was read."""
    for line in stream:
        lines.append((time.monotonic(), line))


def first_line_naming(lines, needle, since=0):
    for at, line in list(lines):
        if at >= since and needle in line:
            return at
    return None


def probe_until_line(lines, ip, port, proc, secs, since=0):
    """Refused connects to ip:port every 50 ms until a plugin line names
    ip:port; the CLOCK_MONOTONIC of that line, or None after `secs`."""
    needle = f"{ip}:{port}"
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline and proc.poll() is None:
        at = first_line_naming(lines, needle, since)
        if at is not None:
            return at
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect((ip, port))
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.05)
    return first_line_naming(lines, needle, since)


def fanout(res, args):
    """`kubectl-fivexx trace -n shop --events` against a fake cluster of N nodes, each
    with an agent pod whose port-forward reaches the one real agent, while
    a rollout starts P pods (API objects, loopback IPs) across them."""
    nodes, pods, ns = args.fanout_nodes, args.fanout_pods, "shop"
    port = free_port()  # closed: connects to a pod IP on it are refused
    listen = free_port()
    agent_err = os.path.join(WORK, "fanout-agent.err")
    a = spawn([AGENT, "serve", "--listen", f"127.0.0.1:{listen}", "--node", LAB_NODE],
              stdout=subprocess.DEVNULL, stderr=open(agent_err, "w"))
    api = t = None
    out = {"nodes": nodes, "pods": pods, "namespace": ns,
           "setup": f"`fivexx-lab api --nodes {nodes} --pods-namespace {ns} --initial-pods 1 --rollout-pods {pods} "
                    f"--rollout-interval-ms {args.fanout_interval_ms}`: {nodes} nodes, each with a fivexx-system agent "
                    "pod (after `kubectl fivexx deploy --no-wait`) whose port-forward reaches one real "
                    "`fivexx-agent serve`; the Deployment's pods are API objects with loopback IPs (127.1.0.0/16). "
                    f"The release `kubectl-fivexx trace -n {ns} --events` (one line per kernel fact) starts with 1 pod on lab-node-1; then SIGUSR1 makes "
                    f"the server start {pods} pods round-robin over the {nodes} nodes. Events: refused connects "
                    "to a pod IP on a closed port, every 50 ms until the plugin prints a line naming it. "
                    "Peak RSS and CPU of the plugin from wait4(2) of the child; port-forwards from the fake "
                    "server's count (GET /debug/fivexx/portforwards)."}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                break
            except OSError:
                if a.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("agent serve never listened: " + open(agent_err).read()[-1500:])
                time.sleep(0.05)
        kubeconfig = os.path.join(WORK, "fanout-kubeconfig")
        api_out = os.path.join(WORK, "fanout-api.out")
        api = spawn([LAB, "api", "--agent-addr", f"127.0.0.1:{listen}", "--kubeconfig", kubeconfig,
                     "--node", LAB_NODE, "--nodes", str(nodes), "--pods-namespace", ns, "--initial-pods", "1",
                     "--rollout-pods", str(pods), "--rollout-interval-ms", str(args.fanout_interval_ms)],
                    stdout=open(api_out, "w"), stderr=subprocess.STDOUT)
        body = wait_file(api_out, "fivexx-lab api: serving", api, 60, "fivexx-lab api")
        url = re.search(r"serving (http://\S+)", body).group(1)
        d = subprocess.run([PLUGIN, "deploy", "--no-wait"], env=plugin_env(kubeconfig),
                           capture_output=True, text=True, timeout=120)
        if d.returncode != 0:
            raise RuntimeError(f"kubectl-fivexx deploy failed: {(d.stdout + d.stderr)[-1500:]}")
        err = os.path.join(WORK, "fanout-trace.err")
        lines = []
        t0 = time.monotonic()
        t = spawn([PLUGIN, "trace", "-n", ns, "--events", "--duration", f"{args.fanout_secs}s"],
                  env=plugin_env(kubeconfig), stdout=subprocess.PIPE, stderr=open(err, "w"),
                  text=True, bufsize=1)
        th = threading.Thread(target=read_lines_timed, args=(t.stdout, lines), daemon=True)
        th.start()
        first_ip = "127.1.0.1"
        at = probe_until_line(lines, first_ip, port, t, 60)
        if at is None:
            raise RuntimeError("the plugin printed no line for the first pod's refused connects: "
                               + open(err).read()[-1500:])
        out["start_to_first_event_s"] = round(at - t0, 3)
        log(f"fanout: first event line {at - t0:.2f} s after the plugin started")
        os.kill(api.pid, signal.SIGUSR1)
        t_roll = time.monotonic()
        body = wait_file(api_out, "rollout started", api, 120, "the rollout")
        t_rolled = time.monotonic()
        out["rollout_s"] = round(t_rolled - t_roll, 3)
        m = re.search(r"rollout started (\d+) pod\(s\).*last (\S+) on (\S+) at (\S+)", body)
        last_ip = m.group(4)
        at = probe_until_line(lines, last_ip, port, t, 60, since=t_rolled)
        out["last_pod_to_event_s"] = None if at is None else round(at - t_rolled, 3)
        log(f"fanout: {m.group(1)} pods in {t_rolled - t_roll:.2f} s; the last pod's event line "
            f"{'never' if at is None else f'{at - t_rolled:.2f} s'} after")
        time.sleep(args.fanout_settle_secs)
        import urllib.request
        # Nodes that ran a pod of the namespace: lab-node-1 (the first pod) and
        # the rollout's round-robin.
        out["nodes_with_pods"] = min(nodes, max(pods, 1))
        try:
            with urllib.request.urlopen(f"{url}/debug/fivexx/portforwards", timeout=10) as r:
                pf = json.load(r)
            agents = {k: v for k, v in pf["per_pod"].items() if k.startswith("fivexx-system/")}
            out["port_forwards_total"] = pf["total"]
            out["port_forwards_agent_pods"] = len(agents)
            out["port_forwards_max_per_agent_pod"] = max(agents.values()) if agents else 0
            log(f"fanout: {pf['total']} port-forwards accepted, to {len(agents)} agent pods "
                f"(max {out['port_forwards_max_per_agent_pod']} per pod)")
        except OSError as e:
            # A server drowned in streams may not answer: its own count is
            # read from its last line once it is stopped (below).
            log(f"fanout: the fake API server did not answer its debug endpoint ({e})")
        out["plugin_vmhwm_kib_proc"] = proc_status(t.pid).get("VmHWM")
        t_end = time.monotonic()
        t.send_signal(signal.SIGINT)  # Ctrl-C: the plugin prints its summary and exits
        try:
            _, status, ru = os.wait4(t.pid, 0)
            t.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            ru = None
        th.join(5)
        if ru is not None:
            cpu = ru.ru_utime + ru.ru_stime
            out.update({"plugin_peak_rss_kib": ru.ru_maxrss, "plugin_cpu_s": round(cpu, 3),
                        "plugin_wall_s": round(t_end - t0, 3),
                        "plugin_cpu_pct": round(100 * cpu / (t_end - t0), 1)})
        out["trace_stderr_tail"] = open(err).read()[-2000:]
        log(f"fanout: plugin peak RSS {out.get('plugin_peak_rss_kib')} KiB, CPU {out.get('plugin_cpu_s')} s "
            f"over {out.get('plugin_wall_s')} s")
    finally:
        for p in (t, api, a):
            if p is not None:
                stop(p)
    if "port_forwards_total" not in out and api is not None:
        m = re.search(r"fivexx-lab api: (\d+) port-forward\(s\) accepted", open(api_out).read())
        out["port_forwards_total"] = int(m.group(1)) if m else None
        log(f"fanout: {out['port_forwards_total']} port-forwards accepted (the server's last line)")
    res["fanout"] = out



def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    ver = lambda cmd: (subprocess.run(cmd, capture_output=True, text=True).stdout
                       + subprocess.run(cmd, capture_output=True, text=True).stderr).strip().splitlines()[:1]
    return {
        "nproc": os.cpu_count(), "kernel": platform.release(), "cpu_model": cpu,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "mem_total_kib": int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))),
        "wrk": ver(["wrk", "-v"]), "bpftrace": ver(["bpftrace", "--version"]),
        "nginx": ver(["nginx", "-v"]), "git_commit": subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }


def fmt(v, f="{:.0f}"):
    return "n/a" if v is None else f.format(v)


LATENCY_LABELS = {
    "agent_trace_json_pipe": "agent trace -o json pipe",
    "agent_serve_loopback_client": "agent serve, loopback client",
    "plugin_trace_port_forward": "kubectl fivexx trace via port-forward",
}


def table(res):
    rows = []
    goal = lambda ok: "" if ok is None else ("met" if ok else "MISSED")
    ov = res.get("overhead", {}).get("summary", {})
    for load, lim in (("keepalive", 1.0), ("close", 3.0)):
        for c in "abcdef":
            s = ov.get(f"{load}/{c}")
            if not s:
                continue
            g = ("tput " + goal(s["throughput_cost_pct"] <= lim) + ", CPU " + goal(s["est_cost_pct"] <= lim)) if c == "b" else ""
            rows.append((f"overhead {load} ({c}) {s['condition']}",
                         f"{fmt(s['median_rps'])} req/s x{s['rps_ratio']:.3f} ({s['throughput_cost_pct']:+.1f}% cost; "
                         f"paired x{s['paired_rps_ratio_median']:.3f}), "
                         f"p99 {s['median_p99_ms']:.2f} ms x{s['p99_ratio']:.2f}; "
                         f"CPU/req {s['median_cpu_us_per_req']:.1f} us x{s['cpu_per_req_ratio']:.3f} "
                         f"(eBPF {fmt(s['median_bpf_ns_per_req'])} ns, tracer process {s['median_tracer_cpu_us_per_req']:.2f} us "
                         f"= {s['est_cost_pct']:.2f}% of (a))",
                         f"(b) <= {lim:g}%" if c == "b" else "", g))
    hb, hc = ov.get("close/b"), ov.get("close/f")
    if hb and hc:
        tb = (hb["median_bpf_ns_per_req"] or 0) / 1000 + hb["median_tracer_cpu_us_per_req"]
        tc = (hc["median_bpf_ns_per_req"] or 0) / 1000 + hc["median_tracer_cpu_us_per_req"]
        eb, ec = hb["median_bpf_ns_per_req"] or 0, hc["median_bpf_ns_per_req"] or 0
        rows.append(("eBPF per request, close: (b) tp_btf hooks vs (f) classic tracepoints",
                     f"{eb:.0f} ns vs {ec:.0f} ns (x{eb / ec if ec else float('nan'):.2f})",
                     "<= 800 ns (half of 1.6 us)", goal(eb <= 800)))
        rows.append(("tracing CPU/req, close, eBPF + tracer process: (b) vs (f)",
                     f"{tb:.2f} us vs {tc:.2f} us (x{tb / tc if tc else float('nan'):.2f}; the tracer "
                     f"process's share is its /proc rescan every 2 s, not per connection)", "", ""))
    hf = res.get("hook_forms", {}).get("summary")
    if hf:
        n = hf["none"]
        rows.append(("connloop (loopback connect/accept/close): CPU per connection, no agent",
                     f"{n['median_cpu_us_per_conn']:.2f} us ({hf['none']['n']} rounds)", "", ""))
        for form in [x for x in ("tp_btf", "classic", "tp_btf-noidle", "classic-noidle") if x in hf]:
            f = hf[form]
            rows.append((f"connloop, agent {form}: CPU/conn, added over none (paired), eBPF (stats on)",
                         f"{f['median_cpu_us_per_conn']:.2f} us, +{f['median_added_us_per_conn_paired']:.2f} us, "
                         f"eBPF {f['median_bpf_ns_per_conn']:.0f} ns in {f['median_bpf_runs_per_conn']:.1f} runs, "
                         f"programs {f['prog_types']}", "", ""))
        t, c = hf["tp_btf"], hf["classic"]
        if c["median_added_us_per_conn_paired"]:
            rows.append(("connloop: tracing CPU/conn, tp_btf vs classic (all kernel work)",
                         f"{t['median_added_us_per_conn_paired']:.2f} vs {c['median_added_us_per_conn_paired']:.2f} us "
                         f"(x{t['median_added_us_per_conn_paired'] / c['median_added_us_per_conn_paired']:.2f}); "
                         f"eBPF alone {t['median_bpf_ns_per_conn']:.0f} vs {c['median_bpf_ns_per_conn']:.0f} ns "
                         f"(x{t['median_bpf_ns_per_conn'] / c['median_bpf_ns_per_conn']:.2f})",
                         "<= x0.5", goal(t["median_added_us_per_conn_paired"] <= 0.5 * c["median_added_us_per_conn_paired"])))
    for form in ("tp_btf", "classic"):
        if hf and f"{form}-noidle" in hf:
            w, wo = hf[form], hf[f"{form}-noidle"]
            rows.append((f"idle time at a close (issue 16), {form}: eBPF per connection with vs without the read",
                         f"{w['median_bpf_ns_per_conn']:.0f} vs {wo['median_bpf_ns_per_conn']:.0f} ns: "
                         f"{w['median_bpf_ns_per_conn'] - wo['median_bpf_ns_per_conn']:+.0f} ns per close "
                         f"(one ESTABLISHED -> FIN_WAIT1 per connection); CPU/conn "
                         f"{w['median_cpu_us_per_conn']:.2f} vs {wo['median_cpu_us_per_conn']:.2f} us", "", ""))
    df = res.get("drop_flood")
    if df:
        for form in ("tp_btf", "classic"):
            d = df[form]
            rows.append((f"kfree_skb under a UDP closed-port flood ({form}, forced on)",
                         f"{d['median_bpf_ns_per_drop']:.0f} ns eBPF per drop ({d['median_bpf_runs_per_drop']:.2f} runs), "
                         f"{d['median_per_s'] / 1e3:.0f}k drops/s vs {df['none']['median_per_s'] / 1e3:.0f}k without agent",
                         "", ""))
    cap = res.get("capacity")
    if cap:
        v = cap["max_zero_drop_events_per_s"]
        rows.append(("capacity, refused connects: max events/s, zero drops (default ring)", f"{fmt(v)} ev/s",
                     "", ""))
        sf = cap.get("signal_flood")
        if sf:
            sv = sf["max_zero_drop_events_per_s"]
            rows.append(("capacity, signal flood: max events/s, zero drops (default ring)", f"{fmt(sv)} ev/s",
                         ">= 200k", goal(sv is not None and sv >= 200e3)))
            for r in sf["runs"]:
                rows.append((f"  signal flood offered {fmt(r['offered_rate']) if r['offered_rate'] else 'max'}/s",
                             f"{r['events_per_s']:.0f} ev/s, dropped {r['dropped']} of {r['generated']}, "
                             f"agent CPU {r['agent_cpu_pct']:.0f}%", "", ""))
        if cap.get("generator_alone"):
            ga = max(cap["generator_alone"], key=lambda g: g["connects_per_s"])
            wa = max(cap["runs"], key=lambda r: r["connects"] / r["gen_secs"])
            rows.append(("generator: refused connects/s, no agent vs agent",
                         f"{ga['connects_per_s']:.0f} vs {wa['connects'] / wa['gen_secs']:.0f} "
                         f"(x{wa['connects'] / wa['gen_secs'] / ga['connects_per_s']:.2f})", "", ""))
        rows.append(("agent CPU per 10k events/s", f"{fmt(cap['cpu_pct_per_10k_ev_s'], '{:.1f}')}% of a core", "", ""))
        rows.append(("agent throughput per CPU-second", f"{fmt(cap['events_per_agent_cpu_s'])} ev/s", "", ""))
        top = max(cap["runs"], key=lambda r: r["events_per_s"])
        rows.append((f"top speed, default ring ({top['procs']} procs)",
                     f"{top['events_per_s']:.0f} ev/s, dropped {top['dropped']} of {top['generated']}", "", ""))
        if cap.get("ring_8mib"):
            b8 = cap["ring_8mib"]
            rows.append((f"top speed, 8 MiB ring ({b8['procs']} procs)",
                         f"{b8['events_per_s']:.0f} ev/s, dropped {b8['dropped']} of {b8['generated']}, "
                         f"VmHWM {b8['agent_vmhwm_kib'] / 1024:.1f} MiB", "", ""))
        for name in ("overload_paused", "overload_small_ring"):
            o = cap[name]
            rows.append((f"beyond: {name.replace('_', ' ')}",
                         f"gen {o['generated']} = recv {o['received']} + dropped {o['dropped']} "
                         f"({'accounted' if o['accounted'] else 'NOT ACCOUNTED'})", "drops counted",
                         goal(o["accounted"])))
    lat = res.get("latency")
    if lat:
        for k, v in lat.items():
            if isinstance(v, dict):
                rows.append((f"latency {LATENCY_LABELS.get(v['path'], v['path'])} @ {4 * v['connects_per_s']} ev/s",
                             f"p50 {fmt(v['p50_ms'], '{:.2f}')} ms, p99 {fmt(v['p99_ms'], '{:.2f}')} ms (n={v['events']})",
                             "p99 <= 250 ms", goal(v["p99_ms"] is not None and v["p99_ms"] <= 250)))
        if isinstance(lat.get("plugin"), str):
            rows.append(("latency kubectl fivexx trace (port-forward)", lat["plugin"][:120], "p99 <= 250 ms", "MISSED"
                         if lat["plugin"].startswith("FAILED") else ""))
    an = res.get("analysis")
    if an:
        for n, r in an["runs"].items():
            rows.append((f"explain {int(n) / 1e6:g}M facts",
                         f"{r['explain_facts_per_s'] / 1e6:.2f}M facts/s, peak RSS {r['explain_peak_rss_kib'] / 1024:.0f} MiB",
                         ">= 1M facts/s", goal(r["explain_facts_per_s"] >= 1e6)))
            rows.append((f"explain {int(n) / 1e6:g}M facts per CPU-second", f"{r['explain_facts_per_cpu_s'] / 1e6:.2f}M facts/s", "", ""))
            rows.append((f"capture write {int(n) / 1e6:g}M facts",
                         f"{r['write_facts_per_s'] / 1e6:.2f}M facts/s ({r['write_mb_per_s']:.0f} MB/s, {r['bytes_per_fact']:.1f} B/fact)", "", ""))
    if an and an.get("engine_only"):
        e = an["engine_only"]
        rows.append((f"explain engine only, no capture decode ({e['facts'] / 1e6:g}M, generator included)",
                     f"{e['facts_per_s'] / 1e6:.2f}M facts/s ({e['facts_per_cpu_s'] / 1e6:.2f}M per CPU-s)", "", ""))
    fp = res.get("footprint")
    if fp:
        rows.append(("agent start-up (exec -> all hooks attached)",
                     f"median {fmt(fp['startup_s_median'], '{:.3f}')} s, max {fmt(fp['startup_s_max'], '{:.3f}')} s",
                     "<= 1 s", goal(fp["startup_s_max"] is not None and fp["startup_s_max"] <= 1)))
        rows.append(("agent RSS idle (VmRSS / VmHWM)", f"{fmt(fp['idle_vmrss_kib'] / 1024 if fp['idle_vmrss_kib'] else None, '{:.1f}')} / "
                     f"{fmt(fp['idle_vmhwm_kib'] / 1024 if fp['idle_vmhwm_kib'] else None, '{:.1f}')} MiB", "<= 40 MiB",
                     goal(fp["idle_vmhwm_kib"] is not None and fp["idle_vmhwm_kib"] <= 40 * 1024)))
        if fp.get("load_vmhwm_kib"):
            rows.append((f"agent RSS under load ({fmt(fp['load_events_per_s'])} ev/s) VmRSS / VmHWM",
                         f"{fp['load_vmrss_kib'] / 1024:.1f} / {fp['load_vmhwm_kib'] / 1024:.1f} MiB", "<= 40 MiB",
                         goal(fp["load_vmhwm_kib"] <= 40 * 1024)))
        if fp.get("plugin_vmhwm_kib"):
            rows.append((f"plugin RSS during a trace ({fmt(fp['plugin_load_events_per_s'])} ev/s) VmRSS steady / VmHWM",
                         f"{fmt(fp['plugin_steady_vmrss_kib'] / 1024 if fp['plugin_steady_vmrss_kib'] else None, '{:.1f}')} / "
                         f"{fp['plugin_vmhwm_kib'] / 1024:.1f} MiB", "", ""))
        else:
            rows.append(("plugin RSS during a trace", fp.get("plugin_note", "not measured"), "", ""))
    fo = res.get("fanout")
    if fo:
        rows.append((f"fan-out: trace -n {fo['namespace']}, {fo['nodes']} nodes, {fo['pods']} pods started mid-session",
                     f"{fo.get('port_forwards_total')} port-forwards ({fo.get('port_forwards_agent_pods')} agent pods, "
                     f"max {fo.get('port_forwards_max_per_agent_pod')} each; {fo['nodes_with_pods']} nodes ran pods), "
                     f"peak RSS {fmt((fo.get('plugin_peak_rss_kib') or 0) / 1024, '{:.1f}')} MiB, "
                     f"CPU {fo.get('plugin_cpu_s')} s in {fo.get('plugin_wall_s')} s, "
                     f"start to first event {fo.get('start_to_first_event_s')} s, "
                     f"last new pod to its event {fo.get('last_pod_to_event_s')} s",
                     "1 stream per node",
                     goal(fo.get("port_forwards_total") == fo["nodes_with_pods"])))
    w = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    lines = [f"{'measure':<{w[0]}} | {'result':<{w[1]}} | {'goal':<{w[2]}} | verdict",
             "-" * (w[0] + w[1] + w[2] + 16)]
    lines += [f"{r[0]:<{w[0]}} | {r[1]:<{w[1]}} | {r[2]:<{w[2]}} | {r[3]}" for r in rows]
    return "\n".join(lines)


PARTS = ["overhead", "forms", "drops", "capacity", "latency", "analysis", "footprint", "fanout"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(TARGET, "bench", "results.json"),
                    help="raw samples and the table (JSON); default target/bench/results.json")
    ap.add_argument("--skip", action="append", default=[], choices=PARTS)
    ap.add_argument("--only", action="append", default=[], choices=PARTS,
                    help="run only these parts (e.g. --only fanout)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--wrk-secs", type=int, default=5)
    ap.add_argument("--form-secs", type=float, default=3, help="connloop seconds per condition (forms part)")
    ap.add_argument("--drop-secs", type=float, default=2, help="UDP flood seconds per run (drops part)")
    ap.add_argument("--drop-rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conditions", default="abcdef")
    ap.add_argument("--cap-procs", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    ap.add_argument("--cap-secs", type=int, default=5)
    ap.add_argument("--sig-rates", type=lambda s: [int(x) for x in s.split(",")],
                    default=[100000, 200000, 300000, 0],
                    help="offered signal rates for the signal-flood capacity runs (0: flat out)")
    ap.add_argument("--lat-rates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 2000])
    ap.add_argument("--lat-secs", type=int, default=5)
    ap.add_argument("--facts", type=lambda s: [int(x) for x in s.split(",")], default=[1000000, 10000000])
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--fanout-nodes", type=int, default=200)
    ap.add_argument("--fanout-pods", type=int, default=300)
    ap.add_argument("--fanout-interval-ms", type=int, default=10,
                    help="time between two pods of the fan-out rollout")
    ap.add_argument("--fanout-secs", type=int, default=120, help="the fan-out trace's --duration (an upper bound)")
    ap.add_argument("--fanout-settle-secs", type=float, default=3)
    args = ap.parse_args()
    if args.only:
        args.skip = [p for p in PARTS if p not in args.only]
    if os.geteuid() != 0:
        sys.exit("bench: needs root (eBPF, network namespaces)")
    # The lab is needed only by the parts that run it (forms, drops,
    # capacity and analysis do not), so that `--only forms` runs on an
    # agent alone.
    lab_parts = {"overhead", "latency", "footprint", "fanout"}
    for exe in (AGENT, LAB) if lab_parts - set(args.skip) else (AGENT,):
        if not os.path.exists(exe):
            sys.exit(f"bench: {exe} missing; run `make bench` (it builds first)")
    os.makedirs(WORK, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = {"machine": machine(), "started_unix": time.time(), "args": vars(args)}
    stats_path = "/proc/sys/kernel/bpf_stats_enabled"
    stats_before = open(stats_path).read().strip()
    with open(stats_path, "w") as f:
        f.write("1")  # eBPF run time per program, for the overhead part; restored below
    t_start = time.monotonic()
    lab = None
    try:
        gen = compile_generator()
        if "overhead" not in args.skip:
            lab = Lab()
            lab.start()
            res["lab"] = {"ingress": f"{INGRESS}:80", "ingress_cgroup": lab.ingress_cgroup}
            overhead(res, args, lab)
            lab.stop()
            lab = None
        if "forms" not in args.skip:
            hook_forms(res, args, compile_generator("connloop"))
        if "drops" not in args.skip:
            drop_flood(res, args, compile_generator("udpflood"))
        if "capacity" not in args.skip:
            capacity(res, args, gen)
        if "latency" not in args.skip:
            latency(res, args, gen)
        if "footprint" not in args.skip:
            footprint(res, args)
        if "analysis" not in args.skip:
            analysis(res, args)
        if "fanout" not in args.skip:
            fanout(res, args)
    finally:
        if lab:
            lab.stop()
        cleanup()
        with open(stats_path, "w") as f:
            f.write(stats_before)
    res["duration_s"] = time.monotonic() - t_start
    res["table"] = table(res)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    m = res["machine"]
    print(f"\nkubectl-fivexx bench: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
          f"load average at start {' '.join(m['loadavg_at_start'])}, {res['duration_s']:.0f} s")
    print(res["table"])
    print(f"\nraw samples: {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
