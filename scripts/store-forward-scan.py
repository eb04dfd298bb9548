#!/usr/bin/env python3
"""Flags likely failed store forwards on a pipeline case's hot path.

A load that reads bytes an earlier store wrote, but not all from that one store (a 4-byte
load at offset 1 of a slot just written 2 bytes wide, say), cannot take its data from the
store buffer: it waits until the stores reach the cache, ~15 cycles on recent x86 cores.
perf has no hardware counters on our guests, so this looks for the pattern in the code
instead.

It runs one case of `weft-bench-count` under callgrind (counting inside `Pipeline::process`,
with per-instruction costs), disassembles the instructions that ran, and reports every load
from the stack (`(%rsp)`-based) that overlaps the last earlier stack store to the same bytes
without being contained in it, with how many times a packet it ran. A heuristic: it reads the
code in address order, not in execution order, so a report is a place to look at, and a
clean result does not prove there is no stall.

Usage (from the repository root, after
`cargo build --release -p weft-bench --bin weft-bench-count`):

    scripts/store-forward-scan.py l3/route4/64B/1routes [batches]

`WEFT_BENCH_COUNT=path` scans another build of the binary (one kept from an older commit).

Needs valgrind and binutils (objdump).
"""

import collections
import os
import re
import subprocess
import sys
import tempfile

BIN = os.environ.get("WEFT_BENCH_COUNT", "target/release/weft-bench-count")
REG_BYTES = {}
for names, size in (
    ("rax rbx rcx rdx rsi rdi rbp r8 r9 r10 r11 r12 r13 r14 r15", 8),
    ("eax ebx ecx edx esi edi ebp r8d r9d r10d r11d r12d r13d r14d r15d", 4),
    ("ax bx cx dx si di bp r8w r9w r10w r11w r12w r13w r14w r15w", 2),
    ("al bl cl dl sil dil bpl ah bh ch dh r8b r9b r10b r11b r12b r13b r14b r15b", 1),
):
    for n in names.split():
        REG_BYTES[n] = size
for i in range(16):
    REG_BYTES[f"xmm{i}"] = 16
    REG_BYTES[f"ymm{i}"] = 32
STACK = re.compile(r"(-?0x[0-9a-f]+)?\(%rsp\)")
LINE = re.compile(r"\s*([0-9a-f]+):\s*(\S+)\s*(.*)")


def access_size(mnemonic, operands):
    m = re.match(r"mov[sz]([bw])", mnemonic)
    if m:
        return {"b": 1, "w": 2}[m.group(1)]
    for o in operands:
        o = o.strip()
        if o.startswith("%") and o[1:] in REG_BYTES:
            return REG_BYTES[o[1:]]
    suffix = {"b": 1, "w": 2, "l": 4, "q": 8}
    return suffix.get(mnemonic[-1]) if len(mnemonic) > 3 else None


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    case = sys.argv[1]
    batches = sys.argv[2] if len(sys.argv) > 2 else "300"
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        run = subprocess.run(
            [
                "valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-pos=no",
                "--compress-strings=no", f"--callgrind-out-file={out.name}",
                "--toggle-collect=weft_dataplane::pipeline::Pipeline::process",
                BIN, case, batches,
            ],
            capture_output=True, text=True, check=True,
        )
        m = re.search(r"^batches processed: (\d+)$", run.stdout + run.stderr, re.M)
        if not m:
            sys.exit("the bench did not say how many batches it processed")
        packets = int(m.group(1)) * 64
        cost = collections.Counter()
        in_call = False
        for line in open(out.name):
            if line.startswith("calls="):
                in_call = True
            elif line.startswith("0x"):
                if in_call:
                    in_call = False
                    continue
                addr, _, ir = line.split()[:3]
                cost[int(addr, 16)] += int(ir)
    hot = sorted(a for a in cost if cost[a] / packets >= 0.01)
    if not hot:
        sys.exit("nothing ran inside Pipeline::process")
    dis = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C",
         f"--start-address={hot[0]:#x}", f"--stop-address={hot[-1] + 16:#x}", BIN],
        capture_output=True, text=True, check=True,
    ).stdout
    stores = []
    found = 0
    for line in dis.splitlines():
        m = LINE.match(line)
        if not m or int(m.group(1), 16) not in cost:
            continue
        addr, mnemonic = int(m.group(1), 16), m.group(2)
        text = m.group(3).split("#")[0].split("<")[0].strip()
        operands = re.split(r",(?![^(]*\))", text)
        stack = [(i, STACK.search(o)) for i, o in enumerate(operands) if STACK.search(o)]
        if not stack or mnemonic.startswith(("lea", "nop", "call", "push", "pop")):
            continue
        i, mem = stack[0]
        off, size = int(mem.group(1) or "0", 16), access_size(mnemonic, operands)
        if not size:
            continue
        is_store = (
            mnemonic.startswith("mov")
            and not mnemonic.startswith(("movz", "movs"))
            and i == len(operands) - 1
        )
        if is_store:
            stores = (stores + [(addr, off, size)])[-64:]
            continue
        for s_addr, s_off, s_size in reversed(stores):
            if s_off < off + size and off < s_off + s_size:
                if not (s_off <= off and off + size <= s_off + s_size):
                    found += 1
                    print(
                        f"{cost[addr] / packets:6.2f}/packet  {addr:x} {mnemonic} {text}: "
                        f"{size} bytes at {off:#x}, over the {s_size}-byte store at "
                        f"{s_off:#x} ({s_addr:x})"
                    )
                break
    print(f"{found} suspect load(s) in {case}")


if __name__ == "__main__":
    main()
