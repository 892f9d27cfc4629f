//! Windows: desktop duplication where the system offers it (`dxgi.rs`), GDI where it does not
//! (`gdi.rs`: remote desktop sessions, old drivers, Wine — where the tests run).

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use super::dxgi::DxgiCapture;
use super::gdi::GdiCapture;

/// Said once per process: a session reopens its capture after each desktop switch.
static SAID_GDI: AtomicBool = AtomicBool::new(false);

pub enum WindowsCapture {
    Duplication(DxgiCapture),
    Gdi(GdiCapture),
}

impl WindowsCapture {
    /// `display` names an X display on Linux; Windows has one desktop per session.
    pub fn open(_display: Option<&str>) -> Result<WindowsCapture> {
        match DxgiCapture::open() {
            Ok(d) => Ok(WindowsCapture::Duplication(d)),
            Err(e) => {
                if !SAID_GDI.swap(true, Ordering::Relaxed) {
                    eprintln!("udc-agent: desktop duplication is not available ({e:#}): capturing through GDI");
                }
                Ok(WindowsCapture::Gdi(GdiCapture::open()?))
            }
        }
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
