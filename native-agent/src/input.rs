//! Input injection on the controlled device. Events arrive as the session API defines them
//! (pointer positions as fractions of the captured screen, buttons, wheel steps, keys by name
//! with modifiers); on X11 they are replayed through the XTEST extension.

#[cfg(target_os = "linux")]
use anyhow::bail;
use anyhow::{anyhow, Result};

pub use udc_client::events::{Button, InputEvent};

#[cfg(windows)]
mod send_input;
#[cfg(windows)]
pub use send_input::SendInputInjector as Injector;
/// What replays input on this system.
#[cfg(target_os = "linux")]
pub use X11Injector as Injector;

/// X11 button numbers.
#[cfg(target_os = "linux")]
fn x11_button(b: Button) -> u8 {
    match b {
        Button::Left => 1,
        Button::Middle => 2,
        Button::Right => 3,
    }
}

/// A fraction of the screen to a pixel, clamped to the screen.
pub fn to_pixel(fraction: f64, size: u16) -> i16 {
    let max = f64::from(size.saturating_sub(1));
    (fraction.clamp(0.0, 1.0) * max).round() as i16
}

/// Where a pointer at (`x`, `y`), fractions of the picture of `area`, is on the desktop.
pub fn at(area: crate::screen::Area, x: f64, y: f64) -> (i32, i32) {
    let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    (
        area.x + i32::from(to_pixel(x, side(area.width))),
        area.y + i32::from(to_pixel(y, side(area.height))),
    )
}

/// The X keysym for a key name: one character (Latin-1 keysyms equal the code point; others are
/// 0x0100_0000 + code point), or a named key as browsers' `KeyboardEvent.key` spells it (any case).
pub fn keysym(name: &str) -> Option<u32> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.clone().next()) {
        let code = u32::from(c);
        return Some(match code {
            0x20..=0x7e | 0xa0..=0xff => code,
            _ if code > 0xff => 0x0100_0000 + code,
            _ => return None,
        });
    }
    Some(match name.to_ascii_lowercase().as_str() {
        "enter" | "return" => 0xff0d,
        "backspace" => 0xff08,
        "tab" => 0xff09,
        "escape" | "esc" => 0xff1b,
        "delete" => 0xffff,
        "insert" => 0xff63,
        "home" => 0xff50,
        "end" => 0xff57,
        "pageup" | "prior" => 0xff55,
        "pagedown" | "next" => 0xff56,
        "arrowleft" | "left" => 0xff51,
        "arrowup" | "up" => 0xff52,
        "arrowright" | "right" => 0xff53,
        "arrowdown" | "down" => 0xff54,
        "shift" => 0xffe1,
        "control" | "ctrl" => 0xffe3,
        "alt" => 0xffe9,
        "meta" | "super" => 0xffeb,
        "capslock" => 0xffe5,
        "space" => 0x20,
        f if f.len() <= 3 && f.starts_with('f') => {
            let n: u32 = f[1..].parse().ok().filter(|n| (1..=12).contains(n))?;
            0xffbe + n - 1
        }
        _ => return None,
    })
}

/// Replays input on an X display.
#[cfg(target_os = "linux")]
pub struct X11Injector {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    /// The part of the screen the viewer sees, which pointer positions are fractions of.
    area: std::cell::Cell<crate::screen::Area>,
    /// keysym -> (keycode, whether Shift is needed), from the server's keyboard mapping, and
    /// the characters this injector mapped onto spare keycodes.
    keys: std::cell::RefCell<std::collections::HashMap<u32, (u8, bool)>>,
    /// Keycodes the keyboard map leaves empty, oldest use first: a character no key types
    /// ("é" on a US map) is given one for as long as it is needed.
    spare: std::cell::RefCell<std::collections::VecDeque<(u8, Option<u32>)>>,
    keysyms_per_keycode: u8,
    /// Keys and buttons pressed and not yet released, as (event kind, detail): what the session's
    /// end lets go of, so nothing stays held on this device after it.
    held: std::cell::RefCell<std::collections::HashSet<(u8, u8)>>,
    /// The modifiers each held key's press added (those not already down), let go with it: a
    /// modifier the viewer holds as a key of its own stays down until the viewer lets it go.
    added: std::cell::RefCell<std::collections::HashMap<u8, Vec<u8>>>,
}

