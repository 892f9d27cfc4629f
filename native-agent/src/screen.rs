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
pub use windows::{open_choice, screens, WindowsCapture as Capture};
/// What captures the screen on this system.
#[cfg(target_os = "linux")]
pub use X11Capture as Capture;

/// A part of the desktop, in its pixels: one screen, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Area {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

/// One of this device's screens (a monitor), as a viewer is told of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Screen {
    /// The system's name for it (X11: the RandR monitor's; Windows: the display device's).
    pub id: String,
    #[serde(flatten)]
    pub area: Area,
    pub primary: bool,
}

/// What a session shows: the viewer's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The primary screen (the first when none is marked): what a session starts with.
    Primary,
    /// The screen of this id.
    One(String),
    /// Every screen, as one picture of the whole desktop.
    All,
}

impl Choice {
    /// The viewer's word for it: a screen's id, `all` or `primary`.
    pub fn parse(word: &str) -> Choice {
        match word {
            "all" => Choice::All,
            "primary" => Choice::Primary,
            id => Choice::One(id.to_owned()),
        }
    }

    /// The viewer's word for it, as `parse` reads it.
    pub fn word(&self) -> &str {
        match self {
            Choice::Primary => "primary",
            Choice::All => "all",
            Choice::One(id) => id,
        }
    }

    /// The part of the desktop it names among `screens` (the first is the primary one when
    /// none is marked); None for an id that is not there.
    pub fn area(&self, screens: &[Screen]) -> Option<Area> {
        match self {
            Choice::Primary => screens
                .iter()
                .find(|s| s.primary)
                .or_else(|| screens.first())
                .map(|s| s.area),
            Choice::One(id) => screens.iter().find(|s| &s.id == id).map(|s| s.area),
            Choice::All => {
                let x = screens.iter().map(|s| s.area.x).min()?;
                let y = screens.iter().map(|s| s.area.y).min()?;
                let right = screens
                    .iter()
                    .map(|s| s.area.x + s.area.width as i32)
                    .max()?;
                let bottom = screens
                    .iter()
                    .map(|s| s.area.y + s.area.height as i32)
                    .max()?;
                Some(Area {
                    x,
                    y,
                    width: (right - x) as u32,
                    height: (bottom - y) as u32,
                })
            }
        }
    }
}

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
    /// The part of the root window captured: its top left corner and size.
    x: i16,
    y: i16,
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
    /// The whole root window: every screen.
    pub fn open(display: Option<&str>) -> Result<X11Capture> {
        X11Capture::open_area(display, None)
    }

    /// `area` of the root window (all of it for None).
    pub fn open_area(display: Option<&str>, area: Option<Area>) -> Result<X11Capture> {
        use x11rb::connection::Connection;
        let (conn, screen) = x11rb::connect(display)?;
        let s = &conn.setup().roots[screen];
        if s.root_depth != 24 && s.root_depth != 32 {
            bail!(
                "a {}-bit screen: only 24- and 32-bit screens are captured",
                s.root_depth
            );
        }
        let root = s.root;
        let whole = Area {
            x: 0,
            y: 0,
            width: u32::from(s.width_in_pixels),
            height: u32::from(s.height_in_pixels),
        };
        let area = area.unwrap_or(whole);
        let inside = area.x >= 0
            && area.y >= 0
            && area.width > 0
            && area.height > 0
            && area.x as u32 + area.width <= whole.width
            && area.y as u32 + area.height <= whole.height;
        if !inside {
            bail!(
                "{area:?} is not within the {}x{} screen",
                whole.width,
                whole.height
            );
        }
        // Inside a root window, whose sides are u16: every value fits.
        let (x, y) = (area.x as i16, area.y as i16);
        let (width, height) = (area.width as u16, area.height as u16);
        let shm = Shm::attach(&conn, usize::from(width) * usize::from(height) * 4);
        Ok(X11Capture {
            conn,
            root,
            x,
            y,
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
                        self.x,
                        self.y,
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
                        self.x,
                        self.y,
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

/// The X display's screens: its RandR monitors, without one that only repeats the whole root
/// beside the others (that is "all"); the whole root when RandR names none.
#[cfg(target_os = "linux")]
pub fn screens(display: Option<&str>) -> Result<Vec<Screen>> {
    use x11rb::connection::Connection;
    use x11rb::protocol::randr::ConnectionExt as _;
    use x11rb::protocol::xproto::ConnectionExt as _;
    let (conn, screen) = x11rb::connect(display)?;
    let s = &conn.setup().roots[screen];
    let whole = Area {
        x: 0,
        y: 0,
        width: u32::from(s.width_in_pixels),
        height: u32::from(s.height_in_pixels),
    };
    let monitors = conn
        .randr_get_monitors(s.root, true)
        .ok()
        .and_then(|c| c.reply().ok())
        .map(|r| r.monitors)
        .unwrap_or_default();
    let mut screens: Vec<Screen> = monitors
        .iter()
        .map(|m| Screen {
            id: conn
                .get_atom_name(m.name)
                .ok()
                .and_then(|c| c.reply().ok())
                .map(|n| String::from_utf8_lossy(&n.name).into_owned())
                .unwrap_or_else(|| format!("monitor-{}", m.name)),
            area: Area {
                x: i32::from(m.x),
                y: i32::from(m.y),
                width: u32::from(m.width),
                height: u32::from(m.height),
            },
            primary: m.primary,
        })
        .filter(|s| s.area.width > 0 && s.area.height > 0)
        .collect();
    if screens.len() > 1 {
        screens.retain(|s| s.area != whole);
    }
    if screens.is_empty() {
        screens.push(Screen {
            id: "screen".into(),
            area: whole,
            primary: true,
        });
    }
    Ok(screens)
}

/// What a session with `choice` captures: the part of the desktop and its capture.
#[cfg(target_os = "linux")]
pub fn open_choice(choice: &Choice) -> Result<(Area, Capture)> {
    let screens = screens(None)?;
    let area = choice
        .area(&screens)
        .ok_or_else(|| anyhow::anyhow!("no screen {choice:?} here"))?;
    Ok((area, X11Capture::open_area(None, Some(area))?))
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

#[cfg(test)]
mod choice_tests {
    use super::*;

    fn screen(id: &str, x: i32, y: i32, width: u32, height: u32, primary: bool) -> Screen {
        Screen {
            id: id.into(),
            area: Area {
                x,
                y,
                width,
                height,
            },
            primary,
        }
    }

    #[test]
    fn a_choice_names_a_screen_or_the_box_around_them_all() {
        // A laptop's panel marked primary, a monitor to its left and above.
        let screens = [
            screen("eDP-1", 0, 0, 1920, 1080, true),
            screen("DP-1", -2560, -360, 2560, 1440, false),
        ];
        assert_eq!(Choice::Primary.area(&screens), Some(screens[0].area));
        assert_eq!(Choice::parse("DP-1").area(&screens), Some(screens[1].area));
        assert_eq!(Choice::parse("HDMI-1").area(&screens), None);
        assert_eq!(
            Choice::parse("all").area(&screens),
            Some(Area {
                x: -2560,
                y: -360,
                width: 4480,
                height: 1440
            })
        );
        // None marked primary: the first.
        let unmarked = [
            screen("left", 0, 0, 1280, 720, false),
            screen("right", 1280, 0, 1280, 720, false),
        ];
        assert_eq!(Choice::Primary.area(&unmarked), Some(unmarked[0].area));
        assert_eq!(Choice::All.area(&[]), None);
    }
}
