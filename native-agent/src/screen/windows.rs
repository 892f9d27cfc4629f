//! Windows: desktop duplication where the system offers it (`dxgi.rs`), GDI where it does not
//! (`gdi.rs`: remote desktop sessions, old drivers, Wine — where the tests run).

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Result};

use super::dxgi::DxgiCapture;
use super::gdi::GdiCapture;
use super::{Area, Choice, Screen};

/// Said once per process: a session reopens its capture after each desktop switch.
static SAID_GDI: AtomicBool = AtomicBool::new(false);

pub enum WindowsCapture {
    Duplication(DxgiCapture),
    Gdi(GdiCapture),
}

/// This device's screens.
pub fn screens(_display: Option<&str>) -> Result<Vec<Screen>> {
    super::gdi::screens()
}

/// What a session with `choice` captures: the part of the desktop and its capture. One screen
/// is duplicated where the system can; several together go through GDI.
pub fn open_choice(choice: &Choice) -> Result<(Area, WindowsCapture)> {
    let screens = screens(None)?;
    let area = choice
        .area(&screens)
        .ok_or_else(|| anyhow!("no screen {choice:?} here"))?;
    if screens.iter().any(|s| s.area == area) {
        match DxgiCapture::open(area) {
            Ok(d) => return Ok((area, WindowsCapture::Duplication(d))),
            Err(e) => {
                if !SAID_GDI.swap(true, Ordering::Relaxed) {
                    eprintln!("udc-agent: desktop duplication is not available ({e:#}): capturing through GDI");
                }
            }
        }
    }
    Ok((area, WindowsCapture::Gdi(GdiCapture::open(area)?)))
}

impl WindowsCapture {
    /// The primary screen. `display` names an X display on Linux; Windows has one desktop per
    /// session.
    pub fn open(_display: Option<&str>) -> Result<WindowsCapture> {
        open_choice(&Choice::Primary).map(|(_, capture)| capture)
    }

    /// How the screen is captured, for the log.
    pub fn method(&self) -> &'static str {
        match self {
            WindowsCapture::Duplication(_) => "dxgi",
            WindowsCapture::Gdi(_) => "gdi",
        }
    }

    pub fn size(&self) -> (usize, usize) {
        match self {
            WindowsCapture::Duplication(d) => d.size(),
            WindowsCapture::Gdi(g) => g.size(),
        }
    }

    /// Captures the screen and hands `use_pixels` its BGRX pixels.
    pub fn capture_with<R>(&mut self, use_pixels: impl FnOnce(&[u8]) -> R) -> Result<R> {
        match self {
            WindowsCapture::Duplication(d) => d.capture_with(use_pixels),
            WindowsCapture::Gdi(g) => g.capture_with(use_pixels),
        }
    }
}
