//! Simulates the default synthetic fleet (100 desktops x 30 days) with the
//! default prefetch policies and both resumes, prints the console table and
//! the run times: `cargo run --release -p jettison-sim --example simulate
//! [DESKTOPS DAYS]`.

use jettison_sim::{
    generate, simulate, summary, PolicySpec, PrefetchConfig, SelectiveResume, SimConfig,
    SynthParams,
};

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let params = SynthParams {
        desktops: args.first().copied().unwrap_or(100),
        days: args.get(1).copied().unwrap_or(30),
        ..SynthParams::default()
    };
    let config = SimConfig {
        policies: vec![
            PolicySpec::FixedTimeout(60_000),
            PolicySpec::BreakEvenTimeout,
            PolicySpec::BreakEven,
            PolicySpec::SkiRental(7),
        ],
        prefetch: vec![
            PrefetchConfig::None,
            PrefetchConfig::Neighbourhood { pages: 64 },
            PrefetchConfig::WorkingSet {
                max_pages: 8192,
                periods: 4,
            },
            PrefetchConfig::Combined {
                pages: 64,
                max_pages: 8192,
                periods: 4,
            },
        ],
        selective_resume: SelectiveResume::Both,
        ..SimConfig::default()
    };
    let t0 = std::time::Instant::now();
    let trace = generate(&params);
    let t1 = t0.elapsed();
    let report = simulate(&trace, &config);
    let t2 = t0.elapsed();
    print!("{}", summary::console(&report, true));
    eprintln!("generate {t1:?}, total {t2:?}");
}
