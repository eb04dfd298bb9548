#!/usr/bin/env python3
"""Finds failed store forwards on a pipeline case's path, from a trace of its memory accesses.

A load that reads bytes a recent store wrote, but not all from that one store (a 4-byte load
at offset 1 of a slot just written 2 bytes wide, say), cannot take its data from the store
buffer: it waits until the stores reach the cache, ~15 cycles on recent x86 cores. perf has
no hardware counters on our guests, so this looks for the pattern in the program's own
accesses: it runs the program under valgrind's lackey, which prints every instruction's
address and every load and store (address and size), and replays them through a model of
the store buffer. A load is reported when the youngest store of the last WINDOW instructions
that wrote any of its bytes does not hold all of them; across calls and through any pointer.

The model is simple: a store counts as in the buffer for WINDOW instructions, whatever the
pipeline does, so a report is a place to look at (with the store and load named), not a
measured stall.

Usage (from the repository root):

    scripts/store-forward-scan.py l3/route4/64B/1routes [batches]
        after `cargo build --release -p weft-bench --bin weft-bench-count`; reports per packet
        (`WEFT_BENCH_COUNT=path` scans another build of it, one kept from an older commit);
    scripts/store-forward-scan.py --cmd PROGRAM [ARGS...]
        any program, e.g. the stateful bench in test mode
        (`target/release/deps/stateful-<hash> snat_10k`); reports counts.

Everything the program runs is traced, its set-up included: the rows that matter are those
run about once a packet. Needs valgrind and binutils (addr2line, objdump). A case with a
large table (100 000 routes) takes minutes to set up under lackey.
"""

import os
import re
import subprocess
import sys
import tempfile

BIN = os.environ.get("WEFT_BENCH_COUNT", "target/release/weft-bench-count")
# Instructions a store is taken to stay in the store buffer.
WINDOW = 100
# Where valgrind maps a position-independent main program on x86-64.
PIE_BASE = 0x108000
# The recent-store map is pruned this often (instructions) of stores that left the buffer.
FLUSH = 1 << 16


def trace(cmd):
    """Runs `cmd` under lackey; returns {(load pc, store pc): [count, distance]} and the
    number of instructions traced."""
    r, w = os.pipe()
    # The program's output goes to a file: a pipe nobody reads until the trace ends could
    # fill up and stop the program.
    out_file = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-fd={w}", *cmd],
        pass_fds=(w,), stdout=out_file, stderr=subprocess.DEVNULL, text=True,
    )
    os.close(w)
    # Byte address -> (store sequence number, instruction count, start, size, pc).
    recent = {}
    hits = {}
    icount = seq = 0
    pc = 0
    with os.fdopen(r, "r", buffering=1 << 20) as log:
        for line in log:
            kind = line[1] if line[0] == " " else line[0]
            if kind == "I":
                icount += 1
                pc = line
                if icount % FLUSH == 0:
                    recent = {b: e for b, e in recent.items() if icount - e[1] <= WINDOW}
                continue
            if kind not in "LSM" or line[0] != " ":
                continue
            a, n = line[3:].split(",")
            a, n = int(a, 16), int(n)
            if kind in "LM":
                youngest = None
                for b in range(a, a + n):
                    e = recent.get(b)
                    # A store of the same instruction (lackey may list it first) is not
                    # one the load waits for.
                    fresh = e and 0 < icount - e[1] <= WINDOW
                    if fresh and (not youngest or e[0] > youngest[0]):
                        youngest = e
                if youngest:
                    _, at, start, size, spc = youngest
                    if not (start <= a and a + n <= start + size):
                        lpc = int(pc[3:].split(",")[0], 16)
                        h = hits.setdefault((lpc, spc), [0, 0, n, size])
                        h[0] += 1
                        h[1] = icount - at
            if kind in "SM":
                seq += 1
                spc = int(pc[3:].split(",")[0], 16)
                e = (seq, icount, a, n, spc)
                for b in range(a, a + n):
                    recent[b] = e
    if proc.wait() != 0:
        sys.exit(f"{cmd[0]} failed under valgrind")
    out_file.seek(0)
    out = out_file.read()
    return hits, icount, out


def describe(binary, addrs):
    """Function and instruction at each address (valgrind's, so offset by PIE_BASE)."""
    with open(binary, "rb") as f:
        pie = f.read(18)[16] == 3  # e_type ET_DYN
    base = PIE_BASE if pie else 0
    names = {}
    for a in addrs:
        off = a - base
        fn = subprocess.run(
            ["addr2line", "-f", "-C", "-e", binary, f"{off:#x}"],
            capture_output=True, text=True,
        ).stdout.splitlines()
        dis = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", "-C", f"--start-address={off:#x}",
             f"--stop-address={off + 16:#x}", binary],
            capture_output=True, text=True,
        ).stdout
        insn = next(
            (m.group(1).strip() for m in re.finditer(rf"^\s*{off:x}:\s*(.*)$", dis, re.M)),
            "?",
        )
        names[a] = (f"{off:x}", (fn[0] if fn else "?")[:90], insn.split("#")[0].strip())
    return names


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    if args[0] == "--cmd":
        cmd, per = args[1:], None
    else:
        batches = args[1] if len(args) > 1 else "50"
        cmd, per = [BIN, args[0], batches], "packet"
    hits, icount, out = trace(cmd)
    packets = None
    if per:
        m = re.search(r"^batches processed: (\d+)$", out, re.M)
        if not m:
            sys.exit("the bench did not say how many batches it processed")
        packets = int(m.group(1)) * 64
    rows = sorted(hits.items(), key=lambda kv: -kv[1][0])
    if packets:
        rows = [r for r in rows if r[1][0] / packets >= 0.01]
    else:
        rows = rows[:30]
    names = describe(cmd[0], {a for (l, s), _ in rows for a in (l, s)})
    for (l, s), (count, dist, lsize, ssize) in rows:
        how = f"{count / packets:6.2f}/packet" if packets else f"{count:8d}"
        lo, lfn, li = names[l]
        so, sfn, si = names[s]
        print(f"{how}  load {lo} `{li}` ({lsize} bytes) in {lfn}")
        print(f"{' ' * len(how)}  over store {so} `{si}` ({ssize} bytes) in {sfn}, "
              f"{dist} instructions before")
    print(f"{len(rows)} suspect load(s) in {icount} instructions traced")


if __name__ == "__main__":
    main()
