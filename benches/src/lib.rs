//! Benchmarks of Ponte live in `benches/`; run them with `cargo bench -p ponte-benches`.
//! docs/BENCHMARKS.md records the figures and how they were measured.
