//! Renders the sample timeline to real PNG and SVG files.

use std::path::Path;

use jettison_plot::{render_png, render_svg, sample_input, PlotError};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

#[test]
fn renders_png_and_svg_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample_input();

    let png = dir.path().join("timeline.png");
    render_png(&input, &png, 1400, 900).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(bytes[..8], PNG_SIGNATURE);
    // IHDR holds the size, big-endian, right after its length and tag.
    assert_eq!(&bytes[16..24], &[0, 0, 0x05, 0x78, 0, 0, 0x03, 0x84]);
    assert!(bytes.len() > 20_000, "PNG only {} bytes", bytes.len());

    let svg = dir.path().join("timeline.svg");
    render_svg(&input, &svg, 1400, 900).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.len() > 5_000, "SVG only {} bytes", text.len());
    assert!(text.contains(&input.title));
    assert!(text.contains("font-family=\"sans-serif\""));
}

/// Text is drawn with the embedded font: the title band of the PNG must
/// contain dark pixels (a fontless build would leave it blank).
#[test]
fn png_title_has_ink() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = sample_input();
    input.title = "TITLE TEXT".into();
    let with = dir.path().join("with.png");
    render_png(&input, &with, 800, 500).unwrap();
    input.title = String::new();
    let without = dir.path().join("without.png");
    render_png(&input, &without, 800, 500).unwrap();
    // Same figure but for the title: the files must differ.
    assert_ne!(
        std::fs::read(&with).unwrap(),
        std::fs::read(&without).unwrap()
    );
}

#[test]
fn invalid_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = sample_input();
    input.desktop_states[0] = (10.0, 5.0, input.desktop_states[0].2);
    let png = dir.path().join("bad.png");
    let err = render_png(&input, &png, 800, 500).unwrap_err();
    assert!(matches!(err, PlotError::ReversedSpan { .. }), "{err}");
    assert!(!png.exists());
}

#[test]
fn unwritable_path_is_an_error() {
    let err = render_svg(
        &sample_input(),
        Path::new("/nonexistent/dir/x.svg"),
        800,
        500,
    );
    assert!(matches!(err, Err(PlotError::Draw(_))));
    let err = render_png(
        &sample_input(),
        Path::new("/nonexistent/dir/x.png"),
        800,
        500,
    );
    assert!(matches!(err, Err(PlotError::Draw(_))));
}
