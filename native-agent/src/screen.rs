//! Screen capture on the controlled device, and the colour conversion video encoders take.
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

/// Planar YUV 4:2:0 (BT.601, studio range), as H.264 and VP8 encoders take it.
#[derive(Debug, Clone, PartialEq)]
pub struct I420 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

/// BGRX to I420; chroma is the average of each 2×2 block. Width and height must be even.
pub fn to_i420(frame: &Frame) -> Result<I420> {
    let (w, h) = (frame.width, frame.height);
    if w % 2 != 0 || h % 2 != 0 || frame.bgrx.len() != w * h * 4 {
        bail!(
            "a {w}x{h} frame must have even sides and {} bytes",
            w * h * 4
        );
    }
    let mut y = vec![0u8; w * h];
    let mut u = vec![0u8; w * h / 4];
    let mut v = vec![0u8; w * h / 4];
    for row in 0..h {
        let line = &frame.bgrx[row * w * 4..(row + 1) * w * 4];
        for (col, px) in line.chunks_exact(4).enumerate() {
            let (b, g, r) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            y[row * w + col] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
    }
    for row in (0..h).step_by(2) {
        for col in (0..w).step_by(2) {
            let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let i = ((row + dy) * w + col + dx) * 4;
                b += i32::from(frame.bgrx[i]);
                g += i32::from(frame.bgrx[i + 1]);
                r += i32::from(frame.bgrx[i + 2]);
            }
            let (r, g, b) = (r / 4, g / 4, b / 4);
            let c = (row / 2) * (w / 2) + col / 2;
            u[c] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            v[c] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
    Ok(I420 {
        width: w,
        height: h,
        y,
        u,
        v,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_convert_to_bt601_studio_range() {
        // 2×2 frames of one colour: (B, G, R, X).
        let solid = |b: u8, g: u8, r: u8| Frame {
            width: 2,
            height: 2,
            bgrx: [b, g, r, 0].repeat(4),
        };
        let white = to_i420(&solid(255, 255, 255)).unwrap();
        assert_eq!((white.y[0], white.u[0], white.v[0]), (235, 128, 128));
        let black = to_i420(&solid(0, 0, 0)).unwrap();
        assert_eq!((black.y[0], black.u[0], black.v[0]), (16, 128, 128));
        let red = to_i420(&solid(0, 0, 255)).unwrap();
        assert_eq!((red.y[0], red.u[0], red.v[0]), (82, 90, 240));
        assert!(to_i420(&Frame {
            width: 3,
            height: 2,
            bgrx: vec![0; 24]
        })
        .is_err());
    }
}