#[cfg(target_os = "linux")]
impl X11Injector {
    pub fn open(display: Option<&str>) -> Result<X11Injector> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt as _;
        use x11rb::protocol::xtest::ConnectionExt as _;

        let (conn, screen) = x11rb::connect(display)?;
        conn.xtest_get_version(2, 2)?
            .reply()
            .map_err(|e| anyhow!("the X server has no XTEST: {e}"))?;
        let s = &conn.setup().roots[screen];
        let root = s.root;
        let area = crate::screen::Area {
            x: 0,
            y: 0,
            width: u32::from(s.width_in_pixels),
            height: u32::from(s.height_in_pixels),
        };
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        let map = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        let per = usize::from(map.keysyms_per_keycode.max(1));
        let mut keys = std::collections::HashMap::new();
        let mut spare = std::collections::VecDeque::new();
        for (i, syms) in map.keysyms.chunks(per).enumerate() {
            let code = min + i as u8;
            if syms.iter().all(|s| *s == 0) {
                spare.push_back((code, None));
            }
            // Column 0 is the plain key, column 1 the shifted one; the first keycode found wins.
            for (col, sym) in syms.iter().take(2).enumerate() {
                if *sym != 0 {
                    keys.entry(*sym).or_insert((code, col == 1));
                }
            }
        }
        Ok(X11Injector {
            conn,
            root,
            area: std::cell::Cell::new(area),
            keys: std::cell::RefCell::new(keys),
            spare: std::cell::RefCell::new(spare),
            keysyms_per_keycode: map.keysyms_per_keycode.max(1),
            held: std::cell::RefCell::default(),
            added: std::cell::RefCell::default(),
        })
    }

    /// Lets go of every key and button still held, and gives the spare keycodes back to the
    /// keyboard map as it was: the session is over.
    pub fn release_all(&self) -> Result<()> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{
            ConnectionExt as _, BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT,
            KEY_RELEASE_EVENT,
        };
        self.added.borrow_mut().clear();
        let held: Vec<(u8, u8)> = self.held.borrow_mut().drain().collect();
        for (kind, detail) in held {
            let release = match kind {
                KEY_PRESS_EVENT => KEY_RELEASE_EVENT,
                BUTTON_PRESS_EVENT => BUTTON_RELEASE_EVENT,
                _ => continue,
            };
            self.fake(release, detail, 0, 0)?;
        }
        let mut keys = self.keys.borrow_mut();
        for (code, sym) in self.spare.borrow_mut().iter_mut() {
            if let Some(sym) = sym.take() {
                keys.remove(&sym);
                let none = vec![0u32; usize::from(self.keysyms_per_keycode)];
                self.conn
                    .change_keyboard_mapping(1, *code, self.keysyms_per_keycode, &none)?;
            }
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Maps `sym` onto a spare keycode (the one used longest ago, if all are taken), as every
    /// column, so it types `sym` whatever modifiers are held.
    fn map_spare(&self, sym: u32) -> Result<u8> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt as _;
        use x11rb::protocol::xproto::KEY_PRESS_EVENT;
        let mut spare = self.spare.borrow_mut();
        // Never a key still held down: its release must find the character it pressed.
        let free = spare
            .iter()
            .position(|(code, _)| !self.held.borrow().contains(&(KEY_PRESS_EVENT, *code)))
            .ok_or_else(|| anyhow!("the keyboard map has no free key for {sym:#x}"))?;
        let (code, old) = spare
            .remove(free)
            .ok_or_else(|| anyhow!("the keyboard map has no free key for {sym:#x}"))?;
        let mut keys = self.keys.borrow_mut();
        if let Some(old) = old {
            keys.remove(&old);
        }
        let syms = vec![sym; usize::from(self.keysyms_per_keycode)];
        self.conn
            .change_keyboard_mapping(1, code, self.keysyms_per_keycode, &syms)?;
        // Applied before the key press that follows: clients see the MappingNotify first.
        self.conn.flush()?;
        spare.push_back((code, Some(sym)));
        keys.insert(sym, (code, false));
        Ok(code)
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<()> {
        use x11rb::protocol::xproto::{
            BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT,
        };
        use x11rb::protocol::xtest::ConnectionExt as _;
        self.conn
            .xtest_fake_input(kind, detail, 0, self.root, x, y, 0)?;
        let mut held = self.held.borrow_mut();
        match kind {
            KEY_PRESS_EVENT | BUTTON_PRESS_EVENT => {
                held.insert((kind, detail));
            }
            KEY_RELEASE_EVENT => {
                held.remove(&(KEY_PRESS_EVENT, detail));
            }
            BUTTON_RELEASE_EVENT => {
                held.remove(&(BUTTON_PRESS_EVENT, detail));
            }
            _ => {}
        }
        Ok(())
    }

    fn key_code(&self, name: &str) -> Result<(u8, bool)> {
        let sym = keysym(name).ok_or_else(|| anyhow!("unknown key {name:?}"))?;
        // Letters: the keyboard map lists the lowercase keysym; uppercase is that key with Shift.
        let lower = char::from_u32(sym)
            .filter(|c| c.is_ascii_uppercase())
            .map(|c| u32::from(c.to_ascii_lowercase()));
        if let Some(found) = self.keys.borrow().get(&sym) {
            return Ok(*found);
        }
        if let Some((code, _)) = lower.and_then(|l| self.keys.borrow().get(&l).copied()) {
            return Ok((code, true));
        }
        // A character the keyboard map has no key for (the viewer's layout is not this one's).
        if name.chars().count() == 1 {
            return Ok((self.map_spare(sym)?, false));
        }
        bail!("no key on this keyboard types {name:?}")
    }

    /// The part of the screen the viewer sees from now on.
    pub fn set_area(&self, area: crate::screen::Area) {
        self.area.set(area);
    }

    /// Replays one event and flushes, so it lands before the next arrives.
    pub fn inject(&self, event: &InputEvent) -> Result<()> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{
            BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT,
            MOTION_NOTIFY_EVENT,
        };
        match event {
            InputEvent::PointerMove { x, y } => {
                let (x, y) = at(self.area.get(), *x, *y);
                self.fake(MOTION_NOTIFY_EVENT, 0, x as i16, y as i16)?;
            }
            InputEvent::PointerButton { button, down } => {
                let kind = if *down {
                    BUTTON_PRESS_EVENT
                } else {
                    BUTTON_RELEASE_EVENT
                };
                self.fake(kind, x11_button(*button), 0, 0)?;
            }
            InputEvent::Wheel { dx, dy } => {
                // X11 scrolls with buttons: 4 up, 5 down, 6 left, 7 right; one click per step.
                let steps = [
                    (*dy < 0, 4u8, dy.unsigned_abs()),
                    (*dy > 0, 5, dy.unsigned_abs()),
                    (*dx < 0, 6, dx.unsigned_abs()),
                    (*dx > 0, 7, dx.unsigned_abs()),
                ];
                for (active, button, count) in steps {
                    for _ in 0..if active { count.min(20) } else { 0 } {
                        self.fake(BUTTON_PRESS_EVENT, button, 0, 0)?;
                        self.fake(BUTTON_RELEASE_EVENT, button, 0, 0)?;
                    }
                }
            }
            InputEvent::Key {
                key,
                down,
                modifiers,
            } => {
                let (code, shifted) = self.key_code(key)?;
                let mut mods: Vec<u8> = modifiers
                    .iter()
                    .map(|m| self.key_code(m).map(|(c, _)| c))
                    .collect::<Result<_>>()?;
                // The character needs Shift on this keyboard ("A", "!"): held around the key,
                // and let go with it, as the modifiers are.
                let shift = self.key_code("Shift")?.0;
                if shifted && !mods.contains(&shift) {
                    mods.push(shift);
                }
                if *down {
                    // Held and pressed again, the key repeats: its release lets go of what the
                    // first press added.
                    if !self.added.borrow().contains_key(&code) {
                        let held = self.held.borrow();
                        mods.retain(|m| *m != code && !held.contains(&(KEY_PRESS_EVENT, *m)));
                        drop(held);
                        for m in &mods {
                            self.fake(KEY_PRESS_EVENT, *m, 0, 0)?;
                        }
                        self.added.borrow_mut().insert(code, mods);
                    }
                    self.fake(KEY_PRESS_EVENT, code, 0, 0)?;
                } else {
                    self.fake(KEY_RELEASE_EVENT, code, 0, 0)?;
                    let added = self.added.borrow_mut().remove(&code).unwrap_or_default();
                    for m in added.iter().rev() {
                        self.fake(KEY_RELEASE_EVENT, *m, 0, 0)?;
                    }
                }
            }
        }
        self.conn.flush()?;
        Ok(())
    }
}

