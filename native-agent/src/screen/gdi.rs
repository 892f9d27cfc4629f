//! Windows: the primary monitor through GDI (xcap's monitor capture), which works wherever
//! Windows does — and under Wine, where the tests run it: the fallback when desktop duplication
//! (`dxgi.rs`) is not available.

use anyhow::{anyhow, bail, Result};
use xcap::Monitor;

pub struct GdiCapture {
    monitor: Monitor,
    width: usize,
    height: usize,
    /// The last frame as BGRX, the layout the encoder takes (GDI hands out RGBA).
    bgrx: Vec<u8>,
}

impl GdiCapture {
    /// The primary monitor (the first one when none says it is).
    pub fn open() -> Result<GdiCapture> {
        let monitors = Monitor::all().map_err(|e| anyhow!("no screen to capture: {e}"))?;
        let primary = monitors
            .iter()
            .position(|m| m.is_primary().unwrap_or(false))
            .unwrap_or(0);
        let monitor = monitors
            .into_iter()
            .nth(primary)
            .ok_or_else(|| anyhow!("no screen to capture"))?;
        let side = |v: Result<u32, xcap::XCapError>| -> Result<usize> {
            Ok(v.map_err(|e| anyhow!("the screen's size: {e}"))? as usize)
        };
        let (width, height) = (side(monitor.width())?, side(monitor.height())?);
        Ok(GdiCapture {
            monitor,
            width,
            height,
            bgrx: Vec::with_capacity(width * height * 4),
        })
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Captures the screen and hands `use_pixels` its BGRX pixels.
    pub fn capture_with<R>(&mut self, use_pixels: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let image = self
            .monitor
            .capture_image()
            .map_err(|e| anyhow!("the screen was not captured: {e}"))?;
        if (image.width() as usize, image.height() as usize) != (self.width, self.height) {
            // The encoder was made for the old size: the session ends rather than send garbage.
            bail!(
                "the screen changed size to {}x{} (was {}x{})",
                image.width(),
                image.height(),
                self.width,
                self.height
            );
        }
        self.bgrx.clear();
        self.bgrx.extend(
            image
                .as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[2], p[1], p[0], 0xff]),
        );
        Ok(use_pixels(&self.bgrx))
    }
}
