//! Screen capture on the controlled device.
//! Windows: desktop duplication, else GDI (`windows.rs`). X11: the root window through MIT-SHM or `GetImage` (x11rb, no system libraries). The frame is
//! BGRX, the X server's native 32-bit layout.
// MIT-SHM needs System V shared memory, which only libc offers: each block says why it is sound.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
use anyhow::{bail, Result};

#[cfg(windows)]
mod dxgi;
#[cfg(windows)]
mod gdi;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::WindowsCapture as Capture;
/// What captures the screen on this system.
#[cfg(target_os = "linux")]
pub use X11Capture as Capture;

/// One captured frame: `width * height` pixels of B, G, R, X.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub bgrx: Vec<u8>,
}

/// Captures an X display's root window: through a shared memory segment when the server offers
/// MIT-SHM (it writes the pixels straight into our memory: ~20x faster at 1080p than sending
/// them over the socket), else with a plain GetImage.
#[cfg(target_os = "linux")]
pub struct X11Capture {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    width: u16,
    height: u16,
    shm: Option<Shm>,
}

/// A System V shared memory segment attached here and at the X server.
#[cfg(target_os = "linux")]
struct Shm {
    seg: u32,
    addr: *mut u8,
    size: usize,
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
        let shm = Shm::attach(&conn, usize::from(width) * usize::from(height) * 4);
        Ok(X11Capture {
            conn,
            root,
            width,
            height,
            shm,
        })
    }

    pub fn size(&self) -> (usize, usize) {
        (usize::from(self.width), usize::from(self.height))
    }

    /// How the screen is captured, for the log.
    pub fn method(&self) -> &'static str {
        if self.shm.is_some() {
            "x11-shm"
        } else {
            "x11"
        }
    }

    /// Whether captures go through shared memory.
    pub fn uses_shm(&self) -> bool {
        self.shm.is_some()
    }

    /// Captures with plain GetImage from now on.
    pub fn without_shm(mut self) -> X11Capture {
        self.detach();
        self
    }

    fn detach(&mut self) {
        use x11rb::protocol::shm::ConnectionExt as _;
        if let Some(shm) = self.shm.take() {
            let _ = self.conn.shm_detach(shm.seg);
            // SAFETY: `shm.addr` came from our `shmat` and is detached once: `take()` above
            // leaves no other `Shm` holding it, and no slice of it outlives `capture_with`.
            unsafe { libc::shmdt(shm.addr.cast()) };
        }
    }

    pub fn capture(&mut self) -> Result<Frame> {
        let (width, height) = self.size();
        let bgrx = self.capture_with(<[u8]>::to_vec)?;
        Ok(Frame {
            width,
            height,
            bgrx,
        })
    }

    /// Captures the screen and hands `use_pixels` its BGRX pixels where they are (the shared
    /// memory segment when there is one).
    pub fn capture_with<R>(&mut self, use_pixels: impl FnOnce(&[u8]) -> R) -> Result<R> {
        use x11rb::protocol::shm::ConnectionExt as _;
        use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
        let (width, height) = self.size();
        let check = |len: usize| {
            if len != width * height * 4 {
                bail!("the X server sent {len} bytes for a {width}x{height} screen");
            }
            Ok(())
        };
        match &self.shm {
            Some(shm) => {
                self.conn
                    .shm_get_image(
                        self.root,
                        0,
                        0,
                        self.width,
                        self.height,
                        u32::MAX,
                        ImageFormat::Z_PIXMAP.into(),
                        shm.seg,
                        0,
                    )?
                    .reply()?;
                check(shm.size)?;
                // SAFETY: the segment is `shm.size` bytes mapped at `shm.addr` until `detach`
                // (checked against the screen's size above). The reply means the server has
                // written the whole image, and it writes there again only on the next request,
                // which cannot be made (`&mut self`) while the slice lives.
                Ok(use_pixels(unsafe {
                    std::slice::from_raw_parts(shm.addr, shm.size)
                }))
            }
            None => {
                let data = self
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
                    .reply()?
                    .data;
                check(data.len())?;
                Ok(use_pixels(&data))
            }
        }
    }
}

#[cfg(target_os = "linux")]
impl Shm {
    /// None when the server has no MIT-SHM or cannot reach our memory (a remote display).
    fn attach(conn: &x11rb::rust_connection::RustConnection, size: usize) -> Option<Shm> {
        use x11rb::connection::{Connection, RequestConnection};
        use x11rb::protocol::shm::{self, ConnectionExt as _};
        conn.extension_information(shm::X11_EXTENSION_NAME)
            .ok()
            .flatten()?;
        // SAFETY: plain system calls on a new private segment; every result is checked.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return None;
        }
        // SAFETY: attaches the segment just made at an address the kernel picks; -1 is checked.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        let seg = conn.generate_id().ok();
        let attached = seg.and_then(|seg| {
            (addr as isize != -1
                && conn
                    .shm_attach(seg, id as u32, false)
                    .ok()
                    .and_then(|c| c.check().ok())
                    .is_some())
            .then_some(seg)
        });
        // Both sides are attached (or it failed): the segment goes away when they detach.
        // SAFETY: IPC_RMID takes no buffer; `id` is the segment made above.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        match attached {
            Some(seg) => Some(Shm {
                seg,
                addr: addr.cast(),
                size,
            }),
            None => {
                if addr as isize != -1 {
                    // SAFETY: attached above and never handed out: nothing else uses it.
                    unsafe { libc::shmdt(addr) };
                }
                None
            }
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for X11Capture {
    fn drop(&mut self) {
        self.detach();
    }
}
