//! Runs one pipeline case a given number of times and exits: a workload for callgrind, whose
//! instruction counts do not depend on what else the machine is doing.
//!
//! `weft-bench-count <case> <batches>`; `scripts/bench-instructions.sh` runs it under callgrind,
//! counting only inside `Pipeline::process`, and divides by the packets processed (printed at
//! the end: the case's own check runs every batch once more).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(n)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: weft-bench-count <case> <batches>; cases:");
        for c in weft_bench::cases::all_cases() {
            eprintln!("  {}", c.name);
        }
        return ExitCode::FAILURE;
    };
    let Some(mut c) = weft_bench::cases::cases_where(&|n| n == name)
        .into_iter()
        .next()
    else {
        eprintln!("no case named {name}");
        return ExitCode::FAILURE;
    };
    c.check();
    for _ in 0..n {
        c.run_once();
    }
    // `check` ran every batch once more: the total, for scripts that count per packet.
    println!("batches processed: {}", n + c.batch_count());
    ExitCode::SUCCESS
}
