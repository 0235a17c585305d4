//! The demo's timeline figure from the desktop's power record.

use std::path::Path;

use jettison_agent::power::PowerRecord;
use jettison_plot::{from_recorded, Recorded};

/// Draws the figure (PNG) of `rec` up to `until` ms.
pub fn draw(rec: &PowerRecord, until: u64, path: &Path) -> anyhow::Result<()> {
    let fetches: Vec<(u64, u64)> = rec.served.iter().map(|f| (f.t_ms, f.pages)).collect();
    let input = from_recorded(
        "jettison demo: the desktop sleeps while its VM runs on the server",
        &Recorded {
            timeline: &rec.timeline,
            profile: &rec.profile,
            fetches: &fetches,
            from_ms: 0,
            until_ms: until,
        },
    );
    jettison_plot::render_png(&input, path, 1400, 900)?;
    Ok(())
}