/// Lets go of every key and button a session held down on this display, and gives back the
/// keys it borrowed for characters (on a blocking thread: X requests wait for the server).
pub async fn let_go(injector: &std::sync::Arc<std::sync::Mutex<Injector>>) {
    let injector = std::sync::Arc::clone(injector);
    let done = tokio::task::spawn_blocking(move || -> Result<()> {
        injector
            .lock()
            .map_err(|_| anyhow!("input lock poisoned"))?
            .release_all()
    })
    .await;
    if let Ok(Err(e)) = done {
        eprintln!("udc-agent: keys not released: {e:#}");
    }
}

#[cfg(target_os = "linux")]
impl Drop for X11Injector {
    fn drop(&mut self) {
        // Best effort: a display that went away has nothing left to release.
        let _ = self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_map_to_pixels_of_any_resolution() {
        assert_eq!(to_pixel(0.0, 1280), 0);
        assert_eq!(to_pixel(1.0, 1280), 1279);
        assert_eq!(to_pixel(0.25, 1281), 320);
        assert_eq!(to_pixel(0.5, 1080), 540);
        assert_eq!(to_pixel(7.0, 720), 719, "clamped");
    }

    #[test]
    fn key_names_become_keysyms() {
        assert_eq!(keysym("a"), Some(0x61));
        assert_eq!(keysym("A"), Some(0x41));
        assert_eq!(keysym("é"), Some(0xe9));
        assert_eq!(keysym("€"), Some(0x0100_20ac));
        assert_eq!(keysym("Enter"), Some(0xff0d));
        assert_eq!(keysym("Insert"), Some(0xff63));
        assert_eq!(keysym("F12"), Some(0xffc9));
        assert_eq!(keysym("F13"), None);
        assert_eq!(keysym("Hyper"), None);
        assert_eq!(keysym("shift"), keysym("Shift"));
        assert_eq!(keysym("ctrl"), Some(0xffe3));
    }

    #[test]
    fn events_read_as_the_api_sends_them() {
        let e: InputEvent =
            serde_json::from_str(r#"{"type":"key","key":"a","down":true,"modifiers":["Shift"]}"#)
                .unwrap();
        assert_eq!(
            e,
            InputEvent::Key {
                key: "a".into(),
                down: true,
                modifiers: vec!["Shift".into()]
            }
        );
        let e: InputEvent =
            serde_json::from_str(r#"{"type":"pointer_move","x":0.5,"y":0.25}"#).unwrap();
        assert_eq!(e, InputEvent::PointerMove { x: 0.5, y: 0.25 });
    }
}
