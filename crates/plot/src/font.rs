//! Embedded font registration.
//!
//! plotters is built with its `ab_glyph` text renderer instead of the
//! default `ttf` one, so it never asks fontconfig/font-kit for system fonts.
//! ab_glyph only knows the fonts registered with it: we register DejaVu Sans
//! (regular and bold), bundled by the `dejavu` crate, under the family name
//! `sans-serif`, which is also the family written into SVG `<text>`
//! elements, so SVG viewers use their own sans-serif font.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use crate::PlotError;

/// Family name every text in the figure uses.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded fonts once per process; later calls are free.
pub fn ensure_registered() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}
