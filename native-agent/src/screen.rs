//! Screen capture on the controlled device.
//! X11: the root window through `GetImage` (x11rb, no system libraries). The frame is BGRX, the
//! X server's native 32-bit layout.

use anyhow::{bail, Result};

/// One captured frame: `width * height` pixels of B, G, R, X.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub bgrx: Vec<u8>,
}

/// Captures an X display's root window.
#[cfg(target_os = "linux")]
pub struct X11Capture {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    width: u16,
    height: u16,
}

#[cfg(target_os = "linux")]
impl X11Capture {
    pub fn open(display: Option<&str>) -> Result<X11Capture> {
        use x11rb::connection::Connection;
        let (conn, screen) = x11rb::connect(display)?;
        let s = &conn.setup().roots[screen];
        if s.root_depth != 24 && s.root_depth != 32 {
            bail!(
                "a {}-bit screen: only 24- and 32-bit screens are captured",
                s.root_depth
            );
        }
        let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
        Ok(X11Capture {
            conn,
            root,
            width,
            height,
        })
    }

    pub fn size(&self) -> (usize, usize) {
        (usize::from(self.width), usize::from(self.height))
    }

    pub fn capture(&self) -> Result<Frame> {
        use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
        let image = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                0,
                0,
                self.width,
                self.height,
                u32::MAX,
            )?
            .reply()?;
        let (width, height) = self.size();
        if image.data.len() != width * height * 4 {
            bail!(
                "the X server sent {} bytes for a {width}x{height} screen",
                image.data.len()
            );
        }
        Ok(Frame {
            width,
            height,
            bgrx: image.data,
        })
    }
}
