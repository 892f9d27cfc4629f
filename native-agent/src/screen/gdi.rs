//! Windows: the screens through GDI (xcap's monitor capture), which works wherever Windows does
//! — and under Wine, where the tests run it: the fallback when desktop duplication (`dxgi.rs`)
//! is not available, and what shows several screens as one picture.

use anyhow::{anyhow, bail, Result};
use xcap::Monitor;

use super::{Area, Screen};

/// The screens, as xcap lists them (their desktop coordinates are in real pixels: the process
/// is DPI aware while serving).
/// Two alike monitors have the same name: the second is named "NAME #2", and so on, so each
/// can be chosen.
pub fn screens() -> Result<Vec<Screen>> {
    let err = |e: xcap::XCapError| anyhow!("the screens: {e}");
    let mut screens: Vec<Screen> = Monitor::all()
        .map_err(err)?
        .iter()
        .map(|m| {
            Ok(Screen {
                id: m.name().map_err(err)?,
                area: Area {
                    x: m.x().map_err(err)?,
                    y: m.y().map_err(err)?,
                    width: m.width().map_err(err)?,
                    height: m.height().map_err(err)?,
                },
                primary: m.is_primary().unwrap_or(false),
            })
        })
        .collect::<Result<_>>()?;
    let names: Vec<String> = screens.iter().map(|s| s.id.clone()).collect();
    for (i, screen) in screens.iter_mut().enumerate() {
        let before = names[..i].iter().filter(|n| **n == names[i]).count();
        if before > 0 {
            screen.id = format!("{} #{}", names[i], before + 1);
        }
    }
    Ok(screens)
}

pub struct GdiCapture {
    area: Area,
    /// The screens the area covers, each with where it is on the desktop.
    parts: Vec<(Monitor, Area)>,
    /// The last frame as BGRX, the layout the encoder takes (GDI hands out RGBA).
    bgrx: Vec<u8>,
}

impl GdiCapture {
    /// `area` of the desktop: one screen, or several side by side.
    pub fn open(area: Area) -> Result<GdiCapture> {
        let monitors = Monitor::all().map_err(|e| anyhow!("no screen to capture: {e}"))?;
        let parts: Vec<(Monitor, Area)> = monitors
            .into_iter()
            .zip(screens()?)
            .map(|(m, s)| (m, s.area))
            .filter(|(_, a)| {
                a.x < area.x + area.width as i32
                    && area.x < a.x + a.width as i32
                    && a.y < area.y + area.height as i32
                    && area.y < a.y + a.height as i32
            })
            .collect();
        if parts.is_empty() {
            bail!("no screen within {area:?}");
        }
        Ok(GdiCapture {
            area,
            parts,
            bgrx: vec![0; area.width as usize * area.height as usize * 4],
        })
    }

    pub fn size(&self) -> (usize, usize) {
        (self.area.width as usize, self.area.height as usize)
    }

    /// Captures the area and hands `use_pixels` its BGRX pixels (black where no screen is).
    pub fn capture_with<R>(&mut self, use_pixels: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let width = self.area.width as usize;
        for (monitor, at) in &self.parts {
            let image = monitor
                .capture_image()
                .map_err(|e| anyhow!("the screen was not captured: {e}"))?;
            if (image.width(), image.height()) != (at.width, at.height) {
                // Reopened with the new size by the caller.
                bail!(
                    "a screen changed size to {}x{} (was {}x{})",
                    image.width(),
                    image.height(),
                    at.width,
                    at.height
                );
            }
            // The part of this screen inside the area, row by row.
            let (left, top) = (at.x.max(self.area.x), at.y.max(self.area.y));
            let right = (at.x + at.width as i32).min(self.area.x + self.area.width as i32);
            let bottom = (at.y + at.height as i32).min(self.area.y + self.area.height as i32);
            let cols = (right - left) as usize;
            let raw = image.as_raw();
            for y in top..bottom {
                let from = ((y - at.y) as usize * at.width as usize + (left - at.x) as usize) * 4;
                let to = ((y - self.area.y) as usize * width + (left - self.area.x) as usize) * 4;
                for (out, p) in self.bgrx[to..to + cols * 4]
                    .chunks_exact_mut(4)
                    .zip(raw[from..from + cols * 4].chunks_exact(4))
                {
                    out.copy_from_slice(&[p[2], p[1], p[0], 0xff]);
                }
            }
        }
        Ok(use_pixels(&self.bgrx))
    }
}
