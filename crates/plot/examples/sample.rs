//! Renders the built-in sample timeline.
//!
//! `cargo run -p jettison-plot --example sample -- OUT.png [OUT.svg] [WIDTH HEIGHT]`

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let png = args
        .first()
        .map_or("/tmp/jettison-plot-sample.png", String::as_str);
    let svg = args.get(1).map(String::as_str);
    let width = args.get(2).map_or(Ok(1400), |s| s.parse())?;
    let height = args.get(3).map_or(Ok(900), |s| s.parse())?;
    let input = jettison_plot::sample_input();
    jettison_plot::render_png(&input, Path::new(png), width, height)?;
    println!("wrote {png}");
    if let Some(svg) = svg {
        jettison_plot::render_svg(&input, Path::new(svg), width, height)?;
        println!("wrote {svg}");
    }
    Ok(())
}
