//! A page in a real headless Chromium (Debian's `chromium`): its screenshot
//! and the DOM the browser built of it. Each run has its own profile and
//! home in a temporary directory, removed afterwards; the browser runs in
//! a process group of its own, killed (with its helpers) when done or
//! after a deadline.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The browser window (and screenshot) size, pixels.
pub const WINDOW: (u32, u32) = (1280, 1600);

/// How long one browser run may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(180);

/// The browser's process group, killed when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Where `chromium` is, or why not.
pub fn locate() -> anyhow::Result<PathBuf> {
    which::which("chromium").context(
        "chromium not found: install the Debian package `chromium` (`cargo xtask setup` as root)",
    )
}

/// Runs headless Chromium on `url` with `mode` (`--screenshot=…` or
/// `--dump-dom`); gives its standard output. Its messages go to `log`.
async fn run(url: &str, mode: &str, log: &Path) -> anyhow::Result<String> {
    let bin = locate()?;
    let home = tempfile::Builder::new()
        .prefix("jettison-chromium-")
        .tempdir()?;
    let out_path = home.path().join("stdout");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        // The sandbox needs user namespaces Chromium will not use as root.
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
    ])
    .arg(format!(
        "--user-data-dir={}",
        home.path().join("profile").display()
    ))
    .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
    .arg(mode)
    .arg(url)
    .env("HOME", home.path())
    .env_remove("DBUS_SESSION_BUS_ADDRESS")
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&out_path)?)
    .stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?,
    )
    .process_group(0);
    let mut group = Group(cmd.spawn().context("starting chromium")?);
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = group.0.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            bail!(
                "chromium {mode} {url} did not finish within {DEADLINE:?}; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(group); // its helpers too
    if !status.success() {
        bail!(
            "chromium {mode} {url} failed ({status}); see {}",
            log.display()
        );
    }
    Ok(std::fs::read_to_string(&out_path)?)
}

/// A screenshot of `url` (the window, [`WINDOW`]) into `png`.
pub async fn screenshot(url: &str, png: &Path, log: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(png);
    run(url, &format!("--screenshot={}", png.display()), log).await?;
    anyhow::ensure!(
        png.is_file(),
        "chromium wrote no screenshot at {}",
        png.display()
    );
    Ok(())
}

/// The DOM Chromium built of `url`, serialized.
pub async fn dom(url: &str, log: &Path) -> anyhow::Result<String> {
    let dom = run(url, "--dump-dom", log).await?;
    anyhow::ensure!(
        !dom.trim().is_empty(),
        "chromium dumped an empty DOM of {url}"
    );
    Ok(dom)
}

/// What a screenshot holds: its size and how many colours it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Picture {
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Distinct colours (a blank page has one).
    pub colours: usize,
}

/// Reads a PNG's size and counts its colours.
pub fn picture(png: &Path) -> anyhow::Result<Picture> {
    let file = std::fs::File::open(png).with_context(|| format!("opening {}", png.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    // Whatever the encoder chose (palette, 16 bits), 8-bit samples.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf)?;
    let bytes = &buf[..frame.buffer_size()];
    let px = frame.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = bytes.chunks_exact(px).collect();
    Ok(Picture {
        width: frame.width,
        height: frame.height,
        colours: colours.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend(pixel(x, y));
            }
        }
        writer.write_image_data(&data).unwrap();
    }

    #[test]
    fn a_picture_gives_its_size_and_colours() {
        let dir = tempfile::tempdir().unwrap();
        let blank = dir.path().join("blank.png");
        write_png(&blank, 8, 4, |_, _| [255, 255, 255]);
        assert_eq!(
            picture(&blank).unwrap(),
            Picture {
                width: 8,
                height: 4,
                colours: 1
            }
        );
        let drawn = dir.path().join("drawn.png");
        write_png(&drawn, 8, 4, |x, y| [x as u8, y as u8, 0]);
        assert_eq!(picture(&drawn).unwrap().colours, 32);
        std::fs::write(dir.path().join("not.png"), b"GIF89a").unwrap();
        assert!(picture(&dir.path().join("not.png")).is_err());
    }
}
